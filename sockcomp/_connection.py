"""The life of one connection at a time: the socket object's coordinator.

:class:`Connection` is the part of every socket object (:class:`sockcomp.winsock.
CustomWinSocket`) that drives the :class:`~sockcomp._lifecycle.Lifecycle` and owns the
:class:`~sockcomp._transport.Transport`: a connection is opened (a client's connect, a server's
accept), its TLS handshake runs, it is established (OnConnect), and it ends exactly once
(OnError when it broke, then OnDisconnect, then the OS socket is released, gracefully flushing
what was queued). The receive and send sides (:mod:`sockcomp._receiving`,
:mod:`sockcomp._sending`) build on it.

Events are reported through three sinks set by the owner: ``_event_sink(socket, SocketEvent)``,
``_error_sink(socket, ErrorEvent, Var)`` and ``_frame_sink(socket, line_or_packet)``; none is
ever called while a lock is held, because in thread mode a handler runs in another thread and
may use this socket.
"""
from __future__ import annotations

import errno
import socket
import threading
import time
from typing import Any, Callable, Optional

from ._batching import RECEIVE_BATCH
from ._blocking import WaitingTransport
from ._lifecycle import Input, Lifecycle, Phase, WRITE_PHASES
from ._pump import Pump
from ._recvbuffer import RECEIVE_HIGH_WATER, ReceiveBuffer
from ._settings import ConnectionSettings, Setting
from ._sockopts import apply_keepalive
from ._transport import Transport
from ._waits import Deadline
from .enums import (
    DEFAULT_ASYNC_STYLES, AsyncStyle, ErrorEvent, SocketState, asRead, asWrite, eeGeneral,
    seDisconnect, seWrite,
)
from .errors import ESocketError, HandleException, describe, raise_error, wsa_code
from .var import Var

__all__ = ["Connection", "EventSink", "ErrorSink", "FrameSink", "no_event", "no_error",
           "no_frame"]

# the socket object, and: the SocketEvent / the ErrorEvent and ErrorCode cell / the message
EventSink = Callable[[Any, int], None]
FrameSink = Callable[[Any, Any], None]  # a line (str) or a packet (bytes)
ErrorSink = Callable[[Any, ErrorEvent, Var[int]], None]

#: Frames one socket delivers per event-loop turn before it lets the loop turn (fairness).
FRAMES_PER_TURN = 64
_CONNECTED = Phase.CONNECTED


def no_event(sock: "Connection", event: int) -> None:
    pass


def no_error(sock: "Connection", event: ErrorEvent, code: Var[int]) -> None:
    pass


def no_frame(sock: "Connection", message: Any) -> None:
    pass


def _no_release(sock: "Connection") -> None:
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


