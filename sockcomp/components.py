"""The components: ``ClientSocket`` and ``ServerSocket``, QObjects that speak in VCL events.

A component owns one socket object (``Socket``) and turns its notifications into Qt signals
named like the Delphi events, with Delphi's arguments (``Sender``, ``Socket``, …). Properties
follow the VCL rules: Host beats Address, Service beats Port, and they cannot change while the
socket is active. All signals are emitted in the component's thread.

``Active`` works like a form-loaded Delphi component: setting it during the event-loop turn in
which the component was created (as ``setupUi`` does, property after property) only records the
wish; the socket opens on the next turn, once every property is set. Call :meth:`Loaded` to end
that phase earlier. Inside Qt Designer nothing ever opens.
"""
from __future__ import annotations

import ssl
from typing import Any, Callable, Optional, Union

from PySide6.QtCore import QMetaMethod, QObject, QTimer, Signal

from ._designtime import in_designer
from ._idle import IdleWatch
from ._pump import current_pump
from ._tls import client_context, host_for_sni, server_context
from .clientwinsock import ClientWinSocket
from .enums import (
    ClientType,
    ErrorEvent,
    ServerType,
    SocketState,
    seConnect,
    seConnecting,
    seDisconnect,
    seListen,
    seLookup,
    seRead,
    seWrite,
)
from .errors import ESocketError, HandleException
from .framing import FrameOverflow, FramingMode
from .serverwinsock import ServerClientWinSocket, ServerWinSocket
from .var import Var
from .winsock import CustomWinSocket, seHalfClose

__all__ = ["ClientSocket", "ServerSocket"]

_ACTIVE_ERROR = "Can't change value while socket is active"

#: ServerSocket's dispatch method of each client event (sockcomp's seHalfClose included).
_CLIENT_DISPATCH = {
    seConnect: "ClientConnect", seRead: "ClientRead", seWrite: "ClientWrite",
    seDisconnect: "ClientDisconnect", seHalfClose: "ClientHalfClose",
}


def _check_port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ESocketError(f"Invalid port number {value!r}: must be 0..65535")
    return int(value)


