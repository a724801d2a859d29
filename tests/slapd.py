"""A real OpenLDAP ``slapd`` in a temporary directory, for tests and benchmarks.

Each :class:`Slapd` writes its own ``slapd.conf`` (back-mdb with ``dbnosync``, the
``syncprov`` overlay with a session log unless ``syncprov=False``), listens on an
``ldapi://`` socket in its directory and on a loopback port, and is ready in about a
quarter of a second. The suffix holds ``ou=people``, ``ou=groups``, ``ou=services``
(with the service account ``cn=sluiced``) and ``ou=disabled``.

Debian's ``slapd`` and ``ldap-utils`` provide it; :func:`skip_reason` says why a test
cannot start one (``.ci/system-packages`` installs them).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")

SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "root-secret"
SERVICE_DN = f"cn=sluiced,ou=services,{SUFFIX}"
SERVICE_PASSWORD = "sluiced-secret"


def skip_reason() -> str | None:
    """Why no slapd can be started here, or None."""
    try:
        import ldap  # noqa: F401
    except ImportError:
        return "python-ldap is not installed (pip install 'sluiced[ldap]')"
    if not os.path.exists(SLAPD) or not (MODULE_DIR / "syncprov.so").exists():
        return "slapd is not installed (Debian: apt-get install slapd ldap-utils)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Slapd:
    root: Path
    suffix: str = SUFFIX
    #: The syncprov overlay (RFC 4533 content synchronization) on the database.
    syncprov: bool = True
    #: How many deletions syncprov keeps to answer a refresh with a cookie.
    sessionlog: int = 10000
    #: The refint overlay (the server keeps member/manager DNs right on a rename).
    refint: bool = False
    #: ``sizelimit`` for everyone but the root DN (paged searches must still read all).
    sizelimit: int = 500
    #: TLS with a certificate for 127.0.0.1 signed by a CA made for this server
    #: (:attr:`ca_file`): StartTLS on :attr:`url`, and :attr:`ldaps_url`.
    tls: bool = False
    port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def dir(self) -> Path:
        return self.root / f"slapd-{self.port}"

    @property
    def socket_path(self) -> Path:
        return self.dir / "ldapi"

    @property
    def ldapi_url(self) -> str:
        return "ldapi://" + quote(str(self.socket_path), safe="")

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def ca_file(self) -> Path:
        """The PEM certificate of the CA that signed the server's certificate (``tls=True``)."""
        return self.dir / "tls" / "ca.pem"

    def _make_certificates(self) -> None:
        """A CA and a server certificate for 127.0.0.1 and localhost, made with openssl."""
        tls = self.dir / "tls"
        if (tls / "server.pem").exists():
            return
        tls.mkdir(parents=True, exist_ok=True)

        def openssl(*args: str) -> None:
            subprocess.run(["openssl", *args], cwd=tls, check=True, capture_output=True)

        openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=sluiced test CA",
        )  # fmt: skip
        openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
            "-out", "server.csr", "-subj", "/CN=127.0.0.1",
        )  # fmt: skip
        (tls / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        openssl(
            "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "server.pem",
        )  # fmt: skip

    def dn(self, rdn: str) -> str:
        """``rdn`` under the suffix: ``dn("uid=ada,ou=people")``."""
        return f"{rdn},{self.suffix}"

    def _config(self) -> str:
        lines = [
            *(
                f"include {SCHEMA_DIR / s}.schema"
                for s in ("core", "cosine", "nis", "inetorgperson")
            ),
            f"modulepath {MODULE_DIR}",
            "moduleload back_mdb",
            *(["moduleload syncprov"] if self.syncprov else []),
            *(["moduleload refint"] if self.refint else []),
            f"pidfile {self.dir / 'slapd.pid'}",
            f"argsfile {self.dir / 'slapd.args'}",
            f"sizelimit {self.sizelimit}",
            "database mdb",
            f'suffix "{self.suffix}"',
            f'rootdn "{ROOT_DN if self.suffix == SUFFIX else "cn=admin," + self.suffix}"',
            f"rootpw {ROOT_PASSWORD}",
            f"directory {self.dir / 'data'}",
            "dbnosync",
            "maxsize 4294967296",
            "index objectClass eq",
            "index entryUUID,entryCSN eq",
            "index uid,cn,mail eq",
            "index modifyTimestamp,createTimestamp eq",
            f'limits dn.exact="{self.service_dn}" size.soft={self.sizelimit} '
            f"size.hard={self.sizelimit} size.pr=unlimited size.prtotal=unlimited",
            f'access to attrs=userPassword by dn.exact="{self.service_dn}" write '
            "by anonymous auth by * none",
            f'access to * by dn.exact="{self.service_dn}" write by * read',
        ]
        if self.tls:
            tls = self.dir / "tls"
            lines[lines.index("database mdb") : lines.index("database mdb")] = [
                f"TLSCACertificateFile {tls / 'ca.pem'}",
                f"TLSCertificateFile {tls / 'server.pem'}",
                f"TLSCertificateKeyFile {tls / 'server.key'}",
            ]
        if self.syncprov:
            lines += ["overlay syncprov", "syncprov-checkpoint 100 1"]
            if self.sessionlog:
                lines.append(f"syncprov-sessionlog {self.sessionlog}")
        if self.refint:
            lines += ["overlay refint", "refint_attributes member manager"]
        return "\n".join(lines) + "\n"

    @property
    def service_dn(self) -> str:
        return f"cn=sluiced,ou=services,{self.suffix}"

    @property
    def root_dn(self) -> str:
        return f"cn=admin,{self.suffix}"

    def start(self) -> Slapd:
        """Start the server (a new database the first time) and wait until it answers."""
        first = not (self.dir / "data").exists()
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        if self.tls:
            self._make_certificates()
        (self.dir / "slapd.conf").write_text(self._config())
        urls = [self.ldapi_url, self.url, *([self.ldaps_url] if self.tls else [])]
        log = (self.dir / "slapd.log").open("ab")
        self.proc = subprocess.Popen(
            [
                SLAPD,
                "-d",
                "0",
                "-f",
                str(self.dir / "slapd.conf"),
                "-h",
                " ".join(urls),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"slapd exited: {(self.dir / 'slapd.log').read_text()[-2000:]}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("slapd did not come up") from None
                time.sleep(0.01)
        if first:
            self._seed()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def connect(self, dn: str | None = None, password: str | None = None) -> Any:
        """A python-ldap connection over ldapi, bound as the root DN by default."""
        import ldap

        conn = ldap.initialize(self.ldapi_url)
        conn.protocol_version = 3
        conn.simple_bind_s(dn or self.root_dn, password or ROOT_PASSWORD)
        return conn

    def add(self, dn: str, attrs: Mapping[str, str | bytes | Sequence[str | bytes]]) -> None:
        import ldap.modlist

        conn = self.connect()
        try:
            conn.add_s(dn, ldap.modlist.addModlist(_encode(attrs)))
        finally:
            conn.unbind_s()

    def add_many(self, entries: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
        """Add entries over one connection; returns how many."""
        import ldap.modlist

        conn = self.connect()
        n = 0
        try:
            for dn, attrs in entries:
                conn.add_s(dn, ldap.modlist.addModlist(_encode(attrs)))
                n += 1
        finally:
            conn.unbind_s()
        return n

    def modify(self, dn: str, attrs: Mapping[str, Any]) -> None:
        """Replace each of *attrs* (None deletes the attribute)."""
        import ldap

        mods = [
            (ldap.MOD_DELETE, k, None) if v is None else (ldap.MOD_REPLACE, k, _values(v))
            for k, v in attrs.items()
        ]
        conn = self.connect()
        try:
            conn.modify_s(dn, mods)
        finally:
            conn.unbind_s()

    def rename(self, dn: str, new_rdn: str, new_superior: str | None = None) -> None:
        conn = self.connect()
        try:
            conn.rename_s(dn, new_rdn, new_superior, delold=1)
        finally:
            conn.unbind_s()

    def delete(self, dn: str) -> None:
        conn = self.connect()
        try:
            conn.delete_s(dn)
        finally:
            conn.unbind_s()

    def search(
        self,
        base: str | None = None,
        filterstr: str = "(objectClass=*)",
        attrs: list[str] | None = None,
    ) -> dict[str, dict[str, list[str]]]:
        """Every entry under *base* (the suffix) matching *filterstr*, by DN, values decoded."""
        import ldap

        conn = self.connect()
        try:
            found = conn.search_s(base or self.suffix, ldap.SCOPE_SUBTREE, filterstr, attrs)
        finally:
            conn.unbind_s()
        return {
            dn: {k: [v.decode("utf-8", "replace") for v in vs] for k, vs in entry.items()}
            for dn, entry in found
        }

    def people(self, attrs: list[str] | None = None) -> dict[str, dict[str, list[str]]]:
        return self.search(self.dn("ou=people"), "(objectClass=inetOrgPerson)", attrs)

    def groups(self, attrs: list[str] | None = None) -> dict[str, dict[str, list[str]]]:
        return self.search(self.dn("ou=groups"), "(objectClass=groupOfNames)", attrs)

    def _seed(self) -> None:
        dc = self.suffix.split(",")[0].split("=", 1)[1]
        entries: list[tuple[str, dict[str, Any]]] = [
            (self.suffix, {"objectClass": ["top", "dcObject", "organization"], "dc": dc, "o": dc}),
            *(
                (self.dn(f"ou={ou}"), {"objectClass": ["organizationalUnit"], "ou": ou})
                for ou in ("people", "groups", "services", "disabled")
            ),
            (
                self.service_dn,
                {
                    "objectClass": ["person", "simpleSecurityObject"],
                    "cn": "sluiced",
                    "sn": "sluiced",
                    "userPassword": SERVICE_PASSWORD,
                },
            ),
        ]
        self.add_many(entries)


def _values(v: Any) -> list[bytes]:
    items = v if isinstance(v, (list, tuple)) else [v]
    return [x if isinstance(x, bytes) else str(x).encode() for x in items]


def _encode(attrs: Mapping[str, Any]) -> dict[str, list[bytes]]:
    return {k: _values(v) for k, v in attrs.items()}


def person(uid: str, **extra: Any) -> tuple[str, dict[str, Any]]:
    """An inetOrgPerson under ``ou=people`` of the default suffix: ``(dn, attrs)``."""
    attrs: dict[str, Any] = {
        "objectClass": ["inetOrgPerson"],
        "uid": uid,
        "cn": extra.pop("cn", uid.title()),
        "sn": extra.pop("sn", uid.title()),
        **extra,
    }
    return f"uid={uid},ou=people,{SUFFIX}", attrs
