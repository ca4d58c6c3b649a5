"""``ServerSocket``: the TCP server component (Delphi's ``TServerSocket``)."""
from __future__ import annotations

import ssl
import weakref
from typing import Any, Callable, Optional, Union

from PySide6.QtCore import QMetaMethod, QObject, Signal

from ._component import SocketComponent, connection_setting, weak_method
from ._lifecycle import Phase
from ._settings import check_count, check_text
from ._tls import server_context
from .enums import ErrorEvent, ServerType, seConnect, seDisconnect, seListen, seRead, seWrite
from .errors import HandleException
from .serverwinsock import ServerClientWinSocket, ServerWinSocket
from .var import Var
from .winsock import CustomWinSocket, seHalfClose

__all__ = ["ServerSocket"]

#: ServerSocket's dispatch method of each client event (sockcomp's seHalfClose included).
_CLIENT_DISPATCH = {
    seConnect: "ClientConnect", seRead: "ClientRead", seWrite: "ClientWrite",
    seDisconnect: "ClientDisconnect", seHalfClose: "ClientHalfClose",
}


def _client_event_sink(ref: "weakref.ref[ServerSocket]") -> Callable[[CustomWinSocket, int], None]:
    """The server's per-client event path (the hot one): its dispatch, without keeping the
    component alive."""
    def _client_event(socket: CustomWinSocket, event: int) -> None:
        comp = ref()
        if comp is None:
            return
        call = comp._dispatch.get(event)
        if call is not None:
            try:
                call(comp._server, socket)
            except BaseException as exc:  # an overriding handler's error must not break it
                HandleException(exc)
        if event == seConnect and socket.IdleTimeout:
            comp._idle.arm()
    return _client_event


