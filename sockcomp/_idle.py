"""Connection deadlines: IdleTimeout (ICS's TimeoutIdle) and the TLS HandshakeTimeout.

One single-shot QTimer per component, set for the earliest deadline among its connections;
sockets only stamp their last traffic, so the per-event cost is one clock read and a
10,000-connection server does not need 10,000 timers. A connection that is still handshaking
counts: a client that connects and never speaks TLS is closed like an idle one.
"""
from __future__ import annotations

import time
from typing import Callable, Iterable

from PySide6.QtCore import QObject, QTimer

from .winsock import CustomWinSocket

__all__ = ["IdleWatch"]


class IdleWatch:
    """Watches the sockets ``sockets()`` returns, each with its own deadlines."""

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
        soonest = None
        for sock in self._sockets():
            due = sock.deadline()
            if due is not None and (soonest is None or due < soonest):
                soonest = due
        if soonest is None:
            self._timer.stop()
        else:
            self._timer.start(max(int((soonest - time.monotonic()) * 1000) + 1, 1))

    def _check(self) -> None:
        now = time.monotonic()
        for sock in list(self._sockets()):
            due = sock.deadline()
            if due is not None and due <= now:
                sock.deadline_passed()
        self._schedule()
