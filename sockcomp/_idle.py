"""Connection deadlines: IdleTimeout (ICS's TimeoutIdle) and the TLS HandshakeTimeout.

One single-shot QTimer per component, set for the earliest deadline among its connections;
transports only stamp their last traffic, so the per-event cost is one clock read (none for a
connection without IdleTimeout: ``Transport.stamps``) and a 10,000-connection server does not
need 10,000 timers. A connection that is still handshaking counts: a client that connects and
never speaks TLS is closed like an idle one.
"""
from __future__ import annotations

import errno
import time
from typing import Callable, Iterable, Optional

from PySide6.QtCore import QTimer

from ._lifecycle import LIVE_PHASES, Phase
from ._pump import Pump
from .enums import eeConnect
from .winsock import CustomWinSocket

__all__ = ["IdleWatch", "deadline"]


def deadline(sock: CustomWinSocket) -> Optional[float]:
    """``time.monotonic()`` at which ``sock``'s connection times out (IdleTimeout while it is
    accepted, handshaking or up; HandshakeTimeout while handshaking), or None."""
    t = sock.transport
    phase = sock.Phase
    if t is None or phase not in LIVE_PHASES or phase in (Phase.LOOKUP, Phase.CONNECTING):
        return None
    settings = sock.settings
    if settings.IdleTimeout and not t.stamps:  # set past the setters (sock.settings directly)
        t.stamp_traffic(True)
    due = t.last_activity + settings.IdleTimeout / 1000 if settings.IdleTimeout else None
    if settings.HandshakeTimeout and phase is Phase.HANDSHAKING and t.handshake_started:
        end = t.handshake_started + settings.HandshakeTimeout / 1000
        due = end if due is None else min(due, end)
    return due


def expire(sock: CustomWinSocket, now: float) -> None:
    """The deadline passed: a handshake that took too long is OnError(eeConnect, 10060); no
    traffic for IdleTimeout ms is OnError(eeGeneral, 10060); then the connection ends."""
    t = sock.transport
    limit = sock.settings.HandshakeTimeout
    if sock.Phase is Phase.HANDSHAKING and t is not None and limit and \
            now >= t.handshake_started + limit / 1000:
        sock.fail(eeConnect, TimeoutError(errno.ETIMEDOUT,
                                          f"TLS handshake took more than {limit} ms"),
                  "SSL_do_handshake")
        return
    sock.idle_expired()


class IdleWatch:
    """Watches the sockets ``sockets()`` returns, each with its own deadlines, with ``timer``
    (single-shot, of the component's thread; its owner stops it). ``pump``: that thread's (None
    before there is a QCoreApplication)."""

    def __init__(self, timer: QTimer, sockets: Callable[[], Iterable[CustomWinSocket]],
                 pump: Optional[Pump]) -> None:
        self._sockets = sockets
        self._timer = timer
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._check)
        self._pump = pump

    def arm(self) -> None:
        """A connection started (or a timeout changed): make sure a check is scheduled. From
        another thread (a blocking client opened in a worker) the check is scheduled in the
        component's thread: a timer cannot be started from another."""
        pump = self._pump
        if pump is not None and not pump.in_own_thread():
            pump.call_soon_threadsafe(self._schedule)
        else:
            self._schedule()

    def stop(self) -> None:
        self._timer.stop()

    def _schedule(self) -> None:
        soonest = None
        for sock in self._sockets():
            due = deadline(sock)
            if due is not None and (soonest is None or due < soonest):
                soonest = due
        if soonest is None:
            self._timer.stop()
        else:
            self._timer.start(max(int((soonest - time.monotonic()) * 1000) + 1, 1))

    def _check(self) -> None:
        now = time.monotonic()
        for sock in list(self._sockets()):
            due = deadline(sock)
            if due is not None and due <= now:
                expire(sock, now)
        self._schedule()