class ServerSocket(SocketComponent):
    """A TCP server component (Delphi's ``TServerSocket``).

    ``OnListen`` when listening starts; for each client ``OnGetSocket → OnAccept →
    OnClientConnect → OnClientWrite → OnClientRead*`` and ``OnClientDisconnect`` exactly once.
    Client events have ``ServerSocket.Socket`` (the ServerWinSocket) as Sender, as in the VCL.
    The listening socket's own errors (a failed accept: 10024 out of descriptors) are
    ``OnError(Sender, Socket, eeAccept, ErrorCode)`` with the listener as Socket, as the VCL's
    TServerSocket.OnError; accepting pauses briefly and goes on.
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
    OnError = Signal(object, object, object, object)

    _connects = 0  # connectNotify calls so far: a refresh that raced a connect is dropped
    _DISPATCH_METHODS = frozenset({*_CLIENT_DISPATCH.values(), "ClientErrorEvent",
                                   "ClientLineReceived", "ClientPacketReceived"})

    def __init__(self, parent: Optional[QObject] = None) -> None:
        self._socket = ServerWinSocket()
        super().__init__(self._socket, parent)
        server = self._server = self._socket
        server.ThreadCacheSize = 10
        self.UseTLS = False
        """Serve TLS; OnClientConnect fires after each handshake (beyond the VCL)."""
        self.TLSCertFile = ""
        """PEM certificate chain the server presents."""
        self.TLSKeyFile = ""
        """PEM private key; '' when it is inside TLSCertFile."""
        self.TLSContext: Optional[ssl.SSLContext] = None
        """A ready server ``ssl.SSLContext`` (SNI callbacks, client certificates…), overriding
        TLSCertFile/TLSKeyFile."""
        server._event_sink = weak_method(self, "_listener_event")
        server._error_sink = weak_method(self, "_listener_error")
        server.client_event_sink = _client_event_sink(weakref.ref(self))
        server.client_error_sink = weak_method(self, "_client_error")
        server.client_frame_sink = weak_method(self, "_client_frame")
        server.get_socket_hook = weak_method(self, "_get_socket")
        server.accept_hook = weak_method(self, "_accept")
        server.get_thread_hook = weak_method(self, "_get_thread")
        server.thread_event_sink = weak_method(self, "_thread_event")
        server.unhandled_events_hook = weak_method(self, "_refresh_unhandled")
        self._emit = {
            seConnect: self.OnClientConnect.emit, seRead: self.OnClientRead.emit,
            seWrite: self.OnClientWrite.emit, seDisconnect: self.OnClientDisconnect.emit,
            seHalfClose: self.OnClientHalfClose.emit,
        }
        self._bind_dispatch()

    @property
    def Socket(self) -> ServerWinSocket:
        """The listening socket object: Connections, ActiveConnections, …"""
        return self._socket

    def _watched_sockets(self) -> list[CustomWinSocket]:
        return list(self._socket.Connections)

    def _settings_target(self) -> CustomWinSocket:
        return self._socket

    @property
    def MaxConnections(self) -> int:
        """Most clients served at once (0: no limit). A connection beyond it is accepted, sent
        BannerTooBusy (if set) and closed at once, with no event; never exceeded, even under a
        connection storm (accepting runs on one thread). Handshaking TLS clients count."""
        return self._socket.MaxConnections

    @MaxConnections.setter
    def MaxConnections(self, value: int) -> None:
        self._socket.MaxConnections = check_count(value, "MaxConnections")

    @property
    def BannerTooBusy(self) -> str:
        """Text sent to a connection refused because of MaxConnections ('' sends nothing)."""
        return self._socket.BannerTooBusy

    @BannerTooBusy.setter
    def BannerTooBusy(self, value: str) -> None:
        self._socket.BannerTooBusy = check_text(value, "BannerTooBusy")

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
        self._socket.ThreadCacheSize = check_count(value, "ThreadCacheSize")

    AllowHalfClose = connection_setting(
        "AllowHalfClose", "Per client: when the client finishes sending, fire "
        "OnClientHalfClose and keep the connection open until the application closes it "
        "(beyond the VCL).")
    KeepAlive = connection_setting("KeepAlive", CustomWinSocket.KeepAlive.__doc__ or "")
    KeepAliveTime = connection_setting("KeepAliveTime", CustomWinSocket.KeepAliveTime.__doc__
                                       or "")
    KeepAliveInterval = connection_setting("KeepAliveInterval",
                                           CustomWinSocket.KeepAliveInterval.__doc__ or "")
    KeepAliveCount = connection_setting("KeepAliveCount",
                                        CustomWinSocket.KeepAliveCount.__doc__ or "")
    IdleTimeout = connection_setting("IdleTimeout", CustomWinSocket.IdleTimeout.__doc__ or "")
    HandshakeTimeout = connection_setting("HandshakeTimeout",
                                          CustomWinSocket.HandshakeTimeout.__doc__ or "")
    SendQueueLimit = connection_setting("SendQueueLimit",
                                        CustomWinSocket.SendQueueLimit.__doc__ or "")
    SendQueueLowWater = connection_setting("SendQueueLowWater",
                                           CustomWinSocket.SendQueueLowWater.__doc__ or "")
    Framing = connection_setting("Framing", "``fmNone`` (raw: OnClientRead), ``fmLine`` or "
                                 "``fmPacket``: one event per message (OnClientLineReceived / "
                                 "OnClientPacketReceived). Beyond the VCL.")
    LineEnd = connection_setting("LineEnd", "Line terminator for ``fmLine`` and ``SendLine``.")
    MaxFrameSize = connection_setting("MaxFrameSize", "Longest line/packet accepted (default "
                                      "1 MiB); longer is OnClientError(eeReceive, 10040).")
    FrameOverflow = connection_setting("FrameOverflow", "``foClose`` (default) closes after an "
                                       "oversized message; ``foDiscard`` skips it.")
    Encoding = connection_setting("Encoding", "Text encoding (default 'utf-8').")

    @property
    def KeepAliveDetectionTime(self) -> int:
        """Longest time (ms) until keepalive reports a vanished client, from the values
        actually set (read-only)."""
        return self._socket.KeepAliveDetectionTime

    def Open(self) -> None:
        """Start listening (``Active := True``); errors such as a port in use raise here."""
        if self._socket.Phase is not Phase.CLOSED:
            return
        self._socket.tls_context = (
            (self.TLSContext or server_context(self.TLSCertFile, self.TLSKeyFile))
            if self.UseTLS else None)
        self._socket.Listen(self._address, self._service, self._port)

    def Close(self) -> None:
        """Stop listening and close every client connection (``Active := False``)."""
        self._stored_active = False
        self._socket.Close()

    # ------------------------------------------------------------------ listener events
    def _listener_event(self, socket: CustomWinSocket, event: int) -> None:
        if event == seListen:
            self._active = True
            self.OnListen.emit(self, socket)
        elif event == seDisconnect:
            self._active = False

    def _listener_error(self, socket: CustomWinSocket, event: ErrorEvent,
                        code: Var[int]) -> None:
        self.OnError.emit(self, socket, event, code)

    def _get_socket(self, handle: int) -> Optional[ServerClientWinSocket]:
        cell: Var[Optional[ServerClientWinSocket]] = Var(None)
        self.OnGetSocket.emit(self._server, handle, cell)
        value = cell.value
        if value is not None and not isinstance(value, ServerClientWinSocket):
            raise TypeError("OnGetSocket must supply a ServerClientWinSocket (or leave None)")
        return value

    def _accept(self, client: ServerClientWinSocket) -> None:
        self.OnAccept.emit(self, client)
        if client.IdleTimeout or (self.UseTLS and client.HandshakeTimeout):
            self._idle.arm()  # the handshake (and a silent client) is watched too

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
