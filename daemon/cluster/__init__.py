"""Which node runs which integration: leases on integrations, held by the nodes that
share one store (:class:`Coordinator`). A node alone on its store holds every
integration (:class:`LocalCoordinator`); nodes sharing a PostgreSQL database claim and
renew leases in it (:class:`~sluiced.cluster.postgres.PostgresCoordinator`, imported
from its module: it needs psycopg)."""

from .coordinator import Coordinator as Coordinator
from .coordinator import Elsewhere as Elsewhere
from .coordinator import LeaseExpired as LeaseExpired
from .coordinator import LocalCoordinator as LocalCoordinator
from .coordinator import NodeInfo as NodeInfo

__all__ = ["Coordinator", "Elsewhere", "LeaseExpired", "LocalCoordinator", "NodeInfo"]
