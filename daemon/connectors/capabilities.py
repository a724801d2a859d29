"""What a target may offer beyond :meth:`~sluiced.connectors.Target.apply`.

Every capability has a default that says "not offered", so a target implements only
what its system can do, and the engine adapts:

* **Find by attribute** (:meth:`TargetCapabilities.find`): matching. An object the
  engine has no link for is looked up by the schema's matching attributes, in priority
  order; one candidate is adopted (updated, then linked), several are escrowed as an
  ambiguous match, none means create. Without it only remembered links match, and an
  unlinked object is created.
* **Count** (:meth:`TargetCapabilities.count`): a pass over an entity type the target
  holds none of skips matching and creates at once (the first sync of a large
  directory makes no lookups). Without it every unlinked object is looked up.
* **Disable** (the ``disable`` op): deprovisioning with ``deprovision = "disable"``
  (the default) soft-deletes an object that left the source or its scope, and deletes
  it after ``deleteAfter``; an ``update`` with ``enable`` brings it back. A target
  whose system has no such state writes what it can (the files target sets
  ``active: false`` in the row) or answers the op with a failed result (escrowed), and
  its integrations should deprovision with ``"delete"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["TargetCapabilities"]


class TargetCapabilities:
    """The optional methods of :class:`~sluiced.connectors.Target`, each answering
    ``None`` ("not offered") unless a target overrides it."""

    async def find(
        self, entity_type: str, attribute: str, values: Sequence[Any]
    ) -> Mapping[Any, Sequence[str]] | None:
        """For matching: the ids of the objects of *entity_type* whose *attribute*
        equals each of *values*.

        Returns:
            ``{value: [target ids]}`` (a value no object has may be left out), or
            None: this target cannot look objects up, so only remembered links match.

        Raises:
            TransientError: worth retrying (the engine retries with backoff).
            CredentialsError, SyncError: as :meth:`~sluiced.connectors.Target.apply`.

        Cancellation: nothing to undo (a lookup changes nothing).
        """
        return None

    async def count(self, entity_type: str) -> int | None:
        """How many objects of *entity_type* the target holds, or None: cannot tell.

        Raises and cancellation: as :meth:`find`.
        """
        return None
