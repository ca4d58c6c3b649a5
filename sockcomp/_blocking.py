"""The transport of a blocking socket: the same connection, with waits for the threads that
may wait (a stThreadBlocking server's worker, a ctBlocking client's caller).

A blocking call is the non-blocking one retried after :func:`sockcomp._waits.wait_fd`, so the
OS socket never blocks and the component's thread, which never calls these, can still flush
what it queued on the same socket through the pump. A thread inside a wait counts as a user of
the socket: closing it from another thread shuts it down (which ends the wait) and the last
user out closes the descriptor, so a descriptor number is never reused under a waiting thread.
"""
from __future__ import annotations

import errno
import socket
import time
from typing import Any, Optional

from ._pump import READ
from ._sendqueue import DRAINED
from ._tls import HANDSHAKE_DONE
from ._transport import Transport, close_quietly
from ._waits import READY_READ, READY_WRITE, Deadline, wait_fd

__all__ = ["WaitingTransport"]

_CONNECT_PENDING = {errno.EINPROGRESS, errno.EALREADY, errno.EAGAIN, errno.EWOULDBLOCK}
_monotonic = time.monotonic


class WaitingTransport(Transport):
    """A :class:`~sockcomp._transport.Transport` with waiting calls for blocking sockets.

    Each call first tries without waiting (the common case costs one system call) and counts
    itself as a user of the descriptor only while it really waits.
    """

    __slots__ = ()

    def _wait(self, events: int, deadline: Deadline, use_wake: bool = True) -> int:
        """:func:`wait_fd` on this socket, as one of its users (see the module docstring)."""
        lock = self.lock
        with lock:
            if self._closed:
                return events  # the caller's next attempt finds it closed
            self._users += 1
        try:
            return wait_fd(self.fd, events, deadline.remaining_ms(), use_wake)
        finally:
            with lock:
                self._users -= 1
                close = self._users == 0 and self._release_close is not None
                graceful = bool(self._release_close)
                if close:
                    self._release_close = None
            if close:
                close_quietly(self.sock, graceful)

    def error_wait(self, deadline: Deadline) -> int:
        """While not reading (the end of the stream came, or the buffer is full): wait until
        the kernel reports an error on the socket, ``deadline``, or a wake-up; returns the
        error's errno (0: none). A hang-up without an error waits out the time instead."""
        if not self._wait(0, deadline) or self._closed:
            return 0
        err = _so_error(self.sock)
        if not err:  # both directions closed, no error: nothing to report, do not spin
            wait_fd(-1, 0, deadline.remaining_ms())
        return err

    def connect_wait(self, sockaddr: Any, deadline: Deadline) -> int:
        """Connect, waiting until ``deadline``; returns 0 or an errno (ETIMEDOUT on time-out)."""
        err = self.sock.connect_ex(sockaddr)
        if err not in _CONNECT_PENDING:
            return err
        while True:
            if self._wait(READY_WRITE, deadline, use_wake=False) and not self._closed:
                return self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if deadline.expired or self._closed:
                return errno.ETIMEDOUT

    def handshake_wait(self, deadline: Deadline) -> None:
        """Run the whole handshake in this thread, waiting until ``deadline``; raises OSError
        (TimeoutError when the time runs out) or ssl.SSLError."""
        while True:
            if self._closed:
                raise ConnectionAbortedError(errno.ECONNABORTED,
                                             "TLS handshake abandoned (socket closed)")
            want = self.handshake_step()
            if want == HANDSHAKE_DONE:
                self.last_activity = _monotonic()
                return
            if not self._wait(READY_READ if want == READ else READY_WRITE, deadline):
                if deadline.expired:
                    raise TimeoutError(errno.ETIMEDOUT, "TLS handshake timed out")
                raise ConnectionAbortedError(errno.ECONNABORTED,
                                             "TLS handshake abandoned (thread terminated)")

    def read_wait(self, size: int, timeout_ms: Optional[int]) -> Optional[bytes]:
        """A worker's (or ctBlocking caller's) read: wait for data at most ``timeout_ms``
        (None: no limit); returns bytes, ``b''`` at the end of the stream, or None (time out,
        woken). Errors raise."""
        deadline = Deadline(timeout_ms)
        while True:
            if self._closed:
                return b""
            try:
                data = self._recv(size)
            except BlockingIOError:
                pass
            else:
                if data:
                    self.last_activity = _monotonic()
                return data
            if not self._wait(READY_READ, deadline):
                return None  # the time ran out, or the thread was woken

    def read_now(self, size: int) -> Optional[bytes]:
        """Read without waiting: bytes, ``b''`` at the end, None when nothing is there."""
        try:
            data = self._recv(size)
        except BlockingIOError:
            return None
        if data:
            self.last_activity = _monotonic()
        return data

    def readable_wait(self, timeout_ms: Optional[int]) -> bool:
        """Wait until the socket is readable (data, end of stream or error), at most
        ``timeout_ms``."""
        if self.tls and self.stream.pending():
            return True
        return bool(self._wait(READY_READ, Deadline(timeout_ms)))

    def send_wait(self, buf: Any, view: memoryview, timeout_ms: Optional[int]) -> int:
        """A waiting writer (worker, ctBlocking): queue all of ``view`` and wait until it went
        out, at most ``timeout_ms``; returns the bytes that went (or will go) out, 0 when the
        socket was closed meanwhile. Errors raise."""
        n = len(view)
        lock = self.lock
        with lock:
            if not self.tx.items and not self.stream.has_output:
                try:
                    sent = self.stream.send(view)
                except BlockingIOError:
                    sent = 0
                self.last_activity = _monotonic()
                if sent == n:
                    return n
                view = view[sent:]
            item = self.tx.append_all(view if type(buf) is bytes else bytes(view))
        deadline = Deadline(timeout_ms)
        while True:
            with lock:
                if self._closed:
                    return 0
                if self.tx.flush(self._send_counted, self.stream.shutdown_write) == DRAINED:
                    self.stream.drain()
                if self.tx.sent_through(item):
                    return n
            # the time ran out, or the thread is being terminated: take back what is left
            if not self._wait(READY_WRITE, deadline):
                with lock:
                    return n - len(view) + self.tx.withdraw(item, len(view))


def _so_error(sock: socket.socket) -> int:
    try:
        return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
    except OSError as exc:
        return exc.errno or errno.EBADF


