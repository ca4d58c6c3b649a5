"""Per-socket TCP options: keepalive tuned per connection (the seeds' "heartbeat").

TCP keepalive is how a connection notices a peer whose cable was pulled: after ``idle`` ms
without traffic the kernel sends probes every ``interval`` ms and gives up after ``count``
unanswered ones; the next read then fails with ETIMEDOUT, which sockcomp reports as
``OnError(eeDisconnect, 10060)`` followed by ``OnDisconnect``. System defaults (two hours idle on
Linux) are useless for that, hence per-socket values, set with the platform's own options:
Linux TCP_KEEPIDLE/TCP_KEEPINTVL/TCP_KEEPCNT, macOS TCP_KEEPALIVE (+ KEEPINTVL/KEEPCNT),
Windows SIO_KEEPALIVE_VALS (which has no count: Windows uses 10 probes).
"""
from __future__ import annotations

import socket
import sys
from typing import Any

__all__ = ["apply_keepalive"]


def apply_keepalive(sock: socket.socket, settings: Any) -> None:
    """Switch keepalive on (with the timing of ``settings``: KeepAlive, KeepAliveTime,
    KeepAliveInterval, KeepAliveCount, already rounded to what the platform takes) or off."""
    if not settings.KeepAlive:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)
        return
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        sock.ioctl(socket.SIO_KEEPALIVE_VALS,  # type: ignore[attr-defined]
                   (1, settings.KeepAliveTime, settings.KeepAliveInterval))
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    idle_option = getattr(socket, "TCP_KEEPIDLE", None) or getattr(socket, "TCP_KEEPALIVE", None)
    if idle_option is not None:
        sock.setsockopt(socket.IPPROTO_TCP, idle_option, settings.KeepAliveTime // 1000)
    if hasattr(socket, "TCP_KEEPINTVL"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL,
                        settings.KeepAliveInterval // 1000)
    if hasattr(socket, "TCP_KEEPCNT"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, settings.KeepAliveCount)
