"""The transport: one OS socket, its stream (plain or TLS), its send queue and its readiness.

asyncio's ``selector_events`` is the model: the transport owns the socket, the registration
with the thread's readiness pump and the outgoing buffer, and reports to its *protocol*, the
socket object (:class:`sockcomp.winsock.CustomWinSocket`), through a handful of callbacks:

``data_received(data)``, ``eof_received()``, ``error_received(event, exc, api)``,
``connect_done(err)``, ``handshake_done()``, ``write_drained()``, ``drop_reached()``,
``flush_done()``.

The OS socket starts non-blocking. In the component's thread the transport never waits:
reads happen when the pump says the socket is readable, sends queue what the kernel does not
take and flush it on writability. A thread that may wait (a thread-mode worker, a ctBlocking
caller) uses the ``*_wait`` methods of :mod:`sockcomp._blocking`, whose reads may make the
descriptor block, every other call then passing ``MSG_DONTWAIT`` (:class:`PlainStream`). Every
caller, in any thread, goes through the one :class:`~sockcomp._sendqueue.SendQueue` under the
one lock, so bytes from different threads never interleave inside a send call. One exception:
where only the pump's thread hands bytes to the kernel (``sends_alone``: no worker, no waiting
caller), that thread's send of a whole ``bytes`` with nothing queued takes no lock
(:meth:`Transport.send_bytes`).

When its protocol releases it gracefully with bytes still queued, the transport keeps flushing
them in the background (bounded by :data:`CLOSE_FLUSH_TIMEOUT_MS`), then closes the socket:
the same write loop, with the protocol told at the end (``flush_done``).
"""
from __future__ import annotations

import errno
import os
import socket
import ssl
import threading
import time
from typing import Any, Callable, Optional

from . import _batching
from ._pump import ERRORS, READ, WRITE, Pump
from ._sendqueue import BLOCKED, DRAINED, DROP_REACHED, RECEIVE_CHUNK, QueuedStream, SendQueue
from ._tls import HANDSHAKE_DONE, TLSStream
from .enums import eeConnect, eeDisconnect, eeSend

__all__ = ["Transport", "PlainStream", "DONTWAIT", "RECEIVE_CHUNK_MAX",
           "CLOSE_FLUSH_TIMEOUT_MS", "close_quietly"]

# Reads start at RECEIVE_CHUNK, below every allocator's large-block threshold, so a small
# message never pays for a big buffer. A read that comes back full means a bulk transfer: the
# next one asks for four times as much, up to RECEIVE_CHUNK_MAX, which spreads the per-event
# cost over more bytes; a read shorter than RECEIVE_CHUNK resets the size.
RECEIVE_CHUNK_MAX = 1024 * 1024
#: Longest a closed connection keeps flushing queued bytes to a peer that does not read (ms).
CLOSE_FLUSH_TIMEOUT_MS = 60_000
_monotonic = time.monotonic
_get_ident = threading.get_ident
_CONNECT_PENDING = {errno.EINPROGRESS, errno.EALREADY, errno.EAGAIN, errno.EWOULDBLOCK}


def _prime_allocator() -> None:
    """Free one block of a full-size read, so glibc serves such reads from its heap.

    glibc serves requests of 128 KiB and more with mmap until the program frees such a block;
    then it raises that threshold to the block's size. ``recv(n)`` allocates ``n`` bytes and
    shrinks the result to what arrived, and a shrunk block never raises the threshold: until
    one read of :data:`RECEIVE_CHUNK_MAX` came back full and was freed, every larger read that
    returns short cost an mmap, an mremap, two page faults and a munmap (docs/benchmarks.md).
    ``bytes(n)`` is calloc'd, so no page is touched.
    """
    block = bytes(RECEIVE_CHUNK_MAX + 4096)
    del block


_prime_allocator()


#: ``MSG_DONTWAIT`` where the platform has it (0 elsewhere): one call that does not wait, even on
#: a descriptor that blocks, without a system call to switch the descriptor first.
DONTWAIT: int = getattr(socket, "MSG_DONTWAIT", 0)


def close_quietly(sock: socket.socket, graceful: bool, drain: bool = True) -> None:
    """Close an OS socket. Graceful: first drain unread input, so Linux sends FIN, not RST
    (``drain=False``: the peer's end of stream was read, there is nothing to drain).
    Abortive: SO_LINGER 0, so the peer sees a reset and queued bytes are dropped."""
    try:
        if graceful:
            if not drain:
                sock.close()
                return
            if not DONTWAIT:
                sock.setblocking(False)
            for _ in range(64):
                if not sock.recv(RECEIVE_CHUNK, DONTWAIT):
                    break
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
    except OSError:
        pass
    sock.close()


