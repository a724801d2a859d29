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

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' $(if $(CONSTRAINTS),--constraint $(CONSTRAINTS))
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/sluiced run -c config.toml.example

# Installs the system programs the tests use when it can (root and apt-get); tests
# whose program is missing skip with a one-line reason. The tests run in parallel, one
# worker per CPU (pytest-xdist; each test has its own directory, ports and daemon), and
# a worker that is free takes tests queued for another (worksteal: the long ones do not
# hold up the end). `make test PYTEST_ARGS=` runs them one after another.
PYTEST_ARGS ?= -n auto --dist worksteal
test: $(STAMP)
	bash .ci/system-packages
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

# Writes constraints.txt anew: the newest release of everything '.[dev]' pulls, as a
# new virtual environment gets them (the project itself left out). Then run `make test`
# (which reinstalls from it) and commit it if the suite passes.
constraints:
	rm -rf build/constraints
	$(PYTHON) -m venv build/constraints
	build/constraints/bin/pip install --quiet --upgrade pip
	build/constraints/bin/pip install --quiet '.[dev]'
	{ echo "# The tested versions of what '.[dev]' pulls; make constraints writes this file."; \
	  build/constraints/bin/pip freeze --exclude sluiced; } > constraints.txt
	rm -rf build/constraints

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