class Connection:
    """One connection at a time: its life cycle, transport, settings, ending and errors."""

    receive_high_water = RECEIVE_HIGH_WATER
    #: While a peer streams one way, wake only when this many bytes wait (Linux; 0: never).
    #: Set it on a socket (or on the class) before the stream starts. See sockcomp._batching.
    receive_batch = RECEIVE_BATCH

    Encoding = Setting("Encoding")
    AllowHalfClose = Setting("AllowHalfClose")
    Framing = Setting("Framing")
    LineEnd = Setting("LineEnd")
    MaxFrameSize = Setting("MaxFrameSize")
    FrameOverflow = Setting("FrameOverflow")
    SendQueueLimit = Setting("SendQueueLimit")
    SendQueueLowWater = Setting("SendQueueLowWater")
    IdleTimeout = Setting("IdleTimeout")
    HandshakeTimeout = Setting("HandshakeTimeout")
    KeepAlive = Setting("KeepAlive")
    KeepAliveTime = Setting("KeepAliveTime")
    KeepAliveInterval = Setting("KeepAliveInterval")
    KeepAliveCount = Setting("KeepAliveCount")

    # Defaults on the class: an instance stores only what differs (a server may hold 10,000
    # of these), so most are assigned only when a connection needs them. What every
    # connection sets is an instance attribute from __init__ instead: Python 3.12+ does not
    # specialise a read of an instance attribute that shadows a class attribute (about twice
    # the cost, measured), and some of these are read for every message.
    _user_lock: Optional[Any] = None    # Lock()/Unlock(): the application's, made on first use
    _transport: Optional[Transport]
    _waiter: Optional[WaitingTransport]  # the transport, when it waits
    _flushing: Optional[Transport]      # a released transport still flushing
    _pump: Optional[Pump]
    _event_sink: EventSink
    _error_sink: ErrorSink
    _frame_sink: FrameSink
    _framer: Any
    _frames_due = False                 # frames wait for the next turn (fairness)
    _renotify_pending = False
    _reading_stopped: bool              # Shutdown(SD_RECEIVE)
    _blocking: bool                     # reads and sends may wait (see _may_wait)
    _worker_served: bool                # stThreadBlocking: a worker thread reads
    _notify_read = True                 # OnRead (ASyncStyles has asRead; not ctBlocking)
    _notify_write = True                # OnWrite (ASyncStyles has asWrite; not ctBlocking)
    _async_styles: frozenset[AsyncStyle] = DEFAULT_ASYNC_STYLES
    _tls_context: Any = None
    _tls_server_side = False
    _tls_hostname: Optional[str] = None
    _remote: Optional[tuple[Any, ...]] = None
    _remote_host: Optional[str] = None
    _os_sock: Optional[socket.socket] = None  # a descriptor not yet in a transport
    #: Told (with this socket) once a connection has been released, after OnDisconnect.
    released_sink: Callable[["Connection"], None] = staticmethod(
        _no_release)
    #: Text of the last error reported to OnError (a TLS failure explained, for example).
    LastErrorMessage = ""
    #: The last error reported to OnError as an ESocketError (WSA code, native errno, API).
    LastError: Optional[ESocketError] = None
    #: Free for the application.
    Data: Any = None

    def __init__(self, sock: Optional[socket.socket] = None) -> None:
        self._life = Lifecycle()
        self._mutex = threading.RLock()      # guards buffers, queue and phase changes
        self._rx = ReceiveBuffer(self.receive_high_water)
        #: The per-connection settings (the properties above read and write them).
        self.settings = ConnectionSettings()
        self._transport = self._waiter = self._flushing = None
        self._pump = None
        self._event_sink = no_event
        self._error_sink = no_error
        self._frame_sink = no_frame
        self._framer = None
        self._reading_stopped = self._blocking = self._worker_served = False
        if sock is not None:
            self._os_sock = sock

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
        """``time.monotonic()`` of the connection's last traffic (IdleTimeout counts from it);
        traffic is stamped only while IdleTimeout is set (else: when the connection opened or
        the timeout last changed)."""
        t = self._transport
        return t.last_activity if t is not None else time.monotonic()

    @property
    def blocking(self) -> bool:
        """A blocking socket: a ctBlocking client or a stThreadBlocking server's client."""
        return self._blocking

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
        elif name == "IdleTimeout":
            self._stamp_if_idle_timed()

    def _stamp_if_idle_timed(self) -> None:
        """The transport stamps its traffic only while an IdleTimeout needs it. A timeout set
        where there was none counts from now (the last stamp may be old); a timeout changed or
        written again keeps counting from the last traffic."""
        t = self._transport
        if t is not None:
            t.stamp_traffic(bool(self.settings.IdleTimeout))

    def _new_framer(self) -> None:
        """The framing settings changed (the receive side makes its framer)."""

    def _copy_settings(self, other: "Connection") -> None:
        """Take over another socket's per-connection settings (a server's, for its clients)."""
        self.settings = other.settings.copy()
        self._life.allow_half_close = bool(self.settings.AllowHalfClose)
        self._new_framer()
        self._stamp_if_idle_timed()

    def _open_transport(self, sock: socket.socket) -> Transport:
        """Make ``sock`` this object's connection (it is in a life-cycle phase already)."""
        flushing, self._flushing = self._flushing, None
        if flushing is not None:
            flushing.detach()  # it still flushes the previous connection's bytes
        t: Transport
        if self._blocking:
            t = self._waiter = WaitingTransport(sock, self, self._pump, self._mutex,
                                                self._worker_served)
        else:
            t = Transport(sock, self, self._pump, self._mutex, False)
            self._waiter = None
        t.tx.limit = self.settings.SendQueueLimit
        t.tx.low_water = self.settings.SendQueueLowWater
        t.stamp_traffic(bool(self.settings.IdleTimeout))
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
            assert self._waiter is not None
            self._waiter.handshake_wait(Deadline(self._handshake_budget(timeout)))
        except (OSError, ValueError) as exc:
            self._fail(ErrorEvent.eeConnect, exc, "SSL_do_handshake", raise_=True,
                       graceful=True)
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
        if self._notify_write and self._life.phase in WRITE_PHASES and not t.tx.items:
            self._fire(seWrite)

    def _connection_made(self) -> None:  # the client's connect timer, outbox
        pass

    def _apply_styles(self, quiet: bool = False) -> None:
        """OnRead/OnWrite as ``ASyncStyles`` says (none at all when ``quiet``: a ctBlocking
        client). Only a difference from the class default is stored on the instance."""
        styles = self._async_styles
        for name, on in (("_notify_read", asRead in styles and not quiet),
                         ("_notify_write", asWrite in styles and not quiet)):
            if on:
                self.__dict__.pop(name, None)
            else:
                setattr(self, name, False)

    def error_received(self, event: ErrorEvent, exc: BaseException, api: str) -> None:
        """Transport: the connection broke (reset, timeout, TLS failure…). A failed TLS
        handshake still closes with a FIN: OpenSSL's alert goes out first."""
        self._fail(event, exc, api, graceful=self._life.phase is Phase.HANDSHAKING)

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

    def _may_wait(self) -> bool:
        """May a call in this thread wait on the network? Never in the component's thread in
        thread mode; always for a ctBlocking client (what it asked for)."""
        if not self._blocking:
            return False
        if not self._worker_served:
            return True
        pump = self._pump
        return pump is None or not pump.in_own_thread()

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
        self._event_sink = no_event
        self._error_sink = no_error
        self._frame_sink = no_frame
        self.released_sink = _no_release
        self._end(graceful=True)

    def _release(self, graceful: bool) -> None:
        t, self._transport = self._transport, None
        self._waiter = None
        sock, self._os_sock = self._os_sock, None
        flushing = t.release(graceful) if t is not None else False
        if sock is not None:
            sock.close()
        with self._mutex:
            if flushing:
                self._flushing = t
            self._life.step(Input.FLUSHING if flushing else Input.RELEASED)
            self._rx.clear()
            self._remote = None
            self._remote_host = None
            self._frames_due = False
        if self._framer is not None:
            self._new_framer()

    def _cancel_pending(self) -> None:  # ClientWinSocket cancels a lookup or connect here
        pass

    def _after_disconnect(self) -> None:  # ServerClientWinSocket leaves Connections here
        pass

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
        """An error ends the connection: OnError, then OnDisconnect, then (unless a handler
        cleared ErrorCode) raised to the caller when ``raise_``, else the hook's
        ``Asynchronous socket error``.

        Nothing happens if the connection was already ending (nothing after OnDisconnect).
        The close is abortive (the connection is broken) unless ``graceful``.
        """
        with self._mutex:
            if not self._life.live:
                return
            self._life.step(Input.FAIL)
        original = wsa_code(exc)
        self.LastError = ESocketError.from_os_error(exc, api)
        text = describe(exc)
        code = self._report_error(event, original, text)
        self._end(graceful)
        if not code:
            return
        native = getattr(exc, "errno", None)
        if raise_:  # the caller's own call failed: raised there, or its error proc
            raise_error(self.LastError if code == original else
                        ESocketError.from_code(code, api, native))
        elif code == original:
            self._report_exception(ESocketError.asynchronous(code, api, text, native))
        else:
            self._report_exception(ESocketError.asynchronous(code, api, "", native))

    def fail(self, event: ErrorEvent, exc: BaseException, api: str,
             graceful: bool = False) -> None:
        """End the connection with an error (OnError, OnDisconnect, then the application
        hook unless a handler cleared ErrorCode): for the library's timers and watchers."""
        self._fail(event, exc, api, graceful=graceful)

    def idle_expired(self) -> None:
        """No traffic for IdleTimeout ms: OnError(eeGeneral, 10060), then close (a FIN)."""
        timeout = self.settings.IdleTimeout
        error = TimeoutError(errno.ETIMEDOUT, f"idle for more than {timeout} ms")
        self._fail(eeGeneral, error, "recv", graceful=True)

    def _report_exception(self, exc: BaseException) -> None:
        """Pass an asynchronous error to the application hook, in the component's thread."""
        HandleException(exc)

    def _application_lock(self) -> Any:
        lock = self._user_lock
        if lock is None:
            with self._mutex:  # two threads locking for the first time get the same lock
                lock = self._user_lock
                if lock is None:
                    lock = self._user_lock = threading.RLock()
        return lock

    def Lock(self) -> "_LockGuard":
        """Enter the socket's re-entrant lock; also usable as ``with sock.Lock():``. It is the
        application's: the library never holds it, so it serializes only your own code."""
        lock = self._application_lock()
        lock.acquire()
        return _LockGuard(lock)

    def Unlock(self) -> None:
        """Leave the socket's lock."""
        self._application_lock().release()

    def __enter__(self) -> "Connection":
        self._application_lock().acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._application_lock().release()
