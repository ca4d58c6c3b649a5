"""``CustomWinSocket``: the base of every socket object (client, server-client, listening).

A socket object is the coordinator of one connection at a time: its :class:`~sockcomp._lifecycle.
Lifecycle` decides the phase and which VCL event fires, its :class:`~sockcomp._transport.
Transport` owns the OS socket, the TLS layer and the send queue, its :class:`~sockcomp.
_recvbuffer.ReceiveBuffer` holds what arrived, and its ``settings`` hold the per-connection
options. The components (:mod:`sockcomp.components`) turn what it reports into Qt signals,
through three sinks set by the owner: ``event_sink(socket, SocketEvent)``,
``error_sink(socket, ErrorEvent, Var)`` and ``frame_sink(socket, line_or_packet)``.

Delivery rules (Winsock's, which ScktComp inherits, with the library's fixes):

* **Reading.** Bytes are read into the receive buffer and ``seRead`` is reported once; again
  only after the application has read, and on a later turn, if bytes remain. A handler that
  never reads never makes OnRead spin. Past the high-water mark the socket stops reading, so
  TCP flow control slows the peer down; an error the kernel reports meanwhile still ends the
  connection at once.
* **Writing.** Send methods never lose or reorder data: what the kernel does not take is
  queued and flushed when the socket is writable. ``seWrite`` after the connection opens and
  whenever the queue has drained to ``SendQueueLowWater``.
* **Ending.** Every connection reports ``seDisconnect`` exactly once, and nothing after it. A
  peer's FIN comes after every byte before it was offered through ``seRead``, with the socket
  still writable: what the handler sends is flushed before the socket closes.
* **Threads.** In the component's thread nothing waits on the network. A blocking socket (a
  ``ctBlocking`` client, a ``stThreadBlocking`` server's client) waits in the threads allowed
  to: its worker, or any thread for a ctBlocking client. Calls from other threads are safe:
  sends queue in order and a pump-driven socket's pump flushes them; ``Close`` and
  ``Shutdown`` are handed to the component's thread.
"""
from __future__ import annotations

import errno
import fcntl
import socket
import sys
import termios
import threading
import time
from typing import Any, Callable, Optional

from . import _batching
from ._batching import RECEIVE_BATCH
from ._lifecycle import READ_PHASES, SEND_PHASES, WRITE_PHASES, Input, Lifecycle, Phase
from ._lifecycle import seHalfClose as seHalfClose
from ._pump import Pump
from ._recvbuffer import RECEIVE_HIGH_WATER, ReceiveBuffer
from ._sendqueue import RECEIVE_CHUNK, QueuedStream
from ._settings import ConnectionSettings, Setting
from ._sockopts import apply_keepalive
from ._transport import Transport
from ._waits import Deadline
from .enums import ErrorEvent, SocketState, eeGeneral, eeReceive, eeSend, seDisconnect, seRead
from .enums import seWrite
from .errors import WSAESHUTDOWN, WSAETIMEDOUT, ESocketError, HandleException, describe
from .errors import wsa_code
from .framing import FrameError, FramingMode, LineFramer, PacketFramer, pack_packet
from .var import Var

__all__ = ["CustomWinSocket", "RECEIVE_HIGH_WATER", "seHalfClose", "EventSink", "ErrorSink",
           "FrameSink", "FRAMES_PER_TURN"]

EventSink = Callable[["CustomWinSocket", int], None]
FrameSink = Callable[["CustomWinSocket", Any], None]  # a line (str) or a packet (bytes)
ErrorSink = Callable[["CustomWinSocket", ErrorEvent, Var[int]], None]

#: Frames one socket delivers per event-loop turn before it lets the loop turn (fairness).
FRAMES_PER_TURN = 64
_CONNECTED = Phase.CONNECTED


def _no_event(sock: "CustomWinSocket", event: int) -> None:
    pass


def _no_error(sock: "CustomWinSocket", event: ErrorEvent, code: Var[int]) -> None:
    pass


def _no_frame(sock: "CustomWinSocket", message: Any) -> None:
    pass


def _no_release(sock: "CustomWinSocket") -> None:
    pass


