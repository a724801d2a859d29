"""sluiced: a sync daemon on trio with pluggy plugins."""

__version__ = "0.1.0"
__all__ = ["__version__"]
