"""The ``slapd`` fixture: a real server per test, stopped after it; a reason to skip
where none can be started."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .conftest import needs_slapd, running_slapd
from .slapd import SERVICE_PASSWORD, Slapd, person


def test_the_fixture_gives_a_seeded_server_in_the_tests_directory(
    slapd: Slapd, tmp_path: Path
) -> None:
    assert slapd.dir.parent == tmp_path
    slapd.add_many([person("ada", mail="ada@example.org")])
    conn = slapd.connect(slapd.service_dn, SERVICE_PASSWORD)
    try:
        assert conn.whoami_s() == f"dn:{slapd.service_dn}"
    finally:
        conn.unbind_s()
    assert list(slapd.people()) == [slapd.dn("uid=ada,ou=people")]


def test_the_server_is_stopped_when_the_test_ends(tmp_path: Path) -> None:
    with running_slapd(tmp_path, syncprov=False) as server:
        assert server.proc is not None and server.proc.poll() is None
    assert server.proc.poll() is not None


def test_without_python_ldap_the_test_skips_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ldap", None)  # as if python-ldap were not built
    with pytest.raises(pytest.skip.Exception, match=r"pip install 'sluiced\[ldap\]'"):
        needs_slapd()
