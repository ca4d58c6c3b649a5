"""``CustomWinSocket``: the base of every socket object (client, server-client, listening).

A socket object owns one OS socket, its receive buffer and its send queue (the transport, in
asyncio's terms); the components (:mod:`sockcomp.components`) only turn the notifications a socket
object reports into Qt signals. Notifications come from the thread's readiness pump
(:mod:`sockcomp._pump`) and are reported through two sinks set by the owner:
``event_sink(socket, SocketEvent)`` and ``error_sink(socket, ErrorEvent, Var) -> None``.

Delivery rules (Winsock's, which ScktComp inherits, with the library's fixes):

* **Reading.** The socket reads what the kernel has into its own buffer and reports ``seRead``
  once; it reports ``seRead`` again only after the application has read (``ReceiveBuf``,
  ``ReceiveText``, ``ReceiveBytes``) — then on a later turn if bytes remain. A handler that never
  reads therefore never makes OnRead spin. Past :data:`RECEIVE_HIGH_WATER` unread bytes the
  socket stops reading from the kernel, so TCP flow control slows the peer down. While a peer
  streams one way faster than the loop reads, the socket wakes once per ``receive_batch`` bytes
  instead of once per write (:mod:`sockcomp._batching`; a pause hands over the rest within 2 ms).
* **Writing.** Send methods never lose or reorder data: what the kernel does not take at once is
  queued and flushed when the socket is writable (``SendQueueLength`` tells how much waits).
  ``seWrite`` is reported after the connection opens and whenever the queue has drained.
* **Ending.** Every connection reports ``seDisconnect`` exactly once, however it ends. A peer's
  FIN is reported only after all data that arrived before it was offered through ``seRead``, and
  with the socket still writable: what the handler sends is flushed before the library closes.
"""
from __future__ import annotations

import errno
import socket
import ssl
import sys
import threading
import time
from collections import deque
from typing import Any, Callable, Optional

from . import _batching
from ._batching import BATCH_AFTER, RECEIVE_BATCH
from ._pump import READ, WRITE, Pump, current_pump
from ._sockopts import KeepAliveSettings, apply_keepalive
from ._sendqueue import (
    DROP,
    RECEIVE_CHUNK,
    SHUTDOWN,
    STREAM_CHUNK,
    Closer,
    QueuedStream,
    close_quietly,
)
from .enums import (
    ErrorEvent,
    SocketState,
    eeConnect,
    eeGeneral,
    eeDisconnect,
    eeReceive,
    eeSend,
    seConnect,
    seDisconnect,
    seRead,
    seWrite,
)
from .errors import (
    WSAESHUTDOWN, WSAETIMEDOUT, ESocketError, HandleException, describe, wsa_code,
)
from .framing import (
    DEFAULT_MAX_FRAME,
    FrameError,
    FrameOverflow,
    Framer,
    FramingMode,
    LineFramer,
    PacketFramer,
    pack_packet,
)
from .var import Var

__all__ = ["CustomWinSocket", "RECEIVE_HIGH_WATER", "seHalfClose", "EventSink", "ErrorSink"]

#: Unread bytes a socket buffers before it stops reading from the kernel.
RECEIVE_HIGH_WATER = 4 * 1024 * 1024
# Reads start at RECEIVE_CHUNK, below every allocator's large-block threshold, so a small
# message never pays for a big buffer (see _prime_allocator for glibc). A read that comes back
# full means a bulk transfer: the next one asks for four times as much, up to RECEIVE_CHUNK_MAX,
# which spreads the per-event cost (OnRead, the handler, the bookkeeping) over more bytes; a
# read shorter than RECEIVE_CHUNK resets the size.
RECEIVE_CHUNK_MAX = 1024 * 1024


def _prime_allocator() -> None:
    """Free one block of a full-size read, so glibc serves such reads from its heap.

    glibc serves requests of 128 KiB and more with mmap until the program frees such a block;
    then it raises that threshold to the block's size. ``recv(n)`` allocates ``n`` bytes and
    shrinks the result to what arrived, and a shrunk block never raises the threshold: until one
    read of :data:`RECEIVE_CHUNK_MAX` came back full and was freed, every larger read that
    returns short cost an mmap, an mremap, two page faults and a munmap (18 us each on the
    benchmark machine, docs/benchmarks.md). ``bytes(n)`` is calloc'd, so no page is touched.
    Other allocators simply get one allocation back.
    """
    block = bytes(RECEIVE_CHUNK_MAX + 4096)
    del block


_prime_allocator()

#: sockcomp's extra notification: the peer finished sending and ``AllowHalfClose`` is on.
seHalfClose = 8

#: What a non-blocking send or receive may raise when it has to wait (TLS included).
WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)

# States compared on every event: module constants spare the enum class lookups.
_CONNECTED = SocketState.ssConnected
_HANDSHAKING = SocketState.ssHandshaking
_monotonic = time.monotonic

EventSink = Callable[["CustomWinSocket", int], None]
FrameSink = Callable[["CustomWinSocket", Any], None]  # a line (str) or a packet (bytes)
ErrorSink = Callable[["CustomWinSocket", ErrorEvent, Var[int]], None]


