"""Files shipped with sluiced: the documented example config and the systemd units.

Their one source is the repository: ``config.toml.example`` at its root and
``systemd/``. A wheel carries them as package data under ``sluiced/share/`` (see
``[tool.setuptools]`` in pyproject.toml: the package ``sluiced.share`` is the repository
root, ``sluiced.share.systemd`` its ``systemd/``, each with only these files). An
editable install or a source checkout runs ``daemon/`` in place, so there they are read
from the repository root next to it.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

__all__ = ["SHIPPED", "shipped_text"]

#: What ``sluiced config example NAME`` prints, by name: the path in the repository.
SHIPPED = {
    "config.toml": "config.toml.example",
    "sluiced.service": "systemd/sluiced.service",
    "sluiced.socket": "systemd/sluiced.socket",
}


def _locate(relative: str) -> Traversable | None:
    installed = files("sluiced").joinpath("share", *relative.split("/"))
    if installed.is_file():
        return installed
    checkout = Path(__file__).resolve().parent.parent.joinpath(relative)
    return checkout if checkout.is_file() else None


def shipped_text(name: str) -> str:
    """The text of the shipped file *name* (a key of ``SHIPPED``).

    Raises:
        KeyError: *name* is not a shipped file.
        FileNotFoundError: this installation lacks it (a broken install).
    """
    found = _locate(SHIPPED[name])
    if found is None:
        raise FileNotFoundError(f"this installation of sluiced lacks {SHIPPED[name]}")
    return found.read_text(encoding="utf-8")
