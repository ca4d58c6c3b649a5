"""The send side's parts that outlive a socket object: queued streams and the graceful closer.

A socket object's send queue holds byte chunks (memoryviews), :class:`QueuedStream` items (file
objects read in chunks as the socket drains) and two markers: :data:`SHUTDOWN` (send FIN here)
and :data:`DROP` (close the connection here, for ``SendStreamThenDrop``). When a connection is
closed gracefully while bytes are still queued, a :class:`Closer` takes the OS socket and the
queue over, flushes it in the background and then closes the descriptor, so ``Close()`` never
loses data the application already handed over.
"""
from __future__ import annotations

import socket
import ssl
from collections import deque
from typing import Any, Optional

from ._pump import WRITE, Pump
from .errors import HandleException

__all__ = ["QueuedStream", "SHUTDOWN", "DROP", "Closer", "close_quietly", "STREAM_CHUNK",
           "RECEIVE_CHUNK"]

#: Bytes read from a stream per send.
STREAM_CHUNK = 64 * 1024
#: Bytes asked from the kernel per read, unless a bulk transfer is filling every read (then
#: winsock.RECEIVE_CHUNK_MAX). Below glibc's initial 128 KiB mmap threshold, so a small read
#: never pays for an mmap/munmap pair (measured: docs/benchmarks.md).
RECEIVE_CHUNK = 64 * 1024
#: Longest a closed socket keeps flushing queued bytes to a peer that does not read (ms).
CLOSE_FLUSH_TIMEOUT_MS = 60_000

SHUTDOWN = object()  # send-queue marker: shutdown(SHUT_WR) here
DROP = object()      # send-queue marker: close the socket here (SendStreamThenDrop)


class QueuedStream:
    """A file-like object queued by SendStream, read in chunks as the socket drains."""

    __slots__ = ("file", "pending")

    def __init__(self, file: Any) -> None:
        self.file = file
        self.pending: Optional[memoryview] = None

    def next_chunk(self) -> Optional[memoryview]:
        if self.pending is None or not len(self.pending):
            data = self.file.read(STREAM_CHUNK)
            if not data:
                return None
            self.pending = memoryview(data if isinstance(data, bytes) else bytes(data))
        return self.pending

    def close(self) -> None:
        try:
            self.file.close()
        except Exception as exc:  # the stream's own problem: report, keep going
            HandleException(exc)


def close_quietly(sock: socket.socket, graceful: bool) -> None:
    """Close an OS socket. A graceful close first drains unread input: Linux then sends FIN,
    not RST."""
    try:
        if graceful:
            sock.setblocking(False)
            for _ in range(64):
                if not sock.recv(RECEIVE_CHUNK):
                    break
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
    except OSError:
        pass
    sock.close()


class Closer:
    """Finishes a graceful close in the background: flush the queue, then close the OS socket."""

    def __init__(self, sock: socket.socket, queue: deque[Any], pump: Pump) -> None:
        from PySide6.QtCore import QTimer
        self._sock = sock
        self._queue = queue
        self._pump = pump
        self._fd = sock.fileno()
        CLOSERS.add(self)
        pump.register(self._fd, self._on_ready, WRITE)
        # a QTimer owned by the pump (stopped when the flush ends), not singleShot(ms, ctx, fn):
        # that overload crashed when it fired long after the closer had finished
        self._timer = QTimer(pump)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._give_up)
        self._timer.start(CLOSE_FLUSH_TIMEOUT_MS)

    def _on_ready(self, events: int) -> None:
        queue = self._queue
        sock = self._sock
        while queue:
            item = queue[0]
            if item is SHUTDOWN or item is DROP:
                queue.popleft()
                continue
            if isinstance(item, QueuedStream):
                try:
                    chunk = item.next_chunk()
                except Exception as exc:  # the stream's own failure: report, drop the stream
                    HandleException(exc)
                    chunk = None
                if chunk is None:
                    queue.popleft()
                    item.close()
                    continue
            else:
                chunk = item
            try:
                sent = sock.send(chunk)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError,
                    ssl.SSLWantWriteError):
                return
            except OSError:
                self._finish(graceful=False)
                return
            if isinstance(item, QueuedStream):
                item.pending = chunk[sent:]
                if sent < len(chunk):
                    return
            elif sent < len(chunk):
                queue[0] = memoryview(chunk)[sent:]
                return
            else:
                queue.popleft()
        self._finish(graceful=True)

    def _give_up(self) -> None:
        if self in CLOSERS:
            self._finish(graceful=False)

    def _finish(self, graceful: bool) -> None:
        if self not in CLOSERS:
            return
        CLOSERS.discard(self)
        self._timer.stop()
        self._timer.deleteLater()
        self._pump.unregister(self._fd)
        for item in self._queue:
            if isinstance(item, QueuedStream):
                item.close()
        self._queue.clear()
        close_quietly(self._sock, graceful)


CLOSERS: set[Closer] = set()
