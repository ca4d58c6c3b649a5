"""The transport of a blocking socket: the same connection, with waits for the threads that
may wait (a stThreadBlocking server's worker, a ctBlocking client's caller).

A blocking call is the non-blocking one retried after :func:`sockcomp._waits.wait_fd`; the
component's thread, which never calls these, can still flush what it queued on the same socket
through the pump. A thread inside a wait counts as a user of the socket: closing it from another
thread shuts it down (which ends the wait) and the last user out closes the descriptor, so a
descriptor number is never reused under a waiting thread.

Reads are the exception, where the platform has ``MSG_DONTWAIT`` (Linux, the BSDs, macOS) and
the connection is plain TCP: a waiting read is one blocking ``recv`` with ``SO_RCVTIMEO`` as its
time limit, because each extra system call is one more hand-over of the GIL, and with hundreds
of worker threads the hand-overs are what a message costs (``recv`` that finds nothing, then
``poll``, then ``recv`` again took twice the time of one ``recv``). The descriptor then blocks,
and every other call on it passes ``MSG_DONTWAIT``, so the component's thread still never waits.
A ServerClientThread's ``Terminate`` ends such a read through :attr:`WakeUp.blocked_read`, which
shuts the read side down; ``Close`` from another thread already shuts the socket down.
"""
from __future__ import annotations

import errno
import socket
import struct
import time
from typing import Any, Optional

from ._pump import READ
from ._sendqueue import DRAINED
from ._tls import HANDSHAKE_DONE
from ._transport import DONTWAIT, PlainStream, Transport, close_quietly
from ._waits import READY_READ, READY_WRITE, Deadline, thread_state, wait_fd

__all__ = ["WaitingTransport"]

_CONNECT_PENDING = {errno.EINPROGRESS, errno.EALREADY, errno.EAGAIN, errno.EWOULDBLOCK}
_monotonic = time.monotonic


