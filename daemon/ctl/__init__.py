"""``sluicectl``: the client of the control socket (see :mod:`._main`).

What a plugin uses to add commands (hook ``sluiced_ctl_commands``): :class:`Command`,
:class:`Session` and :data:`FOLLOW_HELP`.
"""

from ._command import FOLLOW_HELP as FOLLOW_HELP
from ._command import Command as Command
from ._command import Session as Session
from ._main import build_parser as build_parser
from ._main import main as main
from ._main import plugin_commands as plugin_commands

__all__ = ["FOLLOW_HELP", "Command", "Session", "build_parser", "main", "plugin_commands"]