def _plain_address(addr: str) -> str:
    """Show an IPv4-mapped IPv6 address (dual-stack listener) as plain dotted IPv4."""
    if addr.startswith("::ffff:") and "." in addr:
        return addr[7:]
    return addr.split("%", 1)[0] if addr.startswith("fe80") else addr


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
    """Base of every socket object: one connection at a time, its buffers, the VCL methods.

    ``RemoteAddress``/``RemotePort``/``LocalAddress``/``LocalPort`` are captured when the
    connection is made and stay valid in every event of it (OnError and OnDisconnect after a
    reset included); afterwards they read ``''`` / ``0`` / ``''`` / ``-1``. ``Data`` is the
    application's. See the module docstring for the delivery and thread rules.
    """

    receive_high_water = RECEIVE_HIGH_WATER
    #: While a peer streams one way, wake only when this many bytes wait (Linux; 0: never).
    #: Set it on a socket (or on the class) before the stream starts. See sockcomp._batching.
    receive_batch = RECEIVE_BATCH

    Encoding = Setting("Text encoding of SendText/ReceiveText/lines (default 'utf-8').")
    AllowHalfClose = Setting("The peer's FIN fires OnHalfClose and keeps the socket open.")
    Framing = Setting("fmNone (raw bytes, OnRead), fmLine or fmPacket (one event per message).")
    LineEnd = Setting("What ends a line in fmLine mode and after SendLine (default '\\n').")
    MaxFrameSize = Setting("Longest line or packet accepted, in bytes (default 1 MiB).")
    FrameOverflow = Setting("foClose: an oversized message is OnError(eeReceive, 10040) and "
                            "the connection closes; foDiscard: reported, skipped.")
    SendQueueLimit = Setting("Most bytes queued (0: no limit); SendBuf accepts what fits and "
                             "returns that count, -1 when nothing fits.")
    SendQueueLowWater = Setting("OnWrite fires when the queue has drained to this many bytes.")
    IdleTimeout = Setting("Milliseconds without traffic (the TLS handshake included) after "
                          "which the connection is closed with OnError(eeGeneral, 10060); 0: "
                          "never.")
    HandshakeTimeout = Setting("Milliseconds a TLS handshake may take (default 60000; 0: no "
                               "limit); expiry is OnError(eeConnect, 10060).")
    KeepAlive = Setting("TCP keepalive probes detect a vanished peer (OnError(eeDisconnect, "
                        "10060), then OnDisconnect).")
    KeepAliveTime = Setting("ms without traffic before the first probe (default 30000; rounded "
                            "up to whole seconds on Linux and macOS).")
    KeepAliveInterval = Setting("ms between probes (default 5000; rounded up to whole seconds "
                                "on Linux and macOS).")
    KeepAliveCount = Setting("Unanswered probes before the peer is declared gone (default 4).")

    def __init__(self, sock: Optional[socket.socket] = None) -> None:
        self._life = Lifecycle()
        self._mutex = threading.RLock()      # guards buffers, queue and phase changes
        self._user_lock = threading.RLock()  # Lock()/Unlock(): the application's
        self._transport: Optional[Transport] = None
        self._flushing: Optional[Transport] = None  # a released transport still flushing
        self._pump: Optional[Pump] = None
        self._rx = ReceiveBuffer(self.receive_high_water)
        self._event_sink: EventSink = _no_event
        self._error_sink: ErrorSink = _no_error
        self._frame_sink: FrameSink = _no_frame
        self._framer: Any = None
        self._frames_due = False            # frames wait for the next turn (fairness)
        self._renotify_pending = False
        self._reading_stopped = False       # Shutdown(SD_RECEIVE)
        self._blocking = False              # reads and sends may wait (see _may_wait)
        self._worker_served = False         # stThreadBlocking: a worker thread reads
        self._notify_io = True              # OnRead/OnWrite (a ctBlocking client has none)
        self._tls_context: Any = None
        self._tls_server_side = False
        self._tls_hostname: Optional[str] = None
        self._local: Optional[tuple[Any, ...]] = None
        self._remote: Optional[tuple[Any, ...]] = None
        self._remote_host: Optional[str] = None
        self._os_sock: Optional[socket.socket] = sock  # a descriptor not yet in a transport
        #: Told (with this socket) once a connection has been released, after OnDisconnect.
        self.released_sink: Callable[["CustomWinSocket"], None] = _no_release
        #: The per-connection settings (the properties above read and write them).
        self.settings = ConnectionSettings()
        #: Text of the last error reported to OnError (a TLS failure explained, for example).
        self.LastErrorMessage = ""
        #: The last error reported to OnError as an ESocketError (WSA code, native errno, API).
        self.LastError: Optional[ESocketError] = None
        self.Data: Any = None
        if sock is not None and type(self) is CustomWinSocket:
            self._adopt(sock)

    def _adopt(self, sock: socket.socket) -> None:
        """``CustomWinSocket(sock)`` wraps a connected OS socket, as the VCL's constructor
        does: connected at once, read by this thread's pump, no events until sinks are set."""
        from ._pump import current_pump
        self._pump = current_pump()
        self._os_sock = None
        with self._mutex:
            self._life.step(Input.ACCEPT)
        transport = self._open_transport(sock)
        self._capture_addresses(sock)
        with self._mutex:
            self._life.step(Input.ESTABLISHED)
        transport.start_reading()

    # ------------------------------------------------------------------ state
    @property
    def Connected(self) -> bool:
        """True from the moment the connection is usable until it ends (inside OnDisconnect
        too, as the VCL)."""
        return self._life.connected

    @property
    def State(self) -> SocketState:
        """Where the socket is in its life cycle (beyond the VCL)."""
        return self._life.state

    @property
    def Phase(self) -> Phase:
        """The finer life-cycle phase (``sockcomp._lifecycle.Phase``), for component writers."""
        return self._life.phase

    @property
    def SocketHandle(self) -> int:
        """The OS descriptor, or -1 when there is none."""
        t = self._transport
        if t is not None:
            return t.fd
        sock = self._os_sock
        return sock.fileno() if sock is not None else -1

    @property
    def TLSActive(self) -> bool:
        """True when the connection is encrypted (beyond the VCL)."""
        t = self._transport
        return t is not None and t.tls

    @property
    def transport(self) -> Optional[Transport]:
        """The current connection's transport (OS socket, TLS layer, send queue), or None;
        for component writers and tests."""
        return self._transport

    @property
    def last_activity(self) -> float:
        """``time.monotonic()`` of the connection's last traffic (IdleTimeout counts from it)."""
        t = self._transport
        return t.last_activity if t is not None else time.monotonic()

    # ------------------------------------------------------------------ addresses
    def _capture_addresses(self, sock: socket.socket) -> None:
        try:
            self._local = sock.getsockname()
        except OSError:
            self._local = None
        try:
            self._remote = sock.getpeername()
        except OSError:
            self._remote = None

    def _local_name(self) -> Optional[tuple[Any, ...]]:
        if self._local is not None:
            return self._local
        sock = self._transport.sock if self._transport is not None else self._os_sock
        if sock is None:
            return None
        try:
            return sock.getsockname()
        except OSError:
            return None

    @property
    def LocalAddress(self) -> str:
        """Local IP address as text ('' without a connection)."""
        name = self._local_name()
        return _plain_address(name[0]) if name else ""

    @property
    def LocalHost(self) -> str:
        """This machine's host name ('' without a connection, as in the VCL)."""
        return socket.gethostname() if self._local_name() is not None else ""

    @property
    def LocalPort(self) -> int:
        """Local port, or -1 without a connection."""
        name = self._local_name()
        return int(name[1]) if name else -1

    @property
    def RemoteAddress(self) -> str:
        """The peer's IP address as text ('' when not connected)."""
        name = self._remote
        return _plain_address(name[0]) if name else ""

    @property
    def RemotePort(self) -> int:
        """The peer's port (0 when not connected)."""
        name = self._remote
        return int(name[1]) if name else 0

    @property
    def RemoteHost(self) -> str:
        """The peer's host name by reverse lookup ('' without one). Blocks the calling thread
        the first time; cached per connection."""
        if self._remote_host is None:
            addr = self.RemoteAddress
            if not addr:
                return ""
            try:
                self._remote_host = socket.gethostbyaddr(addr)[0]
            except OSError:
                self._remote_host = ""
        return self._remote_host

    # ------------------------------------------------------------------ settings
    @property
    def KeepAliveDetectionTime(self) -> int:
        """Longest time (ms) from the last traffic until keepalive reports a dead peer, from
        the values actually set (times round up to whole seconds on Linux and macOS)."""
        return self.settings.KeepAliveDetectionTime

    def _settings_changed(self, name: str) -> None:
        if name in ("Framing", "LineEnd", "MaxFrameSize", "FrameOverflow", "Encoding"):
            self._new_framer()
        elif name == "AllowHalfClose":
            self._life.allow_half_close = bool(self.settings.AllowHalfClose)
        elif name in ("SendQueueLimit", "SendQueueLowWater"):
            t = self._transport
            if t is not None:
                t.tx.limit = self.settings.SendQueueLimit
                t.tx.low_water = self.settings.SendQueueLowWater

    def _copy_settings(self, other: "CustomWinSocket") -> None:
        """Take over another socket's per-connection settings (a server's, for its clients)."""
        self.settings = other.settings.copy()
        self._life.allow_half_close = bool(self.settings.AllowHalfClose)
        self._new_framer()

    @property
    def SendQueueLength(self) -> int:
        """Bytes accepted by send methods but not yet handed to the OS (streams excluded)."""
        t = self._transport or self._flushing
        return t.tx.queued if t is not None else 0

    # ------------------------------------------------------------------ the connection
    def _open_transport(self, sock: socket.socket) -> Transport:
        """Make ``sock`` this object's connection (it is in a life-cycle phase already)."""
        flushing, self._flushing = self._flushing, None
        if flushing is not None:
            flushing.detach()  # it still flushes the previous connection's bytes
        t = Transport(sock, self, self._pump, self._mutex, self._worker_served)
        t.tx.limit = self.settings.SendQueueLimit
        t.tx.low_water = self.settings.SendQueueLowWater
        self._transport = t
        self._os_sock = None
        self._rx = ReceiveBuffer(self.receive_high_water)
        self._reading_stopped = False
        if self.settings.KeepAlive:
            apply_keepalive(sock, self.settings)
        return t

    def _begin_tls(self) -> None:
        """TCP is up and TLS is on: the handshake starts (a phase like the others)."""
        t = self._transport
        assert t is not None
        with self._mutex:
            self._life.step(Input.HANDSHAKE)
        t.start_tls(self._tls_context, self._tls_server_side, self._tls_hostname)
        if not self._blocking:
            t.handshake_async()  # handshake_done() or error_received() follow
            return
        timeout = self.settings.HandshakeTimeout
        try:
            t.handshake_wait(Deadline(self._handshake_budget(timeout)))
        except (OSError, ValueError) as exc:
            self._fail(ErrorEvent.eeConnect, exc, "SSL_do_handshake", raise_=True)
            return
        self._established()

    def _handshake_budget(self, timeout: int) -> Optional[float]:
        return timeout or None

    def handshake_done(self) -> None:
        """Transport: the TLS handshake succeeded."""
        self._established()

    def _established(self) -> None:
        """The connection is usable: OnConnect, then OnWrite (not for a ctBlocking client)."""
        t = self._transport
        with self._mutex:
            if t is None or not self._life.allows(Input.ESTABLISHED):
                return  # failed or closed meanwhile (a handler, a timeout)
            event = self._life.step(Input.ESTABLISHED)
        t.start_reading()
        self._connection_made()
        self._fire(event)  # type: ignore[arg-type]
        if self._notify_io and self._life.phase in WRITE_PHASES and not t.tx.items:
            self._fire(seWrite)

    def _connection_made(self) -> None:  # the client's connect timer, outbox
        pass

    # ------------------------------------------------------------------ transport callbacks
    def data_received(self, data: bytes) -> None:
        """Transport: bytes arrived."""
        if self._framer is not None:
            self._framer.push(data)
            self._deliver_frames()
            return
        rx = self._rx
        with self._mutex:
            notify = rx.append(data)
        if rx.length >= rx.high_water:
            t = self._transport
            if t is not None:
                t.pause_reading()
        if notify and self._life.phase in READ_PHASES:
            self._event_sink(self, seRead)

    def eof_received(self) -> None:
        """Transport: the peer finished sending."""
        self._rx.eof = True
        if self._framer is not None:
            self._framer.finish()
            self._deliver_frames()
            return
        self._peer_closed()

    def error_received(self, event: ErrorEvent, exc: BaseException, api: str) -> None:
        """Transport: the connection broke (reset, timeout, TLS failure…)."""
        self._fail(event, exc, api)

    def write_drained(self) -> None:
        """Transport: the send queue drained to the low-water mark."""
        if self._notify_io and self._life.phase in WRITE_PHASES:
            self._fire(seWrite)

    def drop_reached(self) -> None:
        """Transport: SendStreamThenDrop's stream has gone out."""
        self._end(graceful=True)

    def flush_done(self) -> None:
        """Transport: the background flush after the end of a connection finished."""
        with self._mutex:
            self._flushing = None
            if self._life.phase is Phase.CLOSING:
                self._life.step(Input.FLUSHED)

    def connect_done(self, err: int) -> None:  # ClientWinSocket: the connect's outcome
        pass

    # ------------------------------------------------------------------ framing
    def _new_framer(self) -> None:
        s = self.settings
        if s.Framing == FramingMode.fmLine:
            self._framer = LineFramer(s.LineEnd.encode(s.Encoding), s.MaxFrameSize,
                                      s.FrameOverflow)
        elif s.Framing == FramingMode.fmPacket:
            self._framer = PacketFramer(s.MaxFrameSize, s.FrameOverflow)
        else:
            self._framer = None
        rx = self._rx
        if self._framer is not None and rx.length and self._pump is not None:
            self._framer.push(rx.take())  # raw bytes were pending: frame them on a later turn
            self._schedule_frames()

    def _schedule_frames(self) -> None:
        if not self._frames_due and self._pump is not None:
            self._frames_due = True
            self._pump.call_soon(self._frames_turn)

    def _frames_turn(self) -> None:
        self._frames_due = False
        self._deliver_frames()

    def _deliver_frames(self) -> None:
        """Deliver up to FRAMES_PER_TURN frames, then let the loop turn (reading pauses while
        frames wait); at the end of the stream, the peer's FIN follows the last frame."""
        framer = self._framer
        t = self._transport
        for _ in range(FRAMES_PER_TURN):
            if self._life.phase not in READ_PHASES:
                return
            item = framer.pop()
            if item is None:
                if t is not None and not self._rx.eof and not self._reading_stopped:
                    t.resume_reading()
                if self._rx.eof:
                    self._peer_closed()
                return
            if isinstance(item, FrameError):
                self._frame_error(item, framer)
            elif isinstance(framer, LineFramer):
                self._frame_sink(self, item.decode(self.settings.Encoding, "replace"))
            else:
                self._frame_sink(self, item)
        if t is not None and self._pump is not None:
            t.pause_reading()
            self._schedule_frames()

    def _frame_error(self, item: FrameError, framer: Any) -> None:
        api_text = f"Windows socket error: {item.text} ({item.code}), on API 'recv'"
        self.LastError = ESocketError(api_text, item.code, None, "recv")
        code = self._report_error(ErrorEvent.eeReceive, item.code, item.text)
        if framer.failed:
            self._end(graceful=True)
        if code:
            self._report_exception(ESocketError(
                f"Windows socket error: {item.text} ({code}), on API 'recv'", code, None,
                "recv"))

    def SendLine(self, text: str) -> int:
        """Send ``text`` followed by ``LineEnd``; returns the bytes accepted (beyond the VCL)."""
        return self.SendText(text + self.settings.LineEnd)

    def SendPacket(self, data: Any) -> int:
        """Send ``data`` as one packet (4-byte big-endian length first); returns bytes accepted."""
        return self.SendBuf(pack_packet(bytes(data)))

    # ------------------------------------------------------------------ receiving
    def _may_wait(self) -> bool:
        """May a call in this thread wait on the network? Never in the component's thread in
        thread mode; always for a ctBlocking client (what it asked for)."""
        if not self._blocking:
            return False
        if not self._worker_served:
            return True
        pump = self._pump
        return pump is None or not pump.in_own_thread()

    def _peer_closed(self) -> None:
        """The peer sent FIN: offer what is left, then OnDisconnect (or OnHalfClose)."""
        rx = self._rx
        while rx.length and not rx.notified and self._life.phase in READ_PHASES \
                and self._notify_io:
            before = rx.length
            rx.notified = True
            self._fire(seRead)
            if rx.length >= before:
                break
        with self._mutex:
            event = self._life.step(Input.PEER_FIN)
        if event == seDisconnect:
            self._disconnect_now(graceful=True)
        elif event == seHalfClose:
            self._fire(seHalfClose)

    def ReceiveLength(self) -> int:
        """Bytes that can be read now without waiting."""
        pending = self._rx.pending
        t = self._transport
        if self._may_wait() and t is not None and not self._rx.eof:
            buf = bytearray(4)
            try:
                fcntl.ioctl(t.fd, termios.FIONREAD, buf)
            except OSError:
                return pending
            return pending + int.from_bytes(buf, sys.byteorder)
        return pending

    def ReceiveBytes(self, count: Optional[int] = None) -> bytes:
        """Up to ``count`` pending bytes (all when ``None``); ``b''`` when there are none.
        Beyond the VCL. On a blocking socket, in a thread that may wait, an explicit ``count``
        waits for data."""
        data = self._receive(count, wait=count is not None)
        return data or b""

    def ReceiveBuf(self, buf: Any, count: Optional[int] = None) -> int:
        """Read into the writable buffer ``buf``; returns the bytes read.

        ``count`` defaults to ``len(buf)``; ``count == -1`` returns the bytes pending without
        reading. Returns 0 when the peer has closed and nothing is left, -1 when nothing is
        readable yet (never waiting in the component's thread). A blocking socket waits in a
        thread that may wait.
        """
        if count == -1:
            return self.ReceiveLength()
        view = memoryview(buf).cast("B")
        want = len(view) if count is None else min(count, len(view))
        if want <= 0:
            return 0
        data = self._receive(want, wait=True)
        if data is None:
            return -1
        view[:len(data)] = data
        return len(data)

    def _receive(self, count: Optional[int], wait: bool) -> Optional[bytes]:
        """Buffered bytes first; else, where this thread may read the kernel, from it.
        None: nothing yet; b'': the end (or no connection)."""
        rx = self._rx
        if rx.length or rx.pending:
            with self._mutex:
                data = rx.take(count)
                more = rx.consumed()
            self._consumed(more)
            return data
        t = self._transport
        if t is None or rx.eof:
            return b""
        if not self._may_wait():
            return None
        size = count or RECEIVE_CHUNK
        try:
            data = t.read_wait(size, Deadline(None)) if wait else t.read_now(size)
        except OSError as exc:
            if self._life.phase is Phase.CLOSED:
                return b""
            self._fail(eeReceive, exc, "recv", raise_=True)
            return b""
        if data == b"":
            rx.eof = True
        return data

    def ReceiveText(self) -> str:
        """All pending bytes decoded with ``Encoding``.

        An incomplete multi-byte character at the end stays pending until the rest arrives (or
        the peer closes), so text split across TCP segments is never garbled. On a blocking
        socket, what the kernel holds is read first (without waiting).
        """
        rx = self._rx
        if self._may_wait():
            self._pull_available()
        if not rx.pending:
            return ""
        with self._mutex:
            text = rx.decode(self.settings.Encoding)
            more = rx.consumed()
        self._consumed(more)
        return text

    def _pull_available(self) -> None:
        """Blocking socket: move what the kernel has into the buffer, without waiting."""
        t = self._transport
        rx = self._rx
        while t is not None and not rx.eof and not rx.full:
            try:
                data = t.read_now(RECEIVE_CHUNK)
            except OSError as exc:
                self._fail(eeReceive, exc, "recv", raise_=True)
                return
            if data is None:
                return
            if not data:
                rx.eof = True
                return
            with self._mutex:
                rx.append(data)

    def _consumed(self, more: bool) -> None:
        """The application read: another OnRead later if bytes remain (Winsock's rule), and
        read from the kernel again if the buffer had filled."""
        pump = self._pump
        if pump is None:
            return
        own = pump.in_own_thread()
        if more and not self._renotify_pending and self._notify_io:
            self._renotify_pending = True
            (pump.call_soon if own else pump.call_soon_threadsafe)(self._renotify)
        t = self._transport
        if t is not None and not t.reading and not t.served_by_worker and not self._rx.full \
                and not self._rx.eof and not self._reading_stopped and self._framer is None:
            if own:
                t.resume_reading()
            else:
                pump.call_soon_threadsafe(self._resume_reading)

    def _resume_reading(self) -> None:
        t = self._transport
        if t is not None and not self._rx.full and not self._rx.eof:
            t.resume_reading()

    def _renotify(self) -> None:
        self._renotify_pending = False
        with self._mutex:
            due = self._life.phase in READ_PHASES and self._rx.renotify()
        if due:
            self._fire(seRead)

    def read_into_buffer(self, timeout_ms: Optional[int] = None) -> bool:
        """Worker threads (the default ClientExecute): wait until data arrives, read it into
        the buffer and report it (OnRead by the read-event rule; the end of the stream and
        errors as always). False when the wait ended with nothing (time out, woken)."""
        t = self._transport
        if t is None or self._rx.eof:
            return False
        try:
            data = t.read_wait(RECEIVE_CHUNK, Deadline(timeout_ms))
        except OSError as exc:
            if self._life.phase is not Phase.CLOSED:
                self.error_received(ErrorEvent.eeDisconnect, exc, "recv")
            return False
        if data is None:
            return False
        if data:
            self.data_received(data)
        else:
            self.eof_received()
        return True

    # ------------------------------------------------------------------ waiting (blocking sockets)
    @property
    def blocking(self) -> bool:
        """A blocking socket: a ctBlocking client or a stThreadBlocking server's client."""
        return self._blocking

    def wait_readable(self, timeout_ms: Optional[int]) -> bool:
        """Wait until new data (or the end of the stream) can be read, at most ``timeout_ms``
        (None: no limit); a byte held back by the text decoder does not count."""
        rx = self._rx
        if rx.length or rx.eof:
            return True
        t = self._transport
        if t is None:
            return True  # closed: the next read reports the end
        return t.readable_wait(Deadline(timeout_ms))

    def read_wait(self, count: int, timeout_ms: Optional[int]) -> Optional[bytes]:
        """Read up to ``count`` bytes, waiting at most ``timeout_ms``: bytes, ``b''`` at the
        end of the stream, None when the time ran out (or the thread was woken). An error is
        OnError(eeReceive), OnDisconnect, then raised."""
        if self._rx.pending:
            return self._receive(count, wait=False)
        t = self._transport
        if t is None or self._rx.eof:
            return b""
        try:
            data = t.read_wait(count, Deadline(timeout_ms))
        except OSError as exc:
            if self._life.phase is Phase.CLOSED:
                return b""
            self._fail(eeReceive, exc, "recv", raise_=True)
            return b""
        if data == b"":
            self._rx.eof = True
        return data

    def write_wait(self, buf: Any, timeout_ms: Optional[int]) -> int:
        """Send all of ``buf``, waiting at most ``timeout_ms``; returns the bytes that went
        out (what had not when the time ran out is taken back). An error is OnError(eeSend),
        OnDisconnect, then raised."""
        view = memoryview(buf).cast("B")
        t = self._transport
        if t is None or self._life.phase not in SEND_PHASES or not len(view):
            return 0
        try:
            return t.send_wait(buf, view, Deadline(timeout_ms))
        except OSError as exc:
            self._fail(eeSend, exc, "send", raise_=True)
            return 0

    # ------------------------------------------------------------------ sending
    def SendBuf(self, buf: Any, count: Optional[int] = None) -> int:
        """Send ``count`` bytes of ``buf`` (all when ``None``); returns the bytes accepted.

        Connected: what the OS does not take now is queued and flushed in order, up to
        ``SendQueueLimit`` (then the count that fit, -1 when nothing fits). A blocking socket,
        in a thread that may wait, returns once every byte has gone to the OS. Not connected:
        0 (as the VCL). After ``Shutdown(SD_SEND)``: ``ESocketError`` (10058). A failure is
        OnError(eeSend), OnDisconnect, then the ESocketError raised here.
        """
        if isinstance(buf, str):
            raise TypeError("SendBuf takes bytes-like data; use SendText for str")
        view = memoryview(buf)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        if count is not None:
            view = view[:max(count, 0)]
        t = self._transport
        phase = self._life.phase
        if t is None or phase not in SEND_PHASES:
            if phase is Phase.SEND_SHUT:
                raise ESocketError.from_code(WSAESHUTDOWN, "send", errno.ESHUTDOWN)
            return self._send_while_closed(buf, view)
        if not len(view):
            return 0
        batch = t.batch
        batch.streak = 0  # a reply: request and response traffic never batches reads
        if batch.active:
            _batching.replied(t)
        try:
            if self._may_wait():
                return t.send_wait(buf, view, Deadline(None))
            return t.send(buf, view)
        except OSError as exc:
            self._fail(eeSend, exc, "send", raise_=True)
            return -1

    def _send_while_closed(self, buf: Any, view: memoryview) -> int:
        """SendBuf on a socket that is not connected: nothing is sent (the VCL returns 0)."""
        return 0

    def SendText(self, text: str) -> int:
        """Send ``text`` encoded with ``Encoding``; returns the number of bytes accepted."""
        if not isinstance(text, str):
            raise TypeError("SendText takes str; use SendBuf for bytes")
        return self.SendBuf(text.encode(self.settings.Encoding))

    def SendStream(self, stream: Any) -> bool:
        """Queue a binary file-like object; the socket closes it when sent (or on close).

        Returns False (and does not take the stream) when not connected. Several streams may
        be queued; they go out in order after everything queued before them.
        """
        return self._send_stream(stream, drop=False)

    def SendStreamThenDrop(self, stream: Any) -> bool:
        """Like :meth:`SendStream`, then close the connection once the last byte has left."""
        return self._send_stream(stream, drop=True)

    def _send_stream(self, stream: Any, drop: bool) -> bool:
        t = self._transport
        if t is None or self._life.phase not in SEND_PHASES or t.tx.dropping:
            return False
        batch = t.batch
        batch.streak = 0
        if batch.active:
            _batching.replied(t)
        if self._may_wait():  # a waiting writer sends it all before returning
            try:
                while True:
                    data = stream.read(64 * 1024)
                    if not data or self.SendBuf(data) <= 0:
                        break
            finally:
                QueuedStream(stream).close()
            if drop:
                self.Close()
            return True
        t.queue_stream(QueuedStream(stream), drop)
        return True

    def Shutdown(self, how: int = socket.SHUT_WR) -> None:
        """Half-close: ``SD_SEND`` sends FIN after everything already queued and keeps
        receiving; ``SD_RECEIVE`` stops receiving; ``SD_BOTH`` does both (beyond the VCL).
        After the peer's FIN (``AllowHalfClose``), ``SD_SEND`` ends the connection as
        ``Close()`` does."""
        if self._posted(self.Shutdown, how):
            return
        t = self._transport
        if t is None:
            return
        if how in (socket.SHUT_RD, socket.SHUT_RDWR):
            self._reading_stopped = True
            t.pause_reading()
            try:
                t.sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        if how in (socket.SHUT_WR, socket.SHUT_RDWR) and not t.tx.shutdown_queued:
            t.shutdown_write()
            with self._mutex:
                event = self._life.step(Input.SHUT_SEND) \
                    if self._life.allows(Input.SHUT_SEND) else None
            if event == seDisconnect:
                self._disconnect_now(graceful=True)

    # ------------------------------------------------------------------ ending
    def Close(self, ForceClosed: bool = False) -> None:
        """Close the connection: OnDisconnect fires (once) and queued data is still delivered.

        ``Close(True)`` (``ForceClosed``, as in later Delphi versions) closes abortively:
        queued data is dropped and the peer sees a reset. From another thread than the
        component's, a pump-driven socket closes on the component's thread's next turn.
        """
        if self._posted(self.Close, ForceClosed):
            return
        self._end(graceful=not ForceClosed)

    def Disconnect(self, Socket: Optional[int] = None) -> None:
        """VCL-compatible spelling of :meth:`Close` (``Socket`` must be this socket's handle)."""
        if Socket is None or Socket == self.SocketHandle:
            self.Close()

    def _posted(self, method: Callable[..., None], *args: Any) -> bool:
        """Called from a foreign thread on a pump-driven socket: run it in the pump's thread."""
        pump = self._pump
        if pump is None or self._worker_served or self._blocking or pump.in_own_thread():
            return False
        pump.call_soon_threadsafe(method, *args)
        return True

    def _end(self, graceful: bool) -> None:
        """End the connection (once): OnDisconnect, then release the OS socket."""
        with self._mutex:
            if not self._life.allows(Input.CLOSE):
                return
            event = self._life.step(Input.CLOSE)
        if event == seDisconnect:
            self._disconnect_now(graceful)

    def _disconnect_now(self, graceful: bool) -> None:
        """The phase is DISCONNECTING: fire OnDisconnect (still open), then release."""
        self._cancel_pending()
        try:
            self._fire(seDisconnect)
        finally:
            self._release(graceful)
        self._after_disconnect()
        self.released_sink(self)

    def drop_os_sockets(self) -> None:
        """Close the OS sockets at once, touching no Qt object (Qt is going away)."""
        for t in (self._transport, self._flushing):
            if t is not None:
                t.sock.close()
        if self._os_sock is not None:
            self._os_sock.close()

    def abandon(self) -> None:
        """The owner is gone (a destroyed component): end the connection, firing nothing."""
        self._event_sink = _no_event
        self._error_sink = _no_error
        self._frame_sink = _no_frame
        self.released_sink = _no_release
        self._end(graceful=True)

    def _release(self, graceful: bool) -> None:
        t, self._transport = self._transport, None
        sock, self._os_sock = self._os_sock, None
        flushing = t.release(graceful) if t is not None else False
        if sock is not None:
            sock.close()
        with self._mutex:
            if flushing:
                self._flushing = t
            self._life.step(Input.FLUSHING if flushing else Input.RELEASED)
            self._rx.clear()
            self._local = self._remote = None
            self._remote_host = None
            self._frames_due = False
        if self._framer is not None:
            self._new_framer()

    def _cancel_pending(self) -> None:  # ClientWinSocket cancels a lookup or connect here
        pass

    def _after_disconnect(self) -> None:  # ServerClientWinSocket leaves Connections here
        pass

    # ------------------------------------------------------------------ errors
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
        """An error ends the connection: OnError, then OnDisconnect, then raise or the hook.

        Nothing happens if the connection was already ending (nothing after OnDisconnect).
        The close is abortive (the connection is broken) unless ``graceful``.
        """
        with self._mutex:
            if not self._life.live:
                return
            self._life.step(Input.FAIL)
        original = wsa_code(exc)
        self.LastError = ESocketError.from_os_error(exc, api)
        code = self._report_error(event, original, describe(exc))
        self._end(graceful)
        if code:
            err = self.LastError if code == original else \
                ESocketError.from_code(code, api, getattr(exc, "errno", None))
            if raise_:
                raise err
            self._report_exception(err)

    def fail(self, event: ErrorEvent, exc: BaseException, api: str,
             graceful: bool = False) -> None:
        """End the connection with an error (OnError, OnDisconnect, then the application
        hook unless a handler cleared ErrorCode): for the library's timers and watchers."""
        self._fail(event, exc, api, graceful=graceful)

    def deadline(self) -> Optional[float]:
        """``time.monotonic()`` at which this connection times out (IdleTimeout while it is
        up or handshaking, HandshakeTimeout while handshaking), or None."""
        t = self._transport
        phase = self._life.phase
        if t is None or not self._life.live or phase in (Phase.LOOKUP, Phase.CONNECTING):
            return None
        due = None
        idle = self.settings.IdleTimeout
        if idle:
            due = t.last_activity + idle / 1000
        handshake = self.settings.HandshakeTimeout
        if handshake and phase is Phase.HANDSHAKING and t.handshake_started:
            end = t.handshake_started + handshake / 1000
            due = end if due is None else min(due, end)
        return due

    def deadline_passed(self) -> None:
        """The deadline came: a handshake that took too long is OnError(eeConnect, 10060);
        no traffic for IdleTimeout ms is OnError(eeGeneral, 10060); then the connection ends."""
        t = self._transport
        handshake = self.settings.HandshakeTimeout
        if self._life.phase is Phase.HANDSHAKING and t is not None and handshake and \
                time.monotonic() >= t.handshake_started + handshake / 1000:
            self._fail(ErrorEvent.eeConnect, TimeoutError(
                errno.ETIMEDOUT, f"TLS handshake took more than {handshake} ms"),
                "SSL_do_handshake")
            return
        self.idle_expired()

    def idle_expired(self) -> None:
        """No traffic for IdleTimeout ms: OnError(eeGeneral, 10060), then close (a FIN)."""
        timeout = self.settings.IdleTimeout
        error = ESocketError(f"Windows socket error: idle for more than {timeout} ms "
                             f"({WSAETIMEDOUT}), on API 'recv'", WSAETIMEDOUT, errno.ETIMEDOUT,
                             "recv")
        self._fail(eeGeneral, error, "recv", graceful=True)

    def _report_exception(self, exc: BaseException) -> None:
        """Pass an asynchronous error to the application hook, in the component's thread."""
        HandleException(exc)

    # ------------------------------------------------------------------ locking
    def Lock(self) -> "_LockGuard":
        """Enter the socket's re-entrant lock; also usable as ``with sock.Lock():``. It is the
        application's: the library never holds it, so it serializes only your own code."""
        self._user_lock.acquire()
        return _LockGuard(self._user_lock)

    def Unlock(self) -> None:
        """Leave the socket's lock."""
        self._user_lock.release()

    def __enter__(self) -> "CustomWinSocket":
        self._user_lock.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._user_lock.release()
