# Two commands for a newcomer:
#   make run    set up, then run the daemon on config.toml.example (bundled sample data)
#   make test   set up, then run the whole test suite (what CI runs)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The development environment (and so CI) gets the versions the suite was last run with,
# so that a new upstream release (a deprecation: warnings are errors) cannot turn it red
# on its own; `make constraints` moves them on. `make CONSTRAINTS= test` takes the newest.
CONSTRAINTS ?= constraints.txt

.PHONY: run test lint typecheck bench constraints clean

PIP_CONSTRAINT := $(if $(CONSTRAINTS),--constraint $(CONSTRAINTS))

# The extra ldap (python-ldap) is built from source where no wheel fits: that needs the
# headers of libldap2-dev and libsasl2-dev (`.ci/system-packages` installs them). When
# it cannot be built, one line says so (the build's output is in .venv/ldap-build.log)
# and the LDAP tests skip with that reason; nothing else needs it.
define install_ldap
	@$(BIN)/python -c 'import ldap' 2>/dev/null \
	  || $(BIN)/pip install --quiet -e '.[ldap]' $(PIP_CONSTRAINT) >$(VENV)/ldap-build.log 2>&1 \
	  || echo "make: python-ldap (the extra ldap) could not be built, see $(VENV)/ldap-build.log (it needs libldap2-dev and libsasl2-dev): the LDAP tests skip"
endef

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' $(PIP_CONSTRAINT)
	$(install_ldap)
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/sluiced run -c config.toml.example

# Installs the system programs and headers the tests use when it can (root and
# apt-get) before the virtual environment is set up, so that python-ldap can be built
# there; tests whose program is missing skip with a one-line reason (python-ldap is
# tried again when the environment predates its headers). The tests run in parallel,
# one worker per CPU (pytest-xdist; each test has its own directory, ports and daemon),
# and a worker that is free takes tests queued for another (worksteal: the long ones do
# not hold up the end). `make test PYTEST_ARGS=` runs them one after another.
PYTEST_ARGS ?= -n auto --dist worksteal
test:
	bash .ci/system-packages
	$(MAKE) --no-print-directory $(STAMP)
	$(install_ldap)
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint: $(STAMP) typecheck
	$(BIN)/ruff check daemon plugins tests bench
	$(BIN)/ruff format --check daemon plugins tests bench

# mypy cannot follow the daemon/ -> sluiced mapping of the editable install, so it
# checks a tree of symlinks laid out as the installed package.
typecheck: $(STAMP)
	rm -rf build/typecheck && mkdir -p build/typecheck/sluiced
	for f in daemon/*; do ln -s ../../../$$f build/typecheck/sluiced/; done
	ln -s ../../../plugins build/typecheck/sluiced/plugins
	cd build/typecheck && ../../$(BIN)/mypy --config-file ../../pyproject.toml -p sluiced

bench: $(STAMP)
	$(BIN)/python bench/file_sync.py

# Writes constraints.txt anew: the newest release of everything '.[dev]' and '.[ldap]'
# pull, as a new virtual environment gets them (the project itself left out); building
# python-ldap needs its headers (`bash .ci/system-packages` first). Then run `make test`
# (which reinstalls from it) and commit it if the suite passes.
constraints:
	rm -rf build/constraints
	$(PYTHON) -m venv build/constraints
	build/constraints/bin/pip install --quiet --upgrade pip
	build/constraints/bin/pip install --quiet '.[dev,ldap]'
	{ echo "# The tested versions of what '.[dev]' and '.[ldap]' pull; make constraints writes this file."; \
	  build/constraints/bin/pip freeze --exclude sluiced; } > constraints.txt
	rm -rf build/constraints

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
