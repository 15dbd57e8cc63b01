"""Minimal sd_notify(3): READY=1, WATCHDOG=1, STATUS=... to $NOTIFY_SOCKET (no dependency).

Why our own: the protocol is one datagram; the daemon must work the same with and without systemd.
"""

from __future__ import annotations

import contextlib
import os
import socket


class Notifier:
    """Sends notifications when NOTIFY_SOCKET is set, does nothing otherwise."""

    def __init__(self, address: str | None = None) -> None:
        addr = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self.sock: socket.socket | None = None
        self.addr = ""
        if addr:
            if addr.startswith("@"):
                addr = "\0" + addr[1:]  # abstract namespace
            self.addr = addr
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    @property
    def enabled(self) -> bool:
        """True when running under a service manager that listens."""
        return self.sock is not None

    def notify(self, message: str) -> None:
        """Send one notification; errors are ignored (systemd may be restarting)."""
        if self.sock is None:
            return
        with contextlib.suppress(OSError):
            self.sock.sendto(message.encode(), self.addr)