class PlainStream:
    """The stream of a plain TCP socket: the socket's own calls, nothing held back.

    ``flags`` are passed to every ``recv`` and ``send`` (``MSG_DONTWAIT``: never wait, even
    on a descriptor that blocks)."""

    __slots__ = ("sock", "recv", "send")
    has_output = False

    def __init__(self, sock: socket.socket, flags: int = 0) -> None:
        self.sock = sock
        self.recv: Callable[[int], bytes]
        self.send: Callable[[Any], int]
        if flags:
            self.recv = lambda size: sock.recv(size, flags)
            self.send = lambda data: sock.send(data, flags)
        else:
            self.recv = sock.recv
            self.send = sock.send

    def drain(self) -> bool:
        return True

    def pending(self) -> int:
        return 0

    def shutdown_write(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class Transport:
    """One connection's OS socket and send queue (see the module docstring).

    ``pump`` is the readiness pump of the component's thread (None for a ctBlocking client,
    which needs no event loop). ``served_by_worker``: a thread-mode connection, read by its
    worker thread; the pump only flushes what the component's thread queued.
    """

    __slots__ = ("sock", "fd", "protocol", "_owner", "pump", "lock", "tx", "stream", "tls",
                 "served_by_worker", "reading", "watch_errors", "last_activity", "batch",
                 "_recv", "read_size", "_handshake_want", "handshake_started", "_mask",
                 "_registered", "_flush_posted", "_users", "owner_thread", "_closed",
                 "_release_close", "_flush_timer", "read_shut", "peer_finished", "sends_alone",
                 "stamps")

    def __init__(self, sock: socket.socket, protocol: Any, pump: Optional[Pump],
                 lock: Any, served_by_worker: bool = False, keep_blocking: bool = False) -> None:
        if not keep_blocking:  # keep_blocking: the subclass passes MSG_DONTWAIT instead
            sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()
        self.protocol = protocol      # None once released
        self._owner: Any = None       # told flush_done() when a background flush ends
        self.pump = pump
        self.lock = lock
        self.tx = SendQueue()
        self.stream: Any = PlainStream(sock)
        self.tls = False
        self.served_by_worker = served_by_worker
        self.reading = False          # the protocol wants data (pump mode)
        self.watch_errors = not served_by_worker
        #: Stamp :attr:`last_activity` at each read and send (:meth:`stamp_traffic`: the owner
        #: turns it off while no IdleTimeout needs it, a clock read being a tenth of a
        #: message's cost in Python).
        self.stamps = True
        self.last_activity = _monotonic()
        self.batch = _batching.Batcher()
        self._recv = sock.recv
        self.read_size = RECEIVE_CHUNK
        self._handshake_want = 0
        #: ``time.monotonic()`` when the TLS handshake started (0: none yet).
        self.handshake_started = 0.0
        self._mask = 0
        self._registered = False
        self._flush_posted = False
        self._users: list[None] = []  # one entry per thread inside a wait on this socket
        #: The component thread's ident (the pump's thread), -1 without a pump.
        self.owner_thread = pump.thread_ident if pump is not None else -1
        self._closed = False
        self._release_close: Optional[bool] = None  # close when the last waiter leaves
        self._flush_timer: Any = None
        #: This side shut its reading down (:meth:`shut_read`): an end of stream read since
        #: may be ours, not the peer's.
        self.read_shut = False
        #: A plain read returned the end of the peer's stream: nothing can arrive after it, so
        #: a graceful close need not drain unread input first (one system call per connection).
        self.peer_finished = False
        #: Only the pump's thread ever hands bytes to the kernel (a worker or a waiting caller
        #: would too): other threads' sends are queued and flushed by the pump.
        self.sends_alone = pump is not None and not served_by_worker

    # -- registration ---------------------------------------------------------------------
    def register(self, handler: Optional[Callable[[int], None]] = None, mask: int = 0) -> None:
        """Watch the socket with the pump (``handler`` defaults to the connected-state one)."""
        pump = self.pump
        assert pump is not None
        self._mask = mask
        pump.register(self.fd, handler or self.read_ready, mask)
        self._registered = True

    def _set_handler(self, handler: Callable[[int], None]) -> None:
        if self._registered:
            assert self.pump is not None
            self.pump.set_handler(self.fd, handler)

    def update_interest(self) -> None:
        """Tell the pump what to watch now (from another thread: on the pump's next turn)."""
        if not self._registered or self._closed:
            return
        pump = self.pump
        assert pump is not None
        if not pump.in_own_thread():
            pump.call_soon_threadsafe(self.update_interest)
            return
        if self._handshake_want:
            mask = self._handshake_want | ERRORS
        else:
            mask = ERRORS if self.watch_errors else 0
            if self.reading:
                mask |= READ
            if self.tx.items or self.stream.has_output:
                mask |= WRITE
        if mask != self._mask:
            self._mask = mask
            pump.modify(self.fd, mask)

    def stamp_traffic(self, on: bool) -> None:
        """Stamp :attr:`last_activity` at each read and send from now on (``on``) or not.
        Switching it on stamps now: the last stamp may be old."""
        if on and not self.stamps:
            self.last_activity = _monotonic()
        self.stamps = on

    def in_pump_thread(self) -> bool:
        return _get_ident() == self.owner_thread

    # -- connecting (client) ----------------------------------------------------------------
    def watch_connect(self) -> None:
        """A non-blocking connect is in progress: report its end through ``connect_done``."""
        self.register(self._on_connect_ready, WRITE)

    def _on_connect_ready(self, events: int) -> None:
        sock = self.sock
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err == 0:
            try:
                sock.getpeername()
            except OSError as exc:
                if exc.errno == errno.ENOTCONN:  # spurious readiness: still connecting
                    return
                err = exc.errno or errno.ECONNREFUSED
        protocol = self.protocol
        if protocol is not None:
            protocol.connect_done(err)

    def start_reading(self) -> None:
        """The connection is up: read when the pump says so (pump mode)."""
        if self.served_by_worker:
            return
        self.reading = True
        if self._registered:
            self._set_handler(self.read_ready)
            self.update_interest()
        elif self.pump is not None:
            self.register(self.read_ready, READ | ERRORS)

    # -- TLS ----------------------------------------------------------------------------------
    def start_tls(self, context: ssl.SSLContext, server_side: bool,
                  hostname: Optional[str]) -> None:
        """Wrap the socket in TLS; the handshake follows (:meth:`handshake_step`)."""
        self.stream = TLSStream(self.sock, context, server_side, hostname)
        self._recv = self.stream.recv
        self.tls = True
        self.handshake_started = _monotonic()

    def handshake_step(self) -> int:
        """One handshake step (HANDSHAKE_DONE, WANT_READ, WANT_WRITE); raises on failure."""
        return int(self.stream.handshake())

    def handshake_async(self) -> None:
        """Run the handshake from the pump; ``handshake_done`` or ``error_received`` follow."""
        if not self._registered:
            self.register(self._on_handshake_ready, 0)
        else:
            self._set_handler(self._on_handshake_ready)
        self._on_handshake_ready(0)

    def _on_handshake_ready(self, events: int) -> None:
        try:
            want = self.handshake_step()
        except (OSError, ValueError) as exc:
            self._handshake_want = 0
            self._lost(eeConnect, exc, "SSL_do_handshake")
            return
        self.last_activity = _monotonic()
        if want == HANDSHAKE_DONE:
            self._handshake_want = 0
            self._set_handler(self.read_ready)
            protocol = self.protocol
            if protocol is not None:
                protocol.handshake_done()
            if self.reading and self.stream.pending() and self.pump is not None:
                self.pump.call_soon(self.read_ready)  # data came with the last handshake flight
            return
        self._handshake_want = want
        self.update_interest()

    # -- reading (pump) -----------------------------------------------------------------------
    def _on_other_events(self, events: int) -> None:
        if events & WRITE:
            self._write()
        if events & (READ | ERRORS) and not self._closed:
            if self.reading:
                self.read_ready()  # recv tells what the error or hang-up was
            elif events & ERRORS:
                self._check_error()

    def read_ready(self, events: int = READ) -> None:
        """The socket is readable: read once. This is the pump's handler of a connected socket
        (the hot path), so other readiness reports are passed on from here."""
        if events != READ:
            self._on_other_events(events)
            return
        if not self.reading:
            return
        try:
            size = self.read_size
            data = self._recv(size)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost(eeDisconnect, exc, "recv")
            return
        if not data:
            self.reading = False
            self.note_end_of_stream()
            protocol = self.protocol
            if protocol is not None:
                protocol.eof_received()  # usually ends the connection: no watch to change then
            self.update_interest()
            return
        got = len(data)
        if got == size:
            if size < RECEIVE_CHUNK_MAX:
                self.read_size = size * 4
        elif got < RECEIVE_CHUNK < size:
            self.read_size = RECEIVE_CHUNK
        batch = self.batch
        batch.seen = True
        if got >= RECEIVE_CHUNK:
            batch.streak += 1
            if batch.streak == batch.after:
                _batching.start(self)
        else:
            batch.streak = 0
        if self.stamps:
            self.last_activity = _monotonic()
        protocol = self.protocol
        if protocol is not None:
            protocol.data_received(data)
            if self.tls and self.reading and self.stream.pending():
                assert self.pump is not None
                self.pump.call_soon(self.read_ready)  # OpenSSL holds more than the kernel shows

    def note_end_of_stream(self) -> None:
        """A read returned the end of the stream: the peer's FIN, unless TLS (its end is not
        the kernel's) or this side shut reading down or closed."""
        if not self.tls and not self.read_shut and not self._closed:
            self.peer_finished = True

    def shut_read(self) -> None:
        """Shut the read side down (ends a blocked read in another thread); errors ignored."""
        self.read_shut = True
        try:
            self.sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass  # closed meanwhile: nothing is read any more anyway

    def _check_error(self) -> None:
        """The pump saw an error or hang-up while reading is off: end the connection now if the
        kernel has an error; a plain hang-up waits for reading (stop watching until then)."""
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._lost(eeDisconnect, OSError(err, os.strerror(err)), "recv")
            return
        self.watch_errors = False
        self.update_interest()

    def pause_reading(self) -> None:
        """Stop reading from the kernel (the protocol's buffer is full, or it stopped)."""
        if self.reading:
            self.reading = False
            self.update_interest()

    def resume_reading(self) -> None:
        """Read again."""
        if not self.reading and not self.served_by_worker and not self._closed:
            self.reading = True
            self.watch_errors = True
            self.update_interest()

    # -- writing ------------------------------------------------------------------------------
    def send(self, buf: Any, view: memoryview) -> int:
        """Accept what the queue's limit allows and send it without waiting (any thread);
        returns the bytes accepted, -1 when none fit. Errors raise (the caller reports)."""
        tx = self.tx
        own = self.in_pump_thread()
        with self.lock:
            if own and not tx.items and not self.stream.has_output:
                if tx.limit and len(view) > tx.limit:  # one call takes at most the limit
                    view = view[:tx.limit]
                n = len(view)
                sent = self._send_direct(view)
                if sent == n:
                    return n
                rest = view[sent:]
                # keep a view of the caller's bytes only when all of them were accepted
                whole = type(buf) is bytes and n == len(buf)
                tx.append_rest(rest if whole else bytes(rest))
            else:
                n = tx.accept(buf, view)
        if n > 0:
            self._writer_needed(own)
        return n

    def send_bytes(self, data: bytes) -> int:
        """:meth:`send` of a whole ``bytes`` (the common case); from the component's thread
        with nothing queued and no limit, straight to the kernel, without the lock.

        No lock is needed there: only this thread hands bytes to the kernel
        (:attr:`sends_alone`), and another thread's concurrent send only appends to the queue,
        which this thread flushes later. If such an append lands after the check below, the
        other thread's bytes follow these (both calls were under way at once, so either order
        is right), and what the kernel did not take of these goes *before* them.
        """
        tx = self.tx
        if self.sends_alone and not tx.limit and _get_ident() == self.owner_thread:
            if not tx.items and not self.stream.has_output:
                try:
                    sent = self.stream.send(data)
                except BlockingIOError:
                    sent = 0
                if self.stamps:
                    self.last_activity = _monotonic()
                n = len(data)
                if sent == n:
                    return n
                with self.lock:
                    tx.prepend_rest(memoryview(data)[sent:])
                self._writer_needed(True)
                return n
        return self.send(data, memoryview(data))

    def _send_direct(self, view: memoryview) -> int:
        try:
            sent = self.stream.send(view)
        except BlockingIOError:
            return 0
        if self.stamps:
            self.last_activity = _monotonic()
        return int(sent)

    def _writer_needed(self, own: bool) -> None:
        """Bytes wait in the queue: watch for writability (pump thread) or ask the pump to."""
        if own:
            self._ensure_registered()
            self.update_interest()
        elif not self._flush_posted and self.pump is not None:
            self._flush_posted = True
            self.pump.call_soon_threadsafe(self._posted_flush)

    def _posted_flush(self) -> None:
        self._flush_posted = False
        if not self._closed:
            self._ensure_registered()
            self._write()

    def _ensure_registered(self) -> None:
        if not self._registered and not self._closed:
            self.register(self.read_ready, 0)

    def queue_stream(self, stream: QueuedStream, drop: bool) -> None:
        """Queue a stream (SendStream) and start sending it (pump mode)."""
        with self.lock:
            self.tx.append_stream(stream, drop)
        if self.in_pump_thread():
            self._ensure_registered()
            self._write()  # the first chunks go now, as SendBuf's would
        else:
            self._writer_needed(False)

    def shutdown_write(self) -> None:
        """FIN after everything queued (close_notify first under TLS)."""
        with self.lock:
            if self.tx.items:
                self.tx.append_shutdown()
                return
            self.tx.shutdown_queued = True
        self.stream.shutdown_write()
        if self.stream.has_output and self.in_pump_thread():
            self.update_interest()

    def _write(self) -> None:
        """Writable: flush the queue (and TLS output); report drained or a DROP marker."""
        try:
            with self.lock:
                result = self.tx.flush(self._send_counted, self.stream.shutdown_write)
                if result == DRAINED and self.stream.has_output and not self.stream.drain():
                    result = BLOCKED
        except OSError as exc:
            self._lost(eeSend, exc, "send")
            return
        self.update_interest()
        protocol = self.protocol
        if protocol is None:  # a background flush after release
            if result != BLOCKED:
                self._finish_flush(graceful=True)
            return
        if result == DROP_REACHED:
            protocol.drop_reached()
        elif result == DRAINED and self.tx.write_notice_due():
            protocol.write_drained()

    def _send_counted(self, chunk: Any) -> int:
        sent = self.stream.send(chunk)
        if self.stamps:
            self.last_activity = _monotonic()
        return int(sent)

    # -- errors and the end -------------------------------------------------------------------
    def _lost(self, event: Any, exc: BaseException, api: str) -> None:
        protocol = self.protocol
        if protocol is None:  # a background flush failed: the peer is gone
            self._finish_flush(graceful=False)
            return
        protocol.error_received(event, exc, api)

    def release(self, graceful: bool) -> bool:
        """The protocol lets go of this connection. Graceful with bytes still queued: flush
        them in the background and return True (``flush_done`` follows); otherwise close now."""
        self.reading = False
        batch = self.batch
        if batch.active:
            _batching.stop(self)
        flushing = graceful and (bool(self.tx.items) or self.stream.has_output) and \
            self.pump is not None and not self._closed
        self._owner = self.protocol if flushing else None
        self.protocol = None
        if flushing:
            self.watch_errors = True
            if self.in_pump_thread():
                self._flush_in_background()
            else:
                assert self.pump is not None
                self.pump.call_soon_threadsafe(self._flush_in_background)
            if self._users:  # wake a worker blocked in a read; the writer side stays open
                self.shut_read()
            return True
        self._close(graceful)
        return False

    def _flush_in_background(self) -> None:
        if not self._closed:
            self._ensure_registered()
            self._set_handler(self.read_ready)
            self.update_interest()
            self._start_flush_timer()
            self._write()

    def _start_flush_timer(self) -> None:
        from PySide6.QtCore import QTimer
        timer = self._flush_timer = QTimer(self.pump)
        timer.setSingleShot(True)
        timer.timeout.connect(lambda: self._finish_flush(graceful=False))
        timer.start(CLOSE_FLUSH_TIMEOUT_MS)

    def detach(self) -> None:
        """Do not tell the old protocol when the background flush ends (it reopened)."""
        self._owner = None

    def _finish_flush(self, graceful: bool) -> None:
        if self._closed:
            return
        owner, self._owner = self._owner, None
        self._close(graceful)
        if owner is not None:
            owner.flush_done()

    def _close(self, graceful: bool) -> None:
        if self._closed:
            return
        self._closed = True
        timer, self._flush_timer = self._flush_timer, None
        if timer is not None:
            timer.stop()
            timer.deleteLater()
        if self._registered and self.pump is not None:
            self._registered = False
            if self.pump.in_own_thread():
                self.pump.unregister(self.fd)
            else:
                # by then the number may be a new socket's: only this transport's watch goes
                self.pump.call_soon_threadsafe(self.pump.unregister, self.fd, self)
        with self.lock:
            self.tx.discard()
            # A thread waits on this socket: wake it, and the last one out closes. The close is
            # marked due before the waiters are counted (a waiter leaves the other way round,
            # see WaitingTransport._enter), and whoever finds it due with nobody inside claims
            # it under this lock; the shutdown comes first, while the descriptor is surely open.
            self._release_close = graceful
            if self._users:
                self.read_shut = True
                try:
                    self.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            self._release_close = None
        close_quietly(self.sock, graceful, drain=not self.peer_finished)

    @property
    def closed(self) -> bool:
        return self._closed
