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


if TYPE_CHECKING:
    from ._transport import Transport

__all__ = ["BATCH_AFTER", "RECEIVE_BATCH", "SUPPORTED", "TICK_MS", "Batcher", "start", "stop",
           "replied"]

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


class Batcher:
    """One connection's batching state: the streak of big reads, whether it batches now,
    whether a read came since the last tick, and the streak it needs (grows with back-off)."""

    __slots__ = ("streak", "active", "seen", "after")

    def __init__(self) -> None:
        self.streak = 0
        self.active = False
        self.seen = False
        self.after = BATCH_AFTER if SUPPORTED else 0


def start(transport: "Transport") -> None:
    """Start batching reads (non-blocking plain TCP, in the pump's thread)."""
    batch = transport.batch
    protocol = transport.protocol
    size = protocol.receive_batch if protocol is not None else 0
    pump = transport.pump
    if pump is None or size <= 1:
        return
    if transport.tls or transport.served_by_worker:  # their reads would wait for the mark
        batch.after = BATCH_AFTER_MAX
        return
    try:
        transport.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, size)
    except OSError:
        batch.after = BATCH_AFTER_MAX  # not a TCP socket after all: never again
        return
    batch.active = True
    batch.seen = True
    watch: Optional[_Watch] = pump.batch_watch
    if watch is None:
        watch = pump.batch_watch = _Watch(pump)
    watch.add(transport)


def stop(transport: "Transport") -> int:
    """Wake on every byte again; returns the bytes the kernel holds (0 when unknown)."""
    batch = transport.batch
    batch.active = False
    batch.streak = 0
    if transport.closed:
        return 0
    sock = transport.sock
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
        pending = bytearray(4)
        fcntl.ioctl(sock.fileno(), termios.FIONREAD, pending)
    except OSError:
        return 0
    return int.from_bytes(pending, sys.byteorder)


def replied(transport: "Transport") -> None:
    """The application sent while batching: the peer may be waiting for that answer before
    it sends more (stop-and-wait with big messages), so stop, and be slower to batch again."""
    stop(transport)
    _back_off(transport)


def _back_off(transport: "Transport") -> None:
    """Need a four times longer streak before batching this connection again."""
    batch = transport.batch
    batch.after = min(batch.after * 4, BATCH_AFTER_MAX)


class _Watch:
    """The batching connections of one pump (one thread), and the timer that notices pauses."""

    def __init__(self, parent: QObject) -> None:
        self.transports: list[Transport] = []
        self.timer = QTimer(parent)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self.tick)

    def add(self, transport: "Transport") -> None:
        if transport not in self.transports:
            self.transports.append(transport)
        if not self.timer.isActive():
            self.timer.start()

    def tick(self) -> None:
        keep = []
        for transport in self.transports:
            batch = transport.batch
            if not batch.active or transport.closed:
                continue  # closed or reset meanwhile
            if batch.seen:
                batch.seen = False
                keep.append(transport)
                continue
            if not transport.reading:  # the application stopped reading (full, SD_RECEIVE)
                stop(transport)
                continue
            if stop(transport):  # a tail was held back: be slower to batch on this connection
                _back_off(transport)
        self.transports = keep
        if not keep:
            self.timer.stop()