def _no_event(sock: "CustomWinSocket", event: int) -> None:
    pass


def _no_error(sock: "CustomWinSocket", event: ErrorEvent, code: Var[int]) -> None:
    pass


def _no_frame(sock: "CustomWinSocket", message: Any) -> None:
    pass


def _plain_address(addr: str) -> str:
    """Show an IPv4-mapped IPv6 address (dual-stack listener) as plain dotted IPv4."""
    if addr.startswith("::ffff:") and "." in addr:
        return addr[7:]
    return addr.split("%", 1)[0] if addr.startswith("fe80") else addr


def _shutdown_write(sock: socket.socket) -> None:
    """Half-close: FIN, preceded under TLS by close_notify, keeping TLS up for reading.

    ``SSLSocket.shutdown``/``unwrap`` throw the TLS state away, and a bare FIN counts as an
    unexpected EOF that OpenSSL 3 treats as fatal, so the peer could no longer answer. Sending
    close_notify through the SSL object keeps both directions' rules intact.
    """
    sslobj = getattr(sock, "_sslobj", None)
    if sslobj is not None:
        try:
            sslobj.shutdown()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass  # close_notify is out; the peer's comes later, with its data
        except (OSError, ValueError):
            pass
    try:
        socket.socket.shutdown(sock, socket.SHUT_WR)
    except OSError:
        pass


class _LockGuard:
    """Returned by ``Lock()``: leaving the ``with`` block unlocks (the lock is already held)."""

    __slots__ = ("_lock",)

    def __init__(self, lock: Any) -> None:
        self._lock = lock

    def __enter__(self) -> "_LockGuard":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()


