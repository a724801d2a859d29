"""The web console: plain HTML, a script of plain ES modules and one style sheet
(``static/``), served under ``/console/`` on the control API's TCP listener when
``console = true``.

:func:`console_app` is that listener's app: the console's pages and its login, and the
control API behind the bearer token or a console session (:mod:`sluiced.api.auth`);
every answer carries the console's security headers (:mod:`.headers`).
"""

from .app import console_app as console_app

__all__ = ["console_app"]
