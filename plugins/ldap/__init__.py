"""Built-in plugin ``ldap``: an LDAP directory (OpenLDAP, 389-DS, Active Directory) as
a source or a target, over python-ldap (the extra ``sluiced[ldap]``).

Connector table::

    [integrations.hr-ldap.source]
    connector = "ldap"
    url = "ldaps://ldap.example.org"        # ldap://, ldaps://, ldapi:// (SASL EXTERNAL without bind_dn)
    start_tls = false
    ca_file = "/etc/ssl/certs/corp-ca.pem"
    bind_dn = "cn=sluiced,ou=services,dc=example,dc=org"
    password_file = "/etc/sluiced/ldap-password"   # or password_env / password_credential
    timeout = "30s"
    page_size = 500
    incremental = "auto"                    # "syncrepl" or "timestamps" force one
    overlap = "5m"
    [integrations.hr-ldap.source.entities.user]
    base = "ou=people,dc=example,dc=org"
    scope = "sub"
    filter = "(objectClass=inetOrgPerson)"
    id_attribute = "entryUUID"

A target's entity tables also name ``rdn_attribute``, ``object_classes`` and how to
disable (``disable = {attribute = "...", value = "..."}`` or ``move_to = "ou=..."``).

python-ldap is imported only by the plugin's other modules: without it this factory
still registers, and a config that uses it is told which extra to install.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import import_module
from typing import Any

from sluiced.connectors import ConnectorContext, ConnectorFactory, Source, Target
from sluiced.hookspecs import hookimpl
from sluiced.tables import TableReader

from .settings import EntitySettings, LdapSettings, parse

__all__ = [
    "MISSING_LIBRARY",
    "EntitySettings",
    "LdapConnector",
    "LdapSettings",
    "sluiced_connectors",
]

MISSING_LIBRARY = "connector ldap needs python-ldap: pip install 'sluiced[ldap]'"


def python_ldap_installed() -> bool:
    """True when ``import ldap`` works."""
    try:
        import ldap  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return False
    return True


class LdapConnector(ConnectorFactory):
    name = "ldap"
    description = "an LDAP directory (OpenLDAP, 389-DS, Active Directory): any entry types"

    def parse_settings(self, reader: TableReader) -> LdapSettings:
        """Check the table with no I/O; without python-ldap, a problem naming the extra."""
        if not python_ldap_installed():
            reader.problems.add(reader.key("connector"), "python-ldap missing", MISSING_LIBRARY)
        return parse(reader)

    def open_source(self, settings: Any, ctx: ConnectorContext) -> Source:
        # imported here: the module imports python-ldap
        source: Source = import_module(".source", __name__).LdapSource(settings, ctx)
        return source

    def open_target(self, settings: Any, ctx: ConnectorContext) -> Target:
        target: Target = import_module(".target", __name__).LdapTarget(settings, ctx)
        return target


@hookimpl
def sluiced_connectors() -> Sequence[ConnectorFactory]:
    return [LdapConnector()]
