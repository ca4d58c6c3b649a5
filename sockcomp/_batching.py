"""Batched read wake-ups for fast one-way streams (``SO_RCVLOWAT``, Linux only).

A read event costs a notifier activation, a Python call chain and a Qt signal emission. Measured
after a 64 KiB ``recv`` has flushed the caches, that is about 10 µs, roughly what copying the
64 KiB costs. When a peer streams faster than the event loop, each wake-up still finds about one
of the peer's writes, so a one-way transfer pays that overhead per write. While a connection
streams, a socket therefore asks the kernel to wake it only once :attr:`receive_batch` bytes are
waiting (``SO_RCVLOWAT``), and one ``OnRead`` covers several writes.

A connection starts batching after :data:`BATCH_AFTER` read events in a row that each brought
at least 64 KiB, with no send of its own in between. A send resets the count, so request and
response traffic never batches, and a send while batching ends the batch: the peer may be
waiting for that answer before it sends the rest. A timer ticks every :data:`TICK_MS` ms while
any socket of the thread batches. A tick that finds no read since the previous tick ends
batching: the stream paused or ended, so the socket wakes on every byte again. Lowering the
mark makes the kernel report what is waiting at once, so the tail of a burst waits at most two
ticks. When that tail was really held back (bytes were waiting), or the batch ended with a
send, the connection needs a four times longer streak before it batches again. A stop-and-wait
protocol with big messages therefore pays the delay only a few times per connection.

A socket whose application stopped reading (a full receive buffer, ``SD_RECEIVE``) stops
batching at the next tick, with no back-off, so the timer never ticks for an idle reader.
FIN, errors and a full receive window wake the socket whatever the mark.
"""
from __future__ import annotations

import fcntl
import socket
import sys
import termios
from typing import TYPE_CHECKING, Optional

from PySide6.QtCore import QObject, Qt, QTimer

from ._pump import READ

if TYPE_CHECKING:
    from .winsock import CustomWinSocket

__all__ = ["BATCH_AFTER", "RECEIVE_BATCH", "SUPPORTED", "TICK_MS", "start"]

#: Whether this platform honours SO_RCVLOWAT in poll/epoll and wakes when it is lowered.
SUPPORTED = sys.platform.startswith("linux") and hasattr(socket, "SO_RCVLOWAT")
#: Bytes a batching socket lets the kernel gather before it wakes (the default receive_batch).
RECEIVE_BATCH = 256 * 1024
#: Read events of at least 64 KiB in a row, with no send in between, before batching starts.
BATCH_AFTER = 8
#: The longest streak ever required: back-off stops growing here.
BATCH_AFTER_MAX = 1 << 20
#: Tick of the timer that ends batching when a stream pauses (ms).
TICK_MS = 1


def start(sock: "CustomWinSocket") -> None:
    """Start batching reads on ``sock`` (non-blocking, plain TCP, in its pump's thread)."""
    os_sock = sock._sock
    batch = sock.receive_batch
    if os_sock is None or sock._pump is None or batch <= 1:
        return
    if sock._blocking or sock._tls is not None:  # blocking reads would wait for the mark
        sock._batch_after = BATCH_AFTER_MAX
        return
    try:
        os_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, batch)
    except OSError:
        sock._batch_after = BATCH_AFTER_MAX  # not a TCP socket after all: never again
        return
    sock._batching = True
    sock._batch_seen = True
    pump = sock._pump
    watch: Optional[_Watch] = pump.batch_watch
    if watch is None:
        watch = pump.batch_watch = _Watch(pump)
    watch.add(sock)


def stop(sock: "CustomWinSocket") -> int:
    """Wake on every byte again; returns the bytes the kernel holds (0 when unknown)."""
    sock._batching = False
    sock._streak = 0
    os_sock = sock._sock
    if os_sock is None:
        return 0
    try:
        os_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
        pending = bytearray(4)
        fcntl.ioctl(os_sock.fileno(), termios.FIONREAD, pending)
    except OSError:
        return 0
    return int.from_bytes(pending, sys.byteorder)


def replied(sock: "CustomWinSocket") -> None:
    """The application sent while batching: the peer may be waiting for that answer before
    it sends more (stop-and-wait with big messages), so stop, and be slower to batch again."""
    stop(sock)
    _back_off(sock)


def _back_off(sock: "CustomWinSocket") -> None:
    """Need a four times longer streak before batching this connection again."""
    sock._batch_after = min(sock._batch_after * 4, BATCH_AFTER_MAX)


class _Watch:
    """The batching sockets of one pump (one thread), and the timer that notices pauses."""

    def __init__(self, parent: QObject) -> None:
        self.sockets: list[CustomWinSocket] = []
        self.timer = QTimer(parent)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self.tick)

    def add(self, sock: "CustomWinSocket") -> None:
        if sock not in self.sockets:  # closed, reopened and batching again within one tick
            self.sockets.append(sock)
        if not self.timer.isActive():
            self.timer.start()

    def tick(self) -> None:
        keep = []
        for sock in self.sockets:
            if not sock._batching or sock._sock is None:
                continue  # closed or reset meanwhile
            if sock._batch_seen:
                sock._batch_seen = False
                keep.append(sock)
                continue
            if not sock._mask & READ:  # the application stopped reading (buffer full, SD_RECEIVE)
                stop(sock)
                continue
            if stop(sock):  # a tail was held back: be slower to batch on this connection
                _back_off(sock)
        self.sockets = keep
        if not keep:
            self.timer.stop()
