"""systemd's notification protocol, by hand: a datagram to ``$NOTIFY_SOCKET``.

Without ``NOTIFY_SOCKET`` (not under systemd, or not ``Type=notify``) every function
does nothing. ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``, if set, naming this process)
asks for a ``WATCHDOG=1`` at least that often; the daemon sends it from its event loop
at half that interval, so a blocked loop is noticed and restarted.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time

import trio

__all__ = ["Notifier"]


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if address:
            # An abstract socket is written with a leading "@".
            self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        self.watchdog_s: float | None = None
        if usec and usec.isdigit() and (not pid or pid == str(os.getpid())):
            self.watchdog_s = int(usec) / 1_000_000

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> None:
        """Send ``KEY=VALUE`` fields; errors are ignored (systemd may be gone)."""
        if self.address is None:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
            sock.sendto("\n".join(fields).encode(), self.address)

    def ready(self, status: str = "") -> None:
        self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def reloading(self) -> None:
        self.send(
            "RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"
        )

    def stopping(self) -> None:
        self.send("STOPPING=1")

    async def watchdog_loop(self) -> None:
        """Ping the watchdog at half its interval, forever (returns at once if none)."""
        if self.address is None or self.watchdog_s is None:
            return
        while True:
            self.send("WATCHDOG=1")
            await trio.sleep(self.watchdog_s / 2)