def _check_count(value: Any, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ESocketError(f"Invalid {name} {value!r}: must be an int >= {minimum}")
    return int(value)


def _setting(name: str, doc: str, minimum: int = 0, keepalive: bool = False) -> Any:
    """A component property stored on its socket object (client) or listening socket (server,
    where it is the default of every accepted connection)."""

    def target(self: "_SocketComponent") -> Any:
        sock = self._framing_target()
        return sock.keepalive if keepalive else sock

    def get(self: "_SocketComponent") -> Any:
        return getattr(target(self), name)

    def set_(self: "_SocketComponent", value: Any) -> None:
        if isinstance(getattr(target(self), name), bool):
            value = bool(value)
        else:
            value = _check_count(value, doc.split(":")[0], minimum)
        setattr(target(self), name, value)
        self._settings_changed()

    return property(get, set_, doc=doc)


def _check_text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ESocketError(f"Invalid {name} {value!r}: must be a string")
    return value


class _SocketComponent(QObject):
    """What ClientSocket and ServerSocket share (Delphi's TAbstractSocket/TCustomSocket)."""

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self._address = ""
        self._port = 0
        self._service = ""
        self._stored_active = False
        self._active = False  # set by the events, before the handlers run (as the VCL)
        self._loading = True
        self._idle = IdleWatch(self, self._watched_sockets)
        try:
            current_pump().call_soon(self._end_loading)
        except RuntimeError:  # no QCoreApplication yet: nothing to defer to
            self._loading = False

    def _end_loading(self) -> None:
        try:
            self.Loaded()
        except RuntimeError:
            pass  # the C++ side was deleted before the loop turned

    def Loaded(self) -> None:
        """End the loading phase: if ``Active`` was set meanwhile, open now (not in Designer)."""
        if not self._loading:
            return
        self._loading = False
        if self._stored_active and not in_designer():
            self.Open()

    def _is_active(self) -> bool:
        return self._active

    # ------------------------------------------------------------------ dispatch wiring
    #: The component's dispatch methods (README, "Handlers without signals").
    _DISPATCH_METHODS: frozenset[str] = frozenset()

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in self._DISPATCH_METHODS and hasattr(self, "_emit"):
            self._bind_dispatch()  # a dispatch method replaced on this instance

    def _bind_dispatch(self) -> None:
        """Resolve once what each event calls, so an event pays no method lookup."""
        raise NotImplementedError

    def _overrides(self, owner: type, name: str) -> bool:
        """True when a subclass or this instance replaces ``owner``'s dispatch method ``name``."""
        return getattr(getattr(self, name), "__func__", None) is not getattr(owner, name)

    def _dispatch_call(self, owner: type, name: str,
                       emit: Callable[..., None]) -> Callable[..., None]:
        """What an event calls, with its signal's arguments: the signal's ``emit`` itself (what
        the default method does, one call shorter), or the override of dispatch method
        ``name``, which takes them without Sender."""
        if not self._overrides(owner, name):
            return emit
        method = getattr(self, name)
        return lambda Sender, *args: method(*args)

    def _watched_sockets(self) -> list[CustomWinSocket]:
        raise NotImplementedError

    def _change(self, old: Any, new: Any) -> bool:
        """True when ``new`` differs from ``old``; raises if it may not change now."""
        same = old.lower() == new.lower() if isinstance(old, str) else old == new
        if same:
            return False
        if self._is_active():
            raise ESocketError(_ACTIVE_ERROR)
        return True

    def Open(self) -> None:
        """Open the socket (``Active := True``)."""
        raise NotImplementedError

    def Close(self) -> None:
        """Close the socket (``Active := False``)."""
        raise NotImplementedError

    @property
    def Active(self) -> bool:
        """True while connected (client) or listening (server). Setting it opens or closes."""
        if in_designer():
            return self._stored_active
        return self._active or (self._loading and self._stored_active)

    @Active.setter
    def Active(self, value: bool) -> None:
        value = bool(value)
        if self._loading or in_designer():
            self._stored_active = value
            return
        if value:
            self.Open()
        else:
            self.Close()

    @property
    def Address(self) -> str:
        """Numeric IPv4 or IPv6 address (client: of the server; server: to bind, '' = all)."""
        return self._address

    @Address.setter
    def Address(self, value: str) -> None:
        value = _check_text(value, "Address")
        if self._change(self._address, value):
            self._address = value

    @property
    def Port(self) -> int:
        """TCP port, 0..65535 (ignored when Service is set)."""
        return self._port

    @Port.setter
    def Port(self, value: int) -> None:
        value = _check_port(value)
        if self._change(self._port, value):
            self._port = value

    def _framing_target(self) -> CustomWinSocket:
        raise NotImplementedError

    def _settings_changed(self) -> None:
        """A per-connection setting changed (the idle watch may need rescheduling)."""
        self._idle.arm()

    KeepAlive = _setting("enabled", "KeepAlive: TCP keepalive probes detect a vanished peer "
                         "(OnError(eeDisconnect, 10060), then OnDisconnect)", keepalive=True)
    KeepAliveTime = _setting("time_ms", "KeepAliveTime: ms without traffic before the first "
                             "probe (default 30000)", 1, keepalive=True)
    KeepAliveInterval = _setting("interval_ms", "KeepAliveInterval: ms between probes "
                                 "(default 5000)", 1, keepalive=True)
    KeepAliveCount = _setting("count", "KeepAliveCount: unanswered probes before the peer is "
                              "declared gone (default 4)", 1, keepalive=True)
    IdleTimeout = _setting("IdleTimeout", "IdleTimeout: ms without any traffic after which the "
                           "connection is closed with OnError(eeGeneral, 10060); 0 = never")
    SendQueueLimit = _setting("SendQueueLimit", "SendQueueLimit: most bytes queued per "
                              "connection; beyond it SendBuf accepts only what fits and returns "
                              "that count (-1 when nothing fits); 0 = no limit")
    SendQueueLowWater = _setting("SendQueueLowWater", "SendQueueLowWater: OnWrite fires when "
                                 "the send queue has drained to this many bytes (default 0)")

    @property
    def Framing(self) -> FramingMode:
        """``fmNone`` (raw: OnRead/ReceiveText), ``fmLine`` or ``fmPacket``: one event per
        message (OnLineReceived / OnPacketReceived; server: OnClient…). Beyond the VCL."""
        return self._framing_target().Framing

    @Framing.setter
    def Framing(self, value: Union[FramingMode, int]) -> None:
        self._framing_target().Framing = value

    @property
    def LineEnd(self) -> str:
        """Line terminator for ``fmLine`` and ``SendLine`` (default ``'\\n'``)."""
        return self._framing_target().LineEnd

    @LineEnd.setter
    def LineEnd(self, value: str) -> None:
        self._framing_target().LineEnd = value

    @property
    def MaxFrameSize(self) -> int:
        """Longest line/packet accepted (default 1 MiB); longer is OnError(eeReceive, 10040)."""
        return self._framing_target().MaxFrameSize

    @MaxFrameSize.setter
    def MaxFrameSize(self, value: int) -> None:
        self._framing_target().MaxFrameSize = value

    @property
    def FrameOverflow(self) -> FrameOverflow:
        """``foClose`` (default) closes after an oversized message; ``foDiscard`` skips it."""
        return self._framing_target().FrameOverflow

    @FrameOverflow.setter
    def FrameOverflow(self, value: Union[FrameOverflow, int]) -> None:
        self._framing_target().FrameOverflow = value

    @property
    def Service(self) -> str:
        """Service name ('http', 'echo', …) or number as text; beats Port when set."""
        return self._service

    @Service.setter
    def Service(self, value: str) -> None:
        value = _check_text(value, "Service")
        if self._change(self._service, value):
            self._service = value


class ClientSocket(_SocketComponent):
    """A TCP client component (Delphi's ``TClientSocket``).

    Non-blocking event order: ``OnLookup → OnConnecting → OnConnect → OnWrite → OnRead*`` and
    ``OnDisconnect`` exactly once when the connection ends, however it ends. Errors fire
    ``OnError(Sender, Socket, ErrorEvent, ErrorCode)``; leaving ``ErrorCode.value`` non-zero
    passes an ``ESocketError`` to the application exception hook.
    """

    OnLookup = Signal(object, object)
    OnConnecting = Signal(object, object)
    OnConnect = Signal(object, object)
    OnRead = Signal(object, object)
    OnWrite = Signal(object, object)
    OnDisconnect = Signal(object, object)
    OnHalfClose = Signal(object, object)
    OnLineReceived = Signal(object, object, object)
    OnPacketReceived = Signal(object, object, object)
    OnReconnect = Signal(object, object)
    OnError = Signal(object, object, object, object)

    _DISPATCH_METHODS = frozenset({"Event", "Error", "LineReceived", "PacketReceived"})

    def __init__(self, parent: Optional[QObject] = None) -> None:
        self._socket = ClientWinSocket()
        super().__init__(parent)
        self._host = ""
        self.AutoReconnect = False
        """After a connection ends by anything but Close() (peer gone, refused, error), open
        again after ReconnectInterval ms, doubling up to ReconnectMaxInterval; OnReconnect
        fires before each attempt. Meanwhile sends are kept and go out after the next OnConnect.
        Close() stops it (and drops what was kept)."""
        self.ReconnectInterval = 1000
        self.ReconnectMaxInterval = 30_000
        #: Attempts since the last successful connection.
        self.ReconnectAttempt = 0
        self._reconnect_delay = 0
        self._wanted = False
        self._reconnect_timer = QTimer(self)
        self._reconnect_timer.setSingleShot(True)
        self._reconnect_timer.timeout.connect(self._reconnect)
        self._allow_half_close = False
        self.UseTLS = False
        """Encrypt the connection with TLS; OnConnect fires after the handshake (beyond the VCL)."""
        self.TLSVerifyPeer = True
        """Verify the server's certificate and name (default on; off only for testing)."""
        self.TLSCAFile = ""
        """PEM file of trusted CAs; '' uses the system's trust store."""
        self.TLSServerName = ""
        """Name sent as SNI and checked against the certificate; '' uses Host, else Address."""
        self.TLSContext: Optional[ssl.SSLContext] = None
        """A ready ``ssl.SSLContext``, overriding the other TLS properties."""
        self._socket._event_sink = self._socket_event
        self._socket._error_sink = self._socket_error
        self._socket._frame_sink = self._socket_frame
        self._emit = {
            seLookup: self.OnLookup.emit, seConnecting: self.OnConnecting.emit,
            seConnect: self.OnConnect.emit, seRead: self.OnRead.emit,
            seWrite: self.OnWrite.emit, seDisconnect: self.OnDisconnect.emit,
            seHalfClose: self.OnHalfClose.emit,
        }
        self._bind_dispatch()

    @property
    def Socket(self) -> ClientWinSocket:
        """The socket object: data methods (SendText, ReceiveText, …) and addresses."""
        return self._socket

    @property
    def Host(self) -> str:
        """Host name of the server, looked up off the GUI thread; beats Address when set."""
        return self._host

    @Host.setter
    def Host(self, value: str) -> None:
        value = _check_text(value, "Host")
        if self._change(self._host, value):
            self._host = value

    @property
    def ClientType(self) -> ClientType:
        """``ctNonBlocking`` (events, default) or ``ctBlocking``; fixed while connected."""
        return self._socket.ClientType

    @ClientType.setter
    def ClientType(self, value: Union[ClientType, int]) -> None:
        self._socket.ClientType = value

    @property
    def ConnectTimeout(self) -> int:
        """Milliseconds allowed from Open to OnConnect, lookup included; 0 (default) leaves it
        to the OS. Expiry is ``OnError(eeConnect, 10060)`` then ``OnDisconnect`` (beyond the VCL;
        no extra thread in non-blocking mode)."""
        return int(self._socket.ConnectTimeout)

    @ConnectTimeout.setter
    def ConnectTimeout(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ESocketError(f"Invalid ConnectTimeout {value!r}: must be an int >= 0 (ms)")
        self._socket.ConnectTimeout = value

    @property
    def AllowHalfClose(self) -> bool:
        """When the peer finishes sending, fire OnHalfClose and keep the socket open (beyond the
        VCL); the application calls Close() when its reply is done. Default False: the peer's
        FIN fires OnDisconnect (with the socket still writable inside the handler)."""
        return self._allow_half_close

    @AllowHalfClose.setter
    def AllowHalfClose(self, value: bool) -> None:
        self._allow_half_close = bool(value)
        self._socket.AllowHalfClose = bool(value)

    def Open(self) -> None:
        """Connect (``Active := True``); a no-op when already connected or connecting.

        ctBlocking: returns after OnLookup, OnConnecting and OnConnect, or raises the
        ``ESocketError`` (after OnError and OnDisconnect) when the connection fails.
        """
        if self._socket.State != SocketState.ssClosed:
            return
        self._wanted = True
        self._open()

    def _open(self) -> None:
        sock = self._socket
        sock.hold_while_closed = self.AutoReconnect
        if self.UseTLS:
            sock._tls = self.TLSContext or client_context(self.TLSVerifyPeer, self.TLSCAFile)
            sock._tls_hostname = host_for_sni(self.TLSServerName, self._host, self._address)
        else:
            sock._tls = None
        sock.Open(self._host, self._address, self._service, self._port)

    def Close(self) -> None:
        """Disconnect (``Active := False``); also abandons a lookup or connect in progress
        and stops AutoReconnect."""
        self._stored_active = False
        self._wanted = False
        self._reconnect_timer.stop()
        self._socket.hold_while_closed = False
        self._socket.DiscardOutbox()
        self._socket.Close()

    @property
    def Reconnecting(self) -> bool:
        """True while AutoReconnect waits for its next attempt (read-only)."""
        return self._reconnect_timer.isActive()

    def _reconnect(self) -> None:
        if not (self._wanted and self.AutoReconnect) or self._socket.State != SocketState.ssClosed:
            return
        self.ReconnectAttempt += 1
        self.OnReconnect.emit(self, self._socket)
        if self._wanted and self._socket.State == SocketState.ssClosed:
            self._open()

    def _schedule_reconnect(self) -> None:
        first = max(int(self.ReconnectInterval), 1)
        cap = max(int(self.ReconnectMaxInterval), first)
        self._reconnect_delay = first if not self._reconnect_delay else \
            min(self._reconnect_delay * 2, cap)
        self._reconnect_timer.start(self._reconnect_delay)

    def _watched_sockets(self) -> list[CustomWinSocket]:
        return [self._socket]

    def _socket_event(self, socket: CustomWinSocket, event: int) -> None:
        if event == seConnect:
            self._active = True
            self._reconnect_delay = 0
            self.ReconnectAttempt = 0
            self._idle.arm()
        elif event == seDisconnect:
            self._active = False
        try:
            on_event = self._on_event
            if on_event is None:
                self._emit[event](self, socket)
            else:
                on_event(socket, event)
        except BaseException as exc:  # an overriding handler's error must not break the socket
            HandleException(exc)
        if event == seDisconnect and self._wanted and self.AutoReconnect:
            self._schedule_reconnect()

    def _socket_error(self, socket: CustomWinSocket, event: ErrorEvent, code: Var[int]) -> None:
        try:
            self._on_error(self, socket, event, code)
        except BaseException as exc:
            HandleException(exc)

    def _socket_frame(self, socket: CustomWinSocket, message: Any) -> None:
        try:
            (self._on_line if isinstance(message, str) else self._on_packet)(self, socket, message)
        except BaseException as exc:
            HandleException(exc)

    def _bind_dispatch(self) -> None:
        owner = ClientSocket
        self._on_event: Optional[Callable[..., None]] = (
            self.Event if self._overrides(owner, "Event") else None)
        self._on_error = self._dispatch_call(owner, "Error", self.OnError.emit)
        self._on_line = self._dispatch_call(owner, "LineReceived", self.OnLineReceived.emit)
        self._on_packet = self._dispatch_call(owner, "PacketReceived", self.OnPacketReceived.emit)

    # ------------------------------------------------------------------ dispatch methods
    def Event(self, Socket: ClientWinSocket, SocketEvent: int) -> None:
        """Fire the signal of ``SocketEvent`` (OnLookup … OnDisconnect, OnHalfClose), as
        ``TCustomSocket.Event`` does in the VCL.

        Override it in a subclass to handle events as plain method calls, without a signal's
        cost (see README, "Handlers without signals"); call ``super().Event(Socket,
        SocketEvent)`` for the events that should still reach the signals.
        """
        self._emit[SocketEvent](self, Socket)

    def Error(self, Socket: ClientWinSocket, ErrorEvent: ErrorEvent, ErrorCode: Var[int]) -> None:
        """Fire ``OnError``, as ``TCustomSocket.Error``; an override may set ``ErrorCode.value``."""
        self.OnError.emit(self, Socket, ErrorEvent, ErrorCode)

    def LineReceived(self, Socket: ClientWinSocket, Line: str) -> None:
        """Fire ``OnLineReceived`` (fmLine); override to take lines without a signal."""
        self.OnLineReceived.emit(self, Socket, Line)

    def PacketReceived(self, Socket: ClientWinSocket, Packet: bytes) -> None:
        """Fire ``OnPacketReceived`` (fmPacket); override to take packets without a signal."""
        self.OnPacketReceived.emit(self, Socket, Packet)

    def _framing_target(self) -> CustomWinSocket:
        return self._socket


class ServerSocket(_SocketComponent):
    """A TCP server component (Delphi's ``TServerSocket``).

    ``OnListen`` when listening starts; for each client ``OnGetSocket → OnAccept →
    OnClientConnect → OnClientWrite → OnClientRead*`` and ``OnClientDisconnect`` exactly once.
    Client events have ``ServerSocket.Socket`` (the ServerWinSocket) as Sender, as in the VCL.
    """

    OnListen = Signal(object, object)
    OnAccept = Signal(object, object)
    OnGetSocket = Signal(object, object, object)
    OnGetThread = Signal(object, object, object)
    OnThreadStart = Signal(object, object)
    OnThreadEnd = Signal(object, object)
    OnClientConnect = Signal(object, object)
    OnClientRead = Signal(object, object)
    OnClientWrite = Signal(object, object)
    OnClientDisconnect = Signal(object, object)
    OnClientHalfClose = Signal(object, object)
    OnClientLineReceived = Signal(object, object, object)
    OnClientPacketReceived = Signal(object, object, object)
    OnClientError = Signal(object, object, object, object)

    _connects = 0  # connectNotify calls so far: a refresh that raced a connect is dropped
    _DISPATCH_METHODS = frozenset({*_CLIENT_DISPATCH.values(), "ClientErrorEvent",
                                   "ClientLineReceived", "ClientPacketReceived"})

    def __init__(self, parent: Optional[QObject] = None) -> None:
        self._socket = ServerWinSocket()
        super().__init__(parent)
        self._socket.ThreadCacheSize = 10
        self.UseTLS = False
        """Serve TLS; OnClientConnect fires after each handshake (beyond the VCL)."""
        self.TLSCertFile = ""
        """PEM certificate chain the server presents."""
        self.TLSKeyFile = ""
        """PEM private key; '' when it is inside TLSCertFile."""
        self.TLSContext: Optional[ssl.SSLContext] = None
        """A ready server ``ssl.SSLContext`` (SNI callbacks, client certificates…), overriding
        TLSCertFile/TLSKeyFile."""
        self._socket.AllowHalfClose = False
        self._socket._event_sink = self._listener_event
        self._socket.client_event_sink = self._client_event
        self._socket.client_error_sink = self._client_error
        self._socket.client_frame_sink = self._client_frame
        self._socket.get_socket_hook = self._get_socket
        self._socket.accept_hook = self._accept
        self._socket.get_thread_hook = self._get_thread
        self._socket.thread_event_sink = self._thread_event
        self._socket.unhandled_events_hook = self._refresh_unhandled
        server = self._socket
        self._emit = {
            seConnect: self.OnClientConnect.emit, seRead: self.OnClientRead.emit,
            seWrite: self.OnClientWrite.emit, seDisconnect: self.OnClientDisconnect.emit,
            seHalfClose: self.OnClientHalfClose.emit,
        }
        self._server = server
        self._bind_dispatch()

    @property
    def Socket(self) -> ServerWinSocket:
        """The listening socket object: Connections, ActiveConnections, …"""
        return self._socket

    def _watched_sockets(self) -> list[CustomWinSocket]:
        return list(self._socket.Connections)

    @property
    def MaxConnections(self) -> int:
        """Most clients served at once (0: no limit). A connection beyond it is accepted, sent
        BannerTooBusy (if set) and closed at once, with no event; never exceeded, even under a
        connection storm (accepting runs on one thread)."""
        return self._socket.MaxConnections

    @MaxConnections.setter
    def MaxConnections(self, value: int) -> None:
        self._socket.MaxConnections = _check_count(value, "MaxConnections")

    @property
    def BannerTooBusy(self) -> str:
        """Text sent to a connection refused because of MaxConnections ('' sends nothing)."""
        return self._socket.BannerTooBusy

    @BannerTooBusy.setter
    def BannerTooBusy(self, value: str) -> None:
        self._socket.BannerTooBusy = _check_text(value, "BannerTooBusy")

    @property
    def ServerType(self) -> ServerType:
        """``stNonBlocking`` (events, default) or ``stThreadBlocking``; fixed while listening."""
        return self._socket.ServerType

    @ServerType.setter
    def ServerType(self, value: Union[ServerType, int]) -> None:
        self._socket.ServerType = value

    @property
    def ThreadCacheSize(self) -> int:
        """Idle client threads kept for reuse in stThreadBlocking mode (default 10)."""
        return int(self._socket.ThreadCacheSize)

    @ThreadCacheSize.setter
    def ThreadCacheSize(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ESocketError(f"Invalid ThreadCacheSize {value!r}: must be an int >= 0")
        self._socket.ThreadCacheSize = value

    @property
    def AllowHalfClose(self) -> bool:
        """Per client: when the client finishes sending, fire OnClientHalfClose and keep the
        connection open until the application closes it (beyond the VCL)."""
        return bool(self._socket.AllowHalfClose)

    @AllowHalfClose.setter
    def AllowHalfClose(self, value: bool) -> None:
        self._socket.AllowHalfClose = bool(value)

    def Open(self) -> None:
        """Start listening (``Active := True``); errors such as a port in use raise here."""
        if self._socket.State != SocketState.ssClosed:
            return
        self._socket.tls_context = (
            (self.TLSContext or server_context(self.TLSCertFile, self.TLSKeyFile))
            if self.UseTLS else None)
        self._socket.Listen(self._address, self._service, self._port)

    def Close(self) -> None:
        """Stop listening and close every client connection (``Active := False``)."""
        self._stored_active = False
        self._socket.Close()

    def _listener_event(self, socket: CustomWinSocket, event: int) -> None:
        if event == seListen:
            self._active = True
            self.OnListen.emit(self, socket)
        elif event == seDisconnect:
            self._active = False

    def _get_socket(self, handle: int) -> Optional[ServerClientWinSocket]:
        cell: Var[Optional[ServerClientWinSocket]] = Var(None)
        self.OnGetSocket.emit(self._server, handle, cell)
        value = cell.value
        if value is not None and not isinstance(value, ServerClientWinSocket):
            raise TypeError("OnGetSocket must supply a ServerClientWinSocket (or leave None)")
        return value

    def _accept(self, client: ServerClientWinSocket) -> None:
        self.OnAccept.emit(self, client)

    def _get_thread(self, client: ServerClientWinSocket) -> Any:
        cell: Var[Any] = Var(None)
        self.OnGetThread.emit(self._server, client, cell)
        return cell.value

    def _thread_event(self, thread: Any, started: bool) -> None:
        (self.OnThreadStart if started else self.OnThreadEnd).emit(self._server, thread)

    def _refresh_unhandled(self) -> None:
        """Tell the server which worker events have no receivers (this thread only: asks Qt).

        Qt is never asked from a worker (a worker holding the GIL while Qt waits for it can
        deadlock), nor from ``connectNotify``/``disconnectNotify``, which Qt may call with an
        internal lock held. A disconnect is therefore noticed at the next client's refresh;
        until then the event is synchronized and emitted to nobody, which is merely slower.
        """
        connects = self._connects

        def unhandled(signal: Any) -> bool:
            return not self.isSignalConnected(QMetaMethod.fromSignal(signal))

        def overridden(event: int) -> bool:  # a subclass's (or instance's) method handles it
            return self._overrides(ServerSocket, _CLIENT_DISPATCH[event])

        client = frozenset(event for event, signal in (
            (seConnect, self.OnClientConnect), (seWrite, self.OnClientWrite),
            (seDisconnect, self.OnClientDisconnect))
            if not overridden(event) and unhandled(signal))
        thread = frozenset(started for started, signal in (
            (True, self.OnThreadStart), (False, self.OnThreadEnd)) if unhandled(signal))
        if connects == self._connects:
            self._socket.unhandled_client_events = client
            self._socket.unhandled_thread_events = thread

    def connectNotify(self, signal: QMetaMethod) -> None:
        """Qt: a receiver was connected. From now on workers synchronize every event again
        (plain attribute writes: Qt may call this from any thread)."""
        self._connects += 1
        self._socket.unhandled_client_events = frozenset()
        self._socket.unhandled_thread_events = frozenset()

    def _client_event(self, socket: CustomWinSocket, event: int) -> None:
        call = self._dispatch.get(event)
        if call is not None:
            try:
                call(self._server, socket)
            except BaseException as exc:  # an overriding handler's error must not break it
                HandleException(exc)
        if event == seConnect and socket.IdleTimeout:
            self._idle.arm()

    def _client_error(self, socket: CustomWinSocket, event: ErrorEvent, code: Var[int]) -> None:
        try:
            self._on_error(self._server, socket, event, code)
        except BaseException as exc:
            HandleException(exc)

    def _client_frame(self, socket: CustomWinSocket, message: Any) -> None:
        try:
            (self._on_line if isinstance(message, str) else self._on_packet)(
                self._server, socket, message)
        except BaseException as exc:
            HandleException(exc)

    def _bind_dispatch(self) -> None:
        owner = ServerSocket
        self._dispatch = {event: self._dispatch_call(owner, name, self._emit[event])
                          for event, name in _CLIENT_DISPATCH.items()}
        self._on_error = self._dispatch_call(owner, "ClientErrorEvent", self.OnClientError.emit)
        self._on_line = self._dispatch_call(owner, "ClientLineReceived",
                                            self.OnClientLineReceived.emit)
        self._on_packet = self._dispatch_call(owner, "ClientPacketReceived",
                                              self.OnClientPacketReceived.emit)

    # ------------------------------------------------------------------ dispatch methods
    # One per client event, named as TServerWinSocket's dynamic methods. Each fires its
    # signal; a subclass overrides it to handle the event as a plain method call (README,
    # "Handlers without signals").
    def ClientConnect(self, Socket: ServerClientWinSocket) -> None:
        """Fire ``OnClientConnect``; override to handle it without a signal."""
        self._emit[seConnect](self._server, Socket)

    def ClientRead(self, Socket: ServerClientWinSocket) -> None:
        """Fire ``OnClientRead``; override to handle it without a signal (the fast path)."""
        self._emit[seRead](self._server, Socket)

    def ClientWrite(self, Socket: ServerClientWinSocket) -> None:
        """Fire ``OnClientWrite``; override to handle it without a signal."""
        self._emit[seWrite](self._server, Socket)

    def ClientDisconnect(self, Socket: ServerClientWinSocket) -> None:
        """Fire ``OnClientDisconnect``; override to handle it without a signal."""
        self._emit[seDisconnect](self._server, Socket)

    def ClientHalfClose(self, Socket: ServerClientWinSocket) -> None:
        """Fire ``OnClientHalfClose``; override to handle it without a signal."""
        self._emit[seHalfClose](self._server, Socket)

    def ClientErrorEvent(self, Socket: ServerClientWinSocket, ErrorEvent: ErrorEvent,
                         ErrorCode: Var[int]) -> None:
        """Fire ``OnClientError``; an override may set ``ErrorCode.value`` as a handler does."""
        self.OnClientError.emit(self._server, Socket, ErrorEvent, ErrorCode)

    def ClientLineReceived(self, Socket: ServerClientWinSocket, Line: str) -> None:
        """Fire ``OnClientLineReceived`` (fmLine); override to take lines without a signal."""
        self.OnClientLineReceived.emit(self._server, Socket, Line)

    def ClientPacketReceived(self, Socket: ServerClientWinSocket, Packet: bytes) -> None:
        """Fire ``OnClientPacketReceived`` (fmPacket); override to take packets without a
        signal."""
        self.OnClientPacketReceived.emit(self._server, Socket, Packet)

    def _framing_target(self) -> CustomWinSocket:
        return self._socket
