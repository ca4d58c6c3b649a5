"""IdleTimeout: close connections that saw no traffic for too long (ICS's TimeoutIdle).

One single-shot QTimer per component, set for the earliest deadline among its connections;
sockets only stamp ``last_activity`` on traffic, so the per-event cost is one clock read and a
10,000-connection server does not need 10,000 timers.
"""
from __future__ import annotations

import time
from typing import Callable, Iterable

from PySide6.QtCore import QObject, QTimer

from .winsock import CustomWinSocket

__all__ = ["IdleWatch"]


class IdleWatch:
    """Watches the sockets ``sockets()`` returns; each uses its own ``IdleTimeout`` (ms)."""

    def __init__(self, owner: QObject, sockets: Callable[[], Iterable[CustomWinSocket]]) -> None:
        self._sockets = sockets
        self._timer = QTimer(owner)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._check)

    def arm(self) -> None:
        """A connection started (or a timeout changed): make sure a check is scheduled."""
        self._schedule()

    def stop(self) -> None:
        self._timer.stop()

    def _schedule(self) -> None:
        now = time.monotonic()
        soonest = None
        for sock in self._sockets():
            if sock.IdleTimeout > 0 and sock.Connected:
                due = sock.last_activity + sock.IdleTimeout / 1000 - now
                soonest = due if soonest is None else min(soonest, due)
        if soonest is None:
            self._timer.stop()
        else:
            self._timer.start(max(int(soonest * 1000) + 1, 1))

    def _check(self) -> None:
        now = time.monotonic()
        for sock in list(self._sockets()):
            if (sock.IdleTimeout > 0 and sock.Connected
                    and now - sock.last_activity >= sock.IdleTimeout / 1000):
                sock._idle_expired()
        self._schedule()