class WaitingTransport(Transport):
    """A :class:`~sockcomp._transport.Transport` with waiting calls for blocking sockets.

    Each call first tries without waiting (the common case costs one system call) and counts
    itself as a user of the descriptor only while it really waits.
    """

    __slots__ = ("fd_blocks", "recv_timeout")

    def __init__(self, sock: socket.socket, protocol: Any, pump: Any, lock: Any,
                 served_by_worker: bool = False) -> None:
        # a worker's accepted socket comes blocking from accept(): keep it so (no system call)
        blocks = bool(DONTWAIT) and served_by_worker and sock.gettimeout() is None
        super().__init__(sock, protocol, pump, lock, served_by_worker, keep_blocking=blocks)
        self.sends_alone = False  # the waiting caller sends too
        #: True while reads block in ``recv`` (see the module docstring).
        self.fd_blocks = False
        if blocks:
            self._reads_block()
        #: The ``SO_RCVTIMEO`` set, in ms (None: no limit, as the OS starts).
        self.recv_timeout: Optional[int] = None

    def start_tls(self, context: Any, server_side: bool, hostname: Optional[str]) -> None:
        """TLS reads through its own layer, which must never block: the descriptor stops
        blocking first."""
        if self.fd_blocks:
            with self.lock:
                self.sock.setblocking(False)
                self.fd_blocks = False
        super().start_tls(context, server_side, hostname)

    def _enter(self) -> bool:
        """Count the calling thread as a user of the descriptor; False when it is closed.

        No lock: the entry goes in first, then ``_closed`` is read, while a close sets
        ``_closed`` first and then reads the entries (under the lock). So either the close
        sees this thread (and leaves the descriptor to the last one out) or this thread sees
        the close. The GIL orders these reads and writes; ``list.append`` and ``list.pop`` are
        single steps under it.
        """
        self._users.append(None)
        if self._closed:
            self._leave()
            return False
        return True

    def _leave(self) -> None:
        """The calling thread stopped using the descriptor: the last user out closes it if a
        close came meanwhile (decided under the lock, so exactly one thread closes)."""
        self._users.pop()
        if self._release_close is not None:
            self._close_as_last_user()

    def _close_as_last_user(self) -> None:
        """A close came while threads were inside: the last one out closes the descriptor."""
        with self.lock:
            if self._users or self._release_close is None:
                return
            graceful = self._release_close
            self._release_close = None
        close_quietly(self.sock, graceful, drain=not self.peer_finished)

    def _wait(self, events: int, deadline: Deadline, use_wake: bool = True) -> int:
        """:func:`wait_fd` on this socket, as one of its users (see the module docstring)."""
        if not self._enter():
            return events  # the caller's next attempt finds it closed
        try:
            return wait_fd(self.fd, events, deadline.remaining_ms(), use_wake)
        finally:
            self._leave()

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
                if self.stamps:
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
        woken). Errors raise.

        Where it can (see the module docstring) this is one blocking ``recv``, written out in
        this method: it runs once per message in every worker, so the path that returns data
        calls no helper.
        """
        if not DONTWAIT or timeout_ms == 0 or self.tls:
            return self._polling_read(size, timeout_ms)
        if timeout_ms is not None and timeout_ms < 0:
            timeout_ms = None
        wake = thread_state.wake
        self._users.append(None)  # _enter(), written out
        if self._closed:
            self._leave()
            return b""
        try:
            if not self.fd_blocks:
                with self.lock:  # no send of another thread is under way meanwhile
                    self._reads_block()
                    self.sock.setblocking(True)
            if timeout_ms != self.recv_timeout:
                seconds, ms = divmod(timeout_ms or 0, 1000)  # 0: no limit
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                                     struct.pack("@ll", seconds, ms * 1000))
                self.recv_timeout = timeout_ms
            if wake is not None:
                wake.blocked_read = self  # Terminate ends the read with our shut_read()
                if wake.signalled:
                    return None
            try:
                data = self.sock.recv(size)
            except BlockingIOError:  # SO_RCVTIMEO ran out
                return None
            if data:
                if self.stamps:
                    self.last_activity = _monotonic()
            elif wake is not None and wake.signalled:
                return None  # Terminate shut the read side to end the wait
            else:
                self.note_end_of_stream()
            return data
        finally:
            if wake is not None:
                wake.blocked_read = None
            self._users.pop()  # _leave(), written out
            if self._release_close is not None:
                self._close_as_last_user()

    def _polling_read(self, size: int, timeout_ms: Optional[int]) -> Optional[bytes]:
        """:meth:`read_wait` as non-blocking ``recv`` calls and waits for readiness (TLS, a
        zero time limit, platforms without ``MSG_DONTWAIT``)."""
        deadline = Deadline(timeout_ms)
        while True:
            if self._closed:
                return b""
            data = self.read_now(size)
            if data is not None:
                return data
            if not self._wait(READY_READ, deadline):
                return None  # the time ran out, or the thread was woken

    def _reads_block(self) -> None:
        """From now on reads may block; every other call passes MSG_DONTWAIT (the caller makes
        the descriptor block, if it does not yet)."""
        self.stream = PlainStream(self.sock, DONTWAIT)
        self._recv = self.stream.recv
        self.fd_blocks = True

    def read_now(self, size: int) -> Optional[bytes]:
        """Read without waiting: bytes, ``b''`` at the end, None when nothing is there."""
        try:
            data = self._recv(size)
        except BlockingIOError:
            return None
        if data:
            if self.stamps:
                self.last_activity = _monotonic()
        else:
            self.note_end_of_stream()
        return data

    def readable_wait(self, timeout_ms: Optional[int]) -> bool:
        """Wait until the socket is readable (data, end of stream or error), at most
        ``timeout_ms``."""
        if self.tls and self.stream.pending():
            return True
        return bool(self._wait(READY_READ, Deadline(timeout_ms)))

    def send_wait(self, buf: Any, view: Optional[memoryview], timeout_ms: Optional[int]) -> int:
        """A waiting writer (worker, ctBlocking): queue all of ``view`` (None: all of ``buf``,
        which is ``bytes``) and wait until it went out, at most ``timeout_ms``; returns the
        bytes that went (or will go) out, 0 when the socket was closed meanwhile. Errors raise.

        The first attempt, which sends everything in the common case, is written out here (a
        worker's every reply runs it), with no memoryview of a ``bytes`` reply until a part of
        it is left over.
        """
        data: Any = buf if view is None else view
        n = len(data)
        lock = self.lock
        lock.acquire()
        try:
            if not self.tx.items and not self.stream.has_output:
                try:
                    if self.fd_blocks:  # plain TCP; the stream would add a call per send
                        sent = self.sock.send(data, DONTWAIT)
                    else:
                        sent = self.stream.send(data)
                except BlockingIOError:
                    sent = 0
                if self.stamps:
                    self.last_activity = _monotonic()
                if sent == n:
                    return n
            else:
                sent = 0
            rest = memoryview(data)[sent:]
            item = self.tx.append_all(rest if type(buf) is bytes else bytes(rest))
        finally:
            lock.release()
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
                    return n - len(rest) + self.tx.withdraw(item, len(rest))


def _so_error(sock: socket.socket) -> int:
    try:
        return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
    except OSError as exc:
        return exc.errno or errno.EBADF