class CustomWinSocket:
    """Base of every socket object: one OS socket, its buffers, and the VCL data methods.

    Addresses are read live from the OS socket: ``LocalAddress``/``RemoteAddress`` are ``''``
    and ``LocalPort`` is ``-1`` once the socket is closed. ``Data`` is free for the application.

    Blocking sockets (``ctBlocking`` clients, ``stThreadBlocking`` server clients) send with
    blocking calls; ``ReceiveBuf`` and ``ReceiveBytes(count)`` wait for data, while
    ``ReceiveText()``/``ReceiveBytes()`` return what is there now (as the VCL's ReceiveText).
    Sending from one thread while another reads is safe.
    """

    receive_high_water = RECEIVE_HIGH_WATER
    #: While a peer streams one way, wake only when this many bytes wait (Linux; 0: never).
    #: Set it on a socket (or on the class) before the stream starts. See sockcomp._batching.
    receive_batch = RECEIVE_BATCH

    def __init__(self, sock: Optional[socket.socket] = None) -> None:
        self._sock: Optional[socket.socket] = sock
        self._pump: Optional[Pump] = None
        self._lock = threading.RLock()
        self._send_lock = threading.Lock()
        self._read_size = RECEIVE_CHUNK  # grows while reads come back full (bulk transfers)
        self._state = SocketState.ssConnected if sock is not None else SocketState.ssClosed
        self._event_sink: EventSink = _no_event
        self._error_sink: ErrorSink = _no_error
        self._frame_sink: FrameSink = _no_frame
        self._framer: Optional[Framer] = None
        self._framing = FramingMode.fmNone
        self._line_end = "\n"
        self._max_frame = DEFAULT_MAX_FRAME
        self._overflow = FrameOverflow.foClose
        self._blocking = False
        self._tls: Optional[ssl.SSLContext] = None
        self._tls_server_side = False
        self._tls_hostname: Optional[str] = None
        self._hs_want = READ
        #: Text of the last error reported to OnError (a TLS failure explained, for example).
        self.LastErrorMessage = ""
        #: The last error reported to OnError as an ESocketError (WSA code, native errno, API);
        #: readable inside the handler. Beyond the VCL.
        self.LastError: Optional[ESocketError] = None
        #: TCP keepalive of this connection (component properties KeepAlive*).
        self.keepalive = KeepAliveSettings()
        #: Most bytes SendBuf queues (0: no limit); beyond it SendBuf accepts only what fits
        #: and returns the count, -1 when nothing fits (the VCL's WSAEWOULDBLOCK contract).
        self.SendQueueLimit = 0
        #: OnWrite fires when the queue has drained to this many bytes (default 0: empty).
        self.SendQueueLowWater = 0
        #: Milliseconds without traffic after which the connection is closed (0: never).
        self.IdleTimeout = 0
        self.last_activity = time.monotonic()
        self._remote_host: Optional[str] = None
        self.Data: Any = None
        #: Text encoding of ``SendText``/``ReceiveText`` (``'utf-8'`` by default).
        self.Encoding = "utf-8"
        self.AllowHalfClose = False
        self._reset_buffers()

    def _reset_buffers(self) -> None:
        self._rchunks: deque[bytes] = deque()
        self._rlen = 0
        self._eof = False
        self._read_notified = False
        self._renotify_pending = False
        self._reading_stopped = False  # Shutdown(SD_RECEIVE) or half-closed
        self._squeue: deque[Any] = deque()
        self._squeued = 0
        self._nstreams = 0
        self._low_water_reported = False
        self._send_closed = False
        self._dropping = False
        self._disconnecting = False
        self._mask = 0
        # read batching (sockcomp._batching): streak of big reads, state, back-off
        self._streak = 0
        self._batching = False
        self._batch_seen = False
        self._batch_after = BATCH_AFTER if _batching.SUPPORTED else 0

    # ------------------------------------------------------------------ properties
    @property
    def Connected(self) -> bool:
        """True from the moment the connection is usable until the socket is closed."""
        return self._state in (SocketState.ssConnected, SocketState.ssHalfClosed,
                               SocketState.ssListening)

    @property
    def State(self) -> SocketState:
        """Where the socket is in its life cycle (beyond the VCL)."""
        return self._state

    @property
    def SocketHandle(self) -> int:
        """The OS descriptor, or -1 when there is none."""
        sock = self._sock
        return sock.fileno() if sock is not None else -1

    def _sockname(self) -> Optional[tuple[Any, ...]]:
        sock = self._sock
        if sock is None:
            return None
        try:
            return sock.getsockname()
        except OSError:
            return None

    def _peername(self) -> Optional[tuple[Any, ...]]:
        sock = self._sock
        if sock is None or not self.Connected:
            return None
        try:
            return sock.getpeername()
        except OSError:
            return None

    @property
    def LocalAddress(self) -> str:
        """Local IP address as text ('' without a socket)."""
        name = self._sockname()
        return _plain_address(name[0]) if name else ""

    @property
    def LocalHost(self) -> str:
        """This machine's host name ('' without a socket, as in the VCL)."""
        return socket.gethostname() if self._sock is not None else ""

    @property
    def LocalPort(self) -> int:
        """Local port, or -1 without a socket."""
        name = self._sockname()
        return int(name[1]) if name else -1

    @property
    def RemoteAddress(self) -> str:
        """The peer's IP address as text ('' when not connected)."""
        name = self._peername()
        return _plain_address(name[0]) if name else ""

    @property
    def RemotePort(self) -> int:
        """The peer's port (0 when not connected)."""
        name = self._peername()
        return int(name[1]) if name else 0

    @property
    def RemoteHost(self) -> str:
        """The peer's host name by reverse lookup ('' if it has none or when not connected).

        The lookup blocks the calling thread the first time and is cached per connection.
        """
        if self._remote_host is None:
            addr = self.RemoteAddress
            if not addr:
                return ""
            try:
                self._remote_host = socket.gethostbyaddr(addr)[0]
            except OSError:
                self._remote_host = ""
        return self._remote_host

    # ------------------------------------------------------------------ framing
    @property
    def Framing(self) -> FramingMode:
        """``fmNone`` (raw bytes, OnRead), ``fmLine`` or ``fmPacket`` (one event per message)."""
        return self._framing

    @Framing.setter
    def Framing(self, value: int) -> None:
        self._framing = FramingMode(int(value))
        self._new_framer()

    @property
    def LineEnd(self) -> str:
        """What ends a line in ``fmLine`` mode and after ``SendLine`` (default ``'\\n'``)."""
        return self._line_end

    @LineEnd.setter
    def LineEnd(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ESocketError(f"Invalid LineEnd {value!r}: must be a non-empty string")
        self._line_end = value
        self._new_framer()

    @property
    def MaxFrameSize(self) -> int:
        """Longest line or packet accepted, in bytes (default 1 MiB): memory stays bounded."""
        return self._max_frame

    @MaxFrameSize.setter
    def MaxFrameSize(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ESocketError(f"Invalid MaxFrameSize {value!r}: must be an int > 0")
        self._max_frame = value
        self._new_framer()

    @property
    def FrameOverflow(self) -> FrameOverflow:
        """``foClose`` (default): an oversized message is OnError(eeReceive, 10040) and the
        connection closes; ``foDiscard``: the error is reported, the message skipped."""
        return self._overflow

    @FrameOverflow.setter
    def FrameOverflow(self, value: int) -> None:
        self._overflow = FrameOverflow(int(value))
        self._new_framer()

    def _new_framer(self) -> None:
        mode = self._framing
        if mode == FramingMode.fmLine:
            self._framer = LineFramer(self._line_end.encode(self.Encoding), self._max_frame,
                                      self._overflow)
        elif mode == FramingMode.fmPacket:
            self._framer = PacketFramer(self._max_frame, self._overflow)
        else:
            self._framer = None
        if self._framer is not None and self._rlen and self._pump is not None:
            self._pump.call_soon(self._reframe)

    def _reframe(self) -> None:
        """Framing switched on with raw bytes pending: run them through the framer."""
        framer = self._framer
        if framer is not None and self._rlen and self.Connected:
            self._deliver_frames(framer.feed(self._take(self._rlen)))

    def _deliver_frames(self, items: list[Any]) -> None:
        framer = self._framer
        for item in items:
            if self._state == SocketState.ssClosed:
                return
            if isinstance(item, FrameError):
                self.LastError = ESocketError(
                    f"Windows socket error: {item.text} ({item.code}), on API 'recv'", item.code,
                    None, "recv")
                code = self._report_error(eeReceive, item.code, item.text)
                if framer is not None and framer.failed:
                    self._disconnect(graceful=True)
                if code:
                    self._report_exception(ESocketError(
                        f"Windows socket error: {item.text} ({code}), on API 'recv'", code,
                        None, "recv"))
            elif isinstance(framer, LineFramer):
                self._frame_sink(self, item.decode(self.Encoding, "replace"))
            else:
                self._frame_sink(self, item)

    def SendLine(self, text: str) -> int:
        """Send ``text`` followed by ``LineEnd``; returns the bytes accepted (beyond the VCL)."""
        return self.SendText(text + self._line_end)

    def SendPacket(self, data: Any) -> int:
        """Send ``data`` as one packet (4-byte big-endian length first); returns bytes accepted."""
        return self.SendBuf(pack_packet(bytes(data)))

    @property
    def SendQueueLength(self) -> int:
        """Bytes accepted by send methods but not yet handed to the OS (queued streams excluded)."""
        return self._squeued

    # ------------------------------------------------------------------ locking
    def Lock(self) -> "_LockGuard":
        """Enter the socket's re-entrant lock; also usable as ``with sock.Lock():``."""
        self._lock.acquire()
        return _LockGuard(self._lock)

    def Unlock(self) -> None:
        """Leave the socket's lock."""
        self._lock.release()

    def __enter__(self) -> "CustomWinSocket":
        self._lock.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()

    # ------------------------------------------------------------------ notifications
    def _fire(self, event: int) -> None:
        self._event_sink(self, event)

    def _report_error(self, event: ErrorEvent, code: int, text: str = "") -> int:
        """Fire OnError/OnClientError and return the ErrorCode the handlers left."""
        self.LastErrorMessage = text or f"socket error {code}"
        cell: Var[int] = Var(code)
        self._error_sink(self, event, cell)
        try:
            return int(cell.value or 0)
        except (TypeError, ValueError):
            return code

    def _fail(self, event: ErrorEvent, exc: BaseException, api: str, raise_: bool = False,
              graceful: bool = False) -> None:
        """An error ended the connection: OnError, then close with OnDisconnect, then raise/hook.

        The close is abortive (the connection is broken) unless ``graceful``: a timeout of the
        application's own making still ends with a FIN.
        """
        original = wsa_code(exc)
        self.LastError = ESocketError.from_os_error(exc, api)
        code = self._report_error(event, original, describe(exc))
        self._disconnect(graceful=graceful)
        if code:
            err = ESocketError.from_os_error(exc, api)
            if code != original:
                err = ESocketError.from_code(code, api, getattr(exc, "errno", None))
            if raise_:
                raise err
            self._report_exception(err)

    def _report_exception(self, exc: BaseException) -> None:
        """Pass an asynchronous error to the application hook, in the component's thread."""
        HandleException(exc)

    # ------------------------------------------------------------------ pump wiring
    def _attach(self, mask: int) -> None:
        sock = self._sock
        assert sock is not None
        if self._pump is None:
            self._pump = current_pump()
        self._mask = mask
        self._pump.register(sock.fileno(), self._on_ready, mask)

    def _update_interest(self) -> None:
        sock = self._sock
        if sock is None or self._pump is None or self._blocking:
            return
        if self._state == SocketState.ssHandshaking:
            mask = self._hs_want
            if mask != self._mask:
                self._mask = mask
                self._pump.modify(sock.fileno(), mask)
            return
        mask = 0
        if self._state == SocketState.ssConnecting or self._squeue:
            mask |= WRITE
        if (self._state in (SocketState.ssConnected, SocketState.ssHalfClosed)
                and not self._eof and not self._reading_stopped
                and self._rlen < RECEIVE_HIGH_WATER):
            mask |= READ
        if mask != self._mask:
            self._mask = mask
            self._pump.modify(sock.fileno(), mask)

    def _on_ready(self, events: int) -> None:
        if events == READ and self._state is _CONNECTED:  # the common case: data arrived
            self._on_readable()
            return
        if self._state is _HANDSHAKING:
            self._continue_handshake()
            return
        if events & WRITE:
            if self._state == SocketState.ssConnecting:
                self._on_connect_ready()
                return
            if self._squeue:
                self._flush()
        if events & READ and self._sock is not None:
            self._on_readable()

    def _on_connect_ready(self) -> None:  # overridden by ClientWinSocket
        pass

    # ------------------------------------------------------------------ TLS
    @property
    def TLSActive(self) -> bool:
        """True when the connection is encrypted (beyond the VCL)."""
        return isinstance(self._sock, ssl.SSLSocket)

    def _start_tls(self) -> None:
        """TCP is up: wrap the socket and run the handshake.

        Non-blocking: OnConnect follows from the event loop once the handshake succeeds.
        Blocking: returns connected, or raises after OnError and OnDisconnect.
        """
        sock = self._sock
        assert sock is not None and self._tls is not None
        try:
            tls_sock = self._tls.wrap_socket(
                sock, server_side=self._tls_server_side, do_handshake_on_connect=False,
                server_hostname=None if self._tls_server_side else self._tls_hostname)
        except (OSError, ValueError) as exc:
            self._fail(eeConnect, exc, "SSL_new", raise_=self._blocking)
            return
        self._sock = tls_sock
        self._state = SocketState.ssHandshaking
        if self._blocking:  # the caller fires the events once this returns
            try:
                tls_sock.do_handshake()
            except OSError as exc:
                self._fail(eeConnect, exc, "SSL_do_handshake", raise_=True)
                return
            self._state = SocketState.ssConnected
            return
        self._hs_want = READ | WRITE
        self._continue_handshake()

    def _continue_handshake(self) -> None:
        sock = self._sock
        assert isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._hs_want = READ
        except ssl.SSLWantWriteError:
            self._hs_want = WRITE
        except OSError as exc:
            self._fail(eeConnect, exc, "SSL_do_handshake")
            return
        else:
            self._state = SocketState.ssConnected
            self._update_interest()
            self._connected()
            return
        self._update_interest()

    def _copy_settings(self, other: "CustomWinSocket") -> None:
        """Take over another socket's per-connection settings (a server's, for its clients)."""
        self.Encoding = other.Encoding
        self.AllowHalfClose = other.AllowHalfClose
        self._framing = other._framing
        self._line_end = other._line_end
        self._max_frame = other._max_frame
        self._overflow = other._overflow
        self.keepalive = KeepAliveSettings(**vars(other.keepalive))
        self.SendQueueLimit = other.SendQueueLimit
        self.SendQueueLowWater = other.SendQueueLowWater
        self.IdleTimeout = other.IdleTimeout
        self._new_framer()

    def _apply_options(self) -> None:
        """Per-connection OS options (keepalive) on the current OS socket."""
        if self._sock is not None and self.keepalive.enabled:
            apply_keepalive(self._sock, self.keepalive)

    def _idle_expired(self) -> None:
        """No traffic for IdleTimeout ms: OnError(eeGeneral, 10060), then close."""
        error = ESocketError(f"Windows socket error: idle for more than {self.IdleTimeout} ms "
                             f"({WSAETIMEDOUT}), on API 'recv'", WSAETIMEDOUT, errno.ETIMEDOUT,
                             "recv")
        self._fail(eeGeneral, error, "recv", graceful=True)

    def _connected(self) -> None:
        """The connection is ready (after TLS when on): OnConnect, then OnWrite."""
        self._fire(seConnect)
        if self._state == SocketState.ssConnected and not self._squeue and not self._blocking:
            self._fire(seWrite)

    # ------------------------------------------------------------------ receiving
    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None or self._eof or self._reading_stopped:
            return
        try:
            if self._tls is None:
                size = self._read_size
                data = sock.recv(size, socket.MSG_DONTWAIT if self._blocking else 0)
                got = len(data)
                if got == size:
                    if size < RECEIVE_CHUNK_MAX:
                        self._read_size = size * 4
                elif got < RECEIVE_CHUNK < size:
                    self._read_size = RECEIVE_CHUNK
                self._batch_seen = True
                if got >= RECEIVE_CHUNK:
                    streak = self._streak = self._streak + 1
                    if streak == self._batch_after:
                        _batching.start(self)
                else:
                    self._streak = 0
            else:
                data = self._tls_recv(sock)
        except WOULD_BLOCK:
            return
        except OSError as exc:
            if self._state == SocketState.ssClosed:
                return  # closed by another thread meanwhile
            self._fail(eeDisconnect, exc, "recv")
            return
        if not data:
            self._eof = True
            self._update_interest()
            if self._framer is not None:
                self._deliver_frames(self._framer.eof())
            self._peer_closed()
            return
        self.last_activity = _monotonic()
        if self._framer is not None:
            self._deliver_frames(self._framer.feed(data))
            return
        with self._lock:
            self._rchunks.append(data)
            rlen = self._rlen = self._rlen + len(data)
            notify = not self._read_notified
            self._read_notified = True
        if rlen >= RECEIVE_HIGH_WATER:
            self._update_interest()
        if notify:
            self._event_sink(self, seRead)

    def _tls_recv(self, sock: socket.socket) -> bytes:
        """Read decrypted bytes, including what OpenSSL already buffered (epoll cannot see it)."""
        if self._blocking:
            sock.setblocking(False)
            try:
                return self._tls_recv_nonblocking(sock)
            finally:
                if self._sock is sock:
                    sock.setblocking(True)
        return self._tls_recv_nonblocking(sock)

    @staticmethod
    def _tls_recv_nonblocking(sock: socket.socket) -> bytes:
        data = sock.recv(RECEIVE_CHUNK)
        if data and isinstance(sock, ssl.SSLSocket):
            more = sock.pending()
            while more:
                data += sock.recv(more)
                more = sock.pending()
        return data

    def _consumed(self) -> None:
        """The application read: Winsock re-posts FD_READ (later) if bytes remain."""
        self._read_notified = False
        pump = self._pump
        if self._rlen and not self._renotify_pending and pump is not None:
            self._renotify_pending = True
            if pump.in_own_thread():
                pump.call_soon(self._renotify)
            else:
                pump.call_soon_threadsafe(self._renotify)
        if self._mask & READ == 0:
            self._update_interest()

    def _renotify(self) -> None:
        self._renotify_pending = False
        if self._rlen and not self._read_notified and self.Connected:
            self._read_notified = True
            self._fire(seRead)

    def _take(self, count: int) -> bytes:
        """Remove up to ``count`` bytes from the receive buffer."""
        chunks = self._rchunks
        first = chunks[0]
        if len(first) == count or (len(chunks) == 1 and len(first) <= count):
            chunks.popleft()
            self._rlen -= len(first)
            return first
        out = bytearray()
        while chunks and len(out) < count:
            chunk = chunks[0]
            need = count - len(out)
            if len(chunk) <= need:
                out += chunk
                chunks.popleft()
            else:
                out += chunk[:need]
                chunks[0] = chunk[need:]
        self._rlen -= len(out)
        return bytes(out)

    def _blocking_recv(self, count: int, wait: bool) -> Optional[bytes]:
        """Blocking socket: read from the OS; ``None`` when not waiting and nothing is there."""
        sock = self._sock
        if sock is None or self._eof:
            return b""
        try:
            if isinstance(sock, ssl.SSLSocket):  # SSLSocket refuses MSG_DONTWAIT
                if wait or sock.pending():
                    data = sock.recv(count)
                else:  # readable may mean only a TLS 1.3 session ticket: truly non-blocking
                    sock.setblocking(False)
                    try:
                        data = sock.recv(count)
                    finally:
                        if self._sock is sock:
                            sock.setblocking(True)
            else:
                data = sock.recv(count, 0 if wait else socket.MSG_DONTWAIT)
        except WOULD_BLOCK:
            return None
        except OSError as exc:
            if self._state == SocketState.ssClosed:
                return b""
            self._fail(eeReceive, exc, "recv", raise_=True)
            return b""
        if not data:
            self._eof = True
        return data

    def ReceiveLength(self) -> int:
        """Bytes that can be read now without waiting."""
        if self._blocking and self._sock is not None and not self._eof:
            import fcntl
            import termios
            try:
                pending = bytearray(4)
                fcntl.ioctl(self._sock.fileno(), termios.FIONREAD, pending)
                return self._rlen + int.from_bytes(pending, sys.byteorder)
            except OSError:
                pass
        return self._rlen

    def ReceiveBytes(self, count: Optional[int] = None) -> bytes:
        """Read up to ``count`` pending bytes (all when ``None``), ``b''`` when there are none.

        Beyond the VCL. On a blocking socket an explicit ``count`` waits for data.
        """
        if self._blocking and not self._rlen:  # outside the lock: a failure fires events
            return self._blocking_recv(count or RECEIVE_CHUNK, wait=count is not None) or b""
        with self._lock:
            chunks = self._rchunks
            if count is None and len(chunks) == 1:  # the common case: all of one read
                data = chunks.popleft()
                self._rlen = 0
                self._read_notified = False  # _consumed() with nothing left, inlined
                if not self._mask & READ:
                    self._update_interest()
                return data
            if not self._rlen:
                if self._read_notified:
                    self._consumed()
                return b""
            data = self._take(self._rlen if count is None else min(count, self._rlen))
            self._consumed()
            return data

    def ReceiveBuf(self, buf: Any, count: Optional[int] = None) -> int:
        """Read into the writable buffer ``buf``; returns bytes read.

        ``count`` defaults to ``len(buf)``; ``count == -1`` returns the number of bytes pending
        without reading. Returns 0 when the peer has closed and nothing is left, -1 when
        nothing is readable yet.
        """
        if count == -1:
            return self._rlen
        view = memoryview(buf).cast("B")
        want = len(view) if count is None else min(count, len(view))
        if not self.Connected and not self._rlen:
            return 0
        if want <= 0:
            return 0
        if self._blocking and not self._rlen:
            data = self._blocking_recv(want, wait=True) or b""
            view[:len(data)] = data
            return len(data)
        data = self.ReceiveBytes(want)
        if not data:
            return 0 if self._eof or self._sock is None else -1
        view[:len(data)] = data
        return len(data)

    def ReceiveText(self) -> str:
        """All pending bytes decoded with ``Encoding``.

        An incomplete multi-byte character at the end stays pending until the rest arrives (or
        the peer closes), so text split across TCP segments is never garbled.
        """
        import codecs
        data = self.ReceiveBytes()
        if not data:
            return ""
        with self._lock:
            decoder = codecs.getincrementaldecoder(self.Encoding)("replace")
            text = decoder.decode(data, final=self._eof)
            held = decoder.getstate()[0]
            if held:  # an incomplete character: keep it pending, OnRead comes with the rest
                self._rchunks.appendleft(bytes(held))
                self._rlen += len(held)
            return text

    # ------------------------------------------------------------------ sending
    def _can_send(self) -> bool:
        return self._sock is not None and self._state in (
            SocketState.ssConnected, SocketState.ssHalfClosed) and not self._dropping

    def SendBuf(self, buf: Any, count: Optional[int] = None) -> int:
        """Send ``count`` bytes of ``buf`` (all when ``None``); returns the bytes accepted.

        When connected every byte is accepted: what the OS does not take now is queued and
        flushed in order. Returns 0 when not connected (as the VCL). After ``Shutdown(SD_SEND)``
        raises ``ESocketError`` (10058).
        """
        if self._blocking:
            return self._blocking_send(buf, count)
        self._streak = 0  # a reply: request and response traffic never batches reads
        if self._batching:
            _batching.replied(self)
        with self._lock:
            if (type(buf) is bytes and count is None and not self._squeue
                    and self._state is _CONNECTED and not self._send_closed
                    and not self._dropping and not self.SendQueueLimit and buf):
                return self._send_now(buf, len(buf), True)  # the common case, checks done
            if not self._can_send():
                return self._send_while_closed(buf, count)
            if isinstance(buf, str):
                raise TypeError("SendBuf takes bytes-like data; use SendText for str")
            view = memoryview(buf).cast("B")
            if count is not None:
                view = view[:max(count, 0)]
            n = len(view)
            if n == 0:
                return 0
            if self._send_closed:
                raise ESocketError.from_code(WSAESHUTDOWN, "send", errno.ESHUTDOWN)
            limit = self.SendQueueLimit
            if limit and self._squeued + n > limit:
                room = limit - self._squeued
                if room <= 0:
                    return -1
                view = view[:room]
                n = room
                buf = bytes(view)
            immutable = isinstance(buf, bytes)
            if self._squeue:
                self._squeue.append(view if immutable else bytes(view))
                self._squeued += n
                if self._squeued > self.SendQueueLowWater:
                    self._low_water_reported = False
                return n
            return self._send_now(view, n, immutable)

    def _send_now(self, data: Any, n: int, immutable: bool) -> int:
        """Hand ``n`` bytes to the OS (the queue is empty); queue what it does not take."""
        sock = self._sock
        assert sock is not None
        try:
            sent = sock.send(data)
        except WOULD_BLOCK:
            sent = 0
        except OSError as exc:
            self._fail(eeSend, exc, "send", raise_=True)
            return -1
        self.last_activity = _monotonic()
        if sent < n:
            rest = memoryview(data)[sent:]
            self._squeue.append(rest if immutable else bytes(rest))
            self._squeued += n - sent
            self._update_interest()
        return n

    def _send_while_closed(self, buf: Any, count: Optional[int]) -> int:
        """SendBuf on a socket that is not connected: nothing is sent (the VCL returns 0)."""
        return 0

    def _blocking_send(self, buf: Any, count: Optional[int] = None) -> int:
        """Blocking socket: send everything before returning (other threads may read meanwhile)."""
        if not self._can_send():
            return 0
        if isinstance(buf, str):
            raise TypeError("SendBuf takes bytes-like data; use SendText for str")
        view = memoryview(buf).cast("B")
        if count is not None:
            view = view[:max(count, 0)]
        if not len(view):
            return 0
        if self._send_closed:
            raise ESocketError.from_code(WSAESHUTDOWN, "send", errno.ESHUTDOWN)
        sock = self._sock
        try:
            with self._send_lock:
                if sock is None:
                    return 0
                sock.sendall(view)
        except OSError as exc:
            if self._state == SocketState.ssClosed:
                return 0
            self._fail(eeSend, exc, "send", raise_=True)
            return -1
        return len(view)

    def SendText(self, text: str) -> int:
        """Send ``text`` encoded with ``Encoding``; returns the number of bytes accepted."""
        if not isinstance(text, str):
            raise TypeError("SendText takes str; use SendBuf for bytes")
        return self.SendBuf(text.encode(self.Encoding))

    def SendStream(self, stream: Any) -> bool:
        """Queue a binary file-like object; the socket closes it when sent (or on close).

        Returns False (and does not take the stream) when not connected. Several streams may be
        queued; they go out in order after everything queued before them.
        """
        return self._send_stream(stream, drop=False)

    def SendStreamThenDrop(self, stream: Any) -> bool:
        """Like :meth:`SendStream`, then close the connection once the last byte has left."""
        return self._send_stream(stream, drop=True)

    def _send_stream(self, stream: Any, drop: bool) -> bool:
        if not self._can_send() or self._send_closed:
            return False
        self._streak = 0
        if self._batching:
            _batching.replied(self)
        if self._blocking:  # no lock held while sending: a failure fires events
            try:
                while True:
                    data = stream.read(STREAM_CHUNK)
                    if not data or self._blocking_send(data) <= 0:
                        break
            finally:
                QueuedStream(stream).close()
            if drop:
                self.Close()
            return True
        with self._lock:
            self._squeue.append(QueuedStream(stream))
            self._nstreams += 1
            if drop:
                self._squeue.append(DROP)
                self._dropping = True
            self._flush()
            return True

    def Shutdown(self, how: int = socket.SHUT_WR) -> None:
        """Half-close: ``SD_SEND`` sends FIN after everything already queued and keeps receiving;
        ``SD_RECEIVE`` stops receiving; ``SD_BOTH`` does both (beyond the VCL)."""
        with self._lock:
            if self._sock is None:
                return
            if how in (socket.SHUT_RD, socket.SHUT_RDWR):
                self._reading_stopped = True
                try:
                    socket.socket.shutdown(self._sock, socket.SHUT_RD)
                except OSError:
                    pass
                self._update_interest()
            if how in (socket.SHUT_WR, socket.SHUT_RDWR) and not self._send_closed:
                self._send_closed = True
                if self._squeue:
                    self._squeue.append(SHUTDOWN)
                else:
                    _shutdown_write(self._sock)

    def _flush(self) -> None:
        """Hand queued data to the OS until it would block; report seWrite when drained."""
        sock = self._sock
        queue = self._squeue
        while queue and sock is not None:
            item = queue[0]
            if item is SHUTDOWN:
                queue.popleft()
                _shutdown_write(sock)
                continue
            if item is DROP:
                queue.popleft()
                self._disconnect(graceful=True)
                return
            counted = not isinstance(item, QueuedStream)
            if counted:
                chunk = item
            else:
                try:
                    chunk = item.next_chunk()
                except Exception as exc:
                    queue.popleft()
                    self._nstreams -= 1
                    item.close()
                    self._report_exception(exc)
                    continue
                if chunk is None:
                    queue.popleft()
                    self._nstreams -= 1
                    item.close()
                    continue
            try:
                sent = sock.send(chunk)
            except WOULD_BLOCK:
                break
            except OSError as exc:
                self._fail(eeSend, exc, "send")
                return
            self.last_activity = time.monotonic()
            if counted:
                self._squeued -= sent
                if sent < len(chunk):
                    queue[0] = memoryview(chunk)[sent:]
                    break
                queue.popleft()
            else:
                item.pending = chunk[sent:]
                if sent < len(chunk):
                    break
        self._update_interest()
        if (self._squeued <= self.SendQueueLowWater and not self._nstreams
                and self._state in (SocketState.ssConnected, SocketState.ssHalfClosed)
                and (not queue or not self._low_water_reported)):
            self._low_water_reported = bool(queue)
            self._fire(seWrite)

    # ------------------------------------------------------------------ ending
    def _peer_closed(self) -> None:
        """The peer sent FIN: offer what is left, then OnDisconnect (or OnHalfClose)."""
        while self._rlen and not self._read_notified and self.Connected:
            before = self._rlen
            self._read_notified = True
            self._fire(seRead)
            if self._rlen >= before:
                break
        if not self.Connected or self._disconnecting:
            return
        if self.AllowHalfClose:
            self._state = SocketState.ssHalfClosed
            self._fire(seHalfClose)
        else:
            self._disconnect(graceful=True)

    def Close(self, ForceClosed: bool = False) -> None:
        """Close the connection: OnDisconnect fires (once) and queued data is still delivered.

        ``Close(True)`` (``ForceClosed``, as in later Delphi versions) closes abortively instead:
        queued data is dropped and the peer sees a reset.
        """
        self._disconnect(graceful=not ForceClosed)

    def Disconnect(self, Socket: Optional[int] = None) -> None:
        """VCL-compatible spelling of :meth:`Close` (``Socket`` must be this socket's handle)."""
        if Socket is None or Socket == self.SocketHandle:
            self._disconnect(graceful=True)

    def _disconnect(self, graceful: bool) -> None:
        # The lock only guards the once-only decision: an event is never fired while holding it,
        # because in thread mode the handler runs in another thread and may use this socket.
        with self._lock:
            if self._disconnecting or self._state == SocketState.ssClosed:
                return
            self._disconnecting = True
        try:
            self._cancel_pending()
            self._fire(seDisconnect)
        finally:
            with self._lock:
                self._release(graceful)
                self._disconnecting = False
        self._after_disconnect()

    def _cancel_pending(self) -> None:  # ClientWinSocket cancels a pending lookup here
        pass

    def _after_disconnect(self) -> None:  # ServerClientWinSocket leaves Connections here
        pass

    def _release(self, graceful: bool) -> None:
        """Detach the OS socket from this object and close it, flushing the queue if graceful."""
        sock = self._sock
        self._sock = None
        self._state = SocketState.ssClosed
        self._remote_host = None
        queue = self._squeue
        pump = self._pump
        self._reset_buffers()
        if sock is None:
            return
        if self._blocking:
            try:  # wake any thread blocked on this socket before the descriptor goes away
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass
        elif pump is not None:
            pump.unregister(sock.fileno())
            if graceful and queue:
                Closer(sock, queue, pump)
                return
        for item in queue:
            if isinstance(item, QueuedStream):
                item.close()
        close_quietly(sock, graceful)
