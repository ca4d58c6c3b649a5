"""``ServerSocket``: the TCP server component (Delphi's ``TServerSocket``)."""
from __future__ import annotations

import ssl
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from PySide6.QtCore import QMetaMethod, QObject

from . import enums as _enums
from ._component import SocketComponent, event, qt_property, signal_connected, weak_method
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


#: The events a server skips while nobody receives them. An emit to nobody still costs a few
#: microseconds (a tenth of a short connection's cost in the component's thread); a worker's
#: event would cost a Synchronize too, and in thread mode the accept's emit lets the workers
#: take the GIL.
_SKIPPABLE_SIGNALS = ("OnClientConnect", "OnClientWrite", "OnClientDisconnect",
                      "OnThreadStart", "OnThreadEnd", "OnGetSocket", "OnAccept")


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

    OnListen = event("Sender", "Socket")
    OnAccept = event("Sender", "Socket")
    OnGetSocket = event("Sender", "Socket", "ClientSocket")
    OnGetThread = event("Sender", "ClientSocket", "SocketThread")
    OnThreadStart = event("Sender", "Thread")
    OnThreadEnd = event("Sender", "Thread")
    OnClientConnect = event("Sender", "Socket")
    OnClientRead = event("Sender", "Socket")
    OnClientWrite = event("Sender", "Socket")
    OnClientDisconnect = event("Sender", "Socket")
    OnClientHalfClose = event("Sender", "Socket")
    OnClientLineReceived = event("Sender", "Socket", "Line")
    OnClientPacketReceived = event("Sender", "Socket", "Packet")
    OnClientError = event("Sender", "Socket", "ErrorEvent", "ErrorCode")
    OnError = event("Sender", "Socket", "ErrorEvent", "ErrorCode")

    _connects = 0  # connect/disconnectNotify calls so far: a refresh that raced one is dropped
    _unconnected: Optional[tuple[int, frozenset[str]]] = None  # (_connects, signals) Qt gave
    _trimmed_for: Optional[tuple[int, int]] = None  # (_connects, _tables) _dispatch is for
    _tables = 0  # dispatch tables _bind_dispatch made so far
    _dispatch_all: dict[int, Callable[..., None]] = {}  # set by _bind_dispatch
    _dispatch: dict[int, Callable[..., None]] = {}  # _dispatch_all less the skipped events
    _DISPATCH_METHODS = frozenset({*_CLIENT_DISPATCH.values(), "ClientErrorEvent",
                                   "ClientLineReceived", "ClientPacketReceived"})

    #: The class of :attr:`Socket`: a subclass may name a ServerWinSocket subclass whose
    #: hooks (GetClientSocket, GetServerThread, DoCreateThread) it overrides.
    SocketClass: type[ServerWinSocket] = ServerWinSocket

    def __init__(self, parent: Optional[QObject] = None) -> None:
        # taken by connectNotify (any thread) and by the writes of the dispatch tables, never
        # around a call into Qt (Qt may call connectNotify with its own lock held). Reentrant:
        # a table dropped under it can end an object whose connections PySide then removes,
        # and disconnectNotify comes back here in the same thread.
        self._unhandled_lock = threading.RLock()
        self._socket = self.SocketClass()
        super().__init__(self._socket, parent)
        server = self._server = self._socket
        server.set_component(self)
        server.ThreadCacheSize = 10
        self._tls_cert_file = ""
        self._tls_key_file = ""
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
        self._bind_dispatch()

    @property
    def Socket(self) -> ServerWinSocket:
        """The listening socket object: Connections, ActiveConnections, …"""
        return self._socket

    def _watched_sockets(self) -> list[CustomWinSocket]:
        return list(self._socket.Connections)

    def _settings_target(self) -> CustomWinSocket:
        return self._socket

    # ------------------------------------------------------------------ Qt properties
    def _get_max_connections(self) -> int:
        return self._socket.MaxConnections

    def _set_max_connections(self, value: int) -> None:
        self._socket.MaxConnections = check_count(value, "MaxConnections")

    def _get_banner(self) -> str:
        return self._socket.BannerTooBusy

    def _set_banner(self, value: str) -> None:
        self._socket.BannerTooBusy = check_text(value, "BannerTooBusy")

    def _get_server_type(self) -> ServerType:
        return self._socket.ServerType

    def _set_server_type(self, value: Union[ServerType, int]) -> None:
        self._socket.ServerType = value

    def _get_thread_cache_size(self) -> int:
        return int(self._socket.ThreadCacheSize)

    def _set_thread_cache_size(self, value: int) -> None:
        self._socket.ThreadCacheSize = check_count(value, "ThreadCacheSize")

    def _get_tls_cert_file(self) -> str:
        return self._tls_cert_file

    def _set_tls_cert_file(self, value: str) -> None:
        self._tls_cert_file = check_text(value, "TLSCertFile")

    def _get_tls_key_file(self) -> str:
        return self._tls_key_file

    def _set_tls_key_file(self, value: str) -> None:
        self._tls_key_file = check_text(value, "TLSKeyFile")

    locals().update(qt_property(
        "MaxConnections", int, _get_max_connections, _set_max_connections,
        "Most clients served at once (0: no limit). A connection beyond it is accepted, sent "
        "BannerTooBusy (if set) and closed at once, with no event; never exceeded, even under "
        "a connection storm. Clients still in their TLS handshake count."))
    locals().update(qt_property(
        "BannerTooBusy", str, _get_banner, _set_banner,
        "Text sent to a connection refused because of MaxConnections ('' sends nothing)."))
    locals().update(qt_property(
        "ServerType", ServerType, _get_server_type, _set_server_type,
        "stNonBlocking (events, default) or stThreadBlocking (a thread per client); fixed "
        "while listening."))
    locals().update(qt_property(
        "ThreadCacheSize", int, _get_thread_cache_size, _set_thread_cache_size,
        "Idle client threads kept for reuse in stThreadBlocking mode (default 10)."))
    locals().update(qt_property("TLSCertFile", str, _get_tls_cert_file, _set_tls_cert_file,
                                "PEM certificate chain the server presents."))
    locals().update(qt_property("TLSKeyFile", str, _get_tls_key_file, _set_tls_key_file,
                                "PEM private key; '' when it is inside TLSCertFile."))

    if TYPE_CHECKING:  # the Qt properties made here, as type checkers see them
        MaxConnections: int
        BannerTooBusy: str
        ServerType: _enums.ServerType  # type: ignore[assignment]  # the enum is named so too
        ThreadCacheSize: int
        TLSCertFile: str
        TLSKeyFile: str

    def Open(self) -> None:
        """Start listening (``Active := True``, through :meth:`DoActivate`); errors such as a
        port in use raise here (or go to :func:`SetErrorProc`'s procedure)."""
        self.DoActivate(True)

    def Close(self) -> None:
        """Stop listening and close every client connection (``Active := False``, through
        :meth:`DoActivate`)."""
        self.DoActivate(False)

    def _activate(self) -> None:
        if self._socket.Phase is not Phase.CLOSED:
            return
        self._socket.tls_context = (
            (self.TLSContext or server_context(self.TLSCertFile, self.TLSKeyFile))
            if self.UseTLS else None)
        self._socket.Listen("", self._address, self._service, self._port)

    def _deactivate(self) -> None:
        self._stored_active = False
        self._socket.Close()

    # ------------------------------------------------------------------ listener events
    def _listener_event(self, socket: CustomWinSocket, event: int) -> None:
        if event == seListen:
            self._set_active(True)
            self.OnListen.emit(self, socket)
        elif event == seDisconnect:
            self._set_active(False)

    def _listener_error(self, socket: CustomWinSocket, event: ErrorEvent,
                        code: Var[int]) -> None:
        self.OnError.emit(self, socket, event, code)

    def _unreceived(self, name: str) -> bool:
        """True when Qt said that event ``name`` has no receivers and none came or went since
        (known in stThreadBlocking mode, see :meth:`_refresh_unhandled`)."""
        cached = self._unconnected
        return cached is not None and cached[0] == self._connects and name in cached[1]

    def _get_socket(self, handle: int) -> Optional[ServerClientWinSocket]:
        if self._unreceived("OnGetSocket"):
            return None
        cell: Var[Optional[ServerClientWinSocket]] = Var(None)
        self.OnGetSocket.emit(self._server, handle, cell)
        value = cell.value
        if value is not None and not isinstance(value, ServerClientWinSocket):
            raise TypeError("OnGetSocket must supply a ServerClientWinSocket (or leave None)")
        return value

    def _accept(self, client: ServerClientWinSocket) -> None:
        if not self._unreceived("OnAccept"):
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
        """Skip the client events nobody receives (this thread only: asks Qt), before a batch
        of accepts: they leave the dispatch table, and workers stop synchronizing them.

        Qt is never asked from a worker (a worker holding the GIL while Qt waits for it can
        deadlock), nor from ``connectNotify``/``disconnectNotify``, which Qt may call with an
        internal lock held. A disconnect is therefore noticed at the next accept; until then
        the event is emitted to nobody, which is merely slower. Qt's answer is kept until a
        receiver comes or goes (asking costs ~2 µs an event), so a batch of accepts normally
        pays one comparison here.
        """
        connects, tables = self._connects, self._tables
        if self._trimmed_for == (connects, tables):
            return
        table = self._dispatch_all
        cached = self._unconnected
        if cached is not None and cached[0] == connects:
            unconnected = cached[1]
        else:
            unconnected = frozenset(
                name for name in _SKIPPABLE_SIGNALS
                if not signal_connected(self, name))
            self._unconnected = (connects, unconnected)

        emit = self._emit  # a table entry that is not the emit is an overriding method
        client = frozenset(event for event, name in (
            (seConnect, "OnClientConnect"), (seWrite, "OnClientWrite"),
            (seDisconnect, "OnClientDisconnect"))
            if name in unconnected and table[event] is emit[event])
        thread = frozenset(started for started, name in (
            (True, "OnThreadStart"), (False, "OnThreadEnd")) if name in unconnected)
        dispatch = {event: call for event, call in table.items() if event not in client}
        replaced = self._dispatch  # dropped after the lock (see __init__)
        with self._unhandled_lock:
            if connects == self._connects and tables == self._tables:
                self._socket.unhandled_client_events = client
                self._socket.unhandled_thread_events = thread
                self._dispatch = dispatch
                self._trimmed_for = (connects, tables)
        del replaced

    def connectNotify(self, signal: QMetaMethod) -> None:
        """Qt: a receiver was connected. From now on every client event is dispatched again
        and workers synchronize them (plain attribute writes: Qt may call this from any
        thread)."""
        replaced = self._dispatch  # dropped after the lock (see __init__)
        with self._unhandled_lock:
            self._connects += 1
            self._socket.unhandled_client_events = frozenset()
            self._socket.unhandled_thread_events = frozenset()
            self._dispatch = self._dispatch_all
        del replaced
        super().connectNotify(signal)

    def disconnectNotify(self, signal: QMetaMethod) -> None:
        """Qt: a receiver was disconnected: the next accept asks Qt again (a plain attribute
        write: Qt may call this from any thread, with its lock held)."""
        with self._unhandled_lock:
            self._connects += 1
        super().disconnectNotify(signal)

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
        fire = self._fire
        self._emit = {event: fire("On" + name) for event, name in _CLIENT_DISPATCH.items()}
        # every event's call; _dispatch is this table, less the events nobody receives once the
        # next accept's refresh has trimmed it (_refresh_unhandled)
        table = {event: self._dispatch_call(owner, name, self._emit[event])
                 for event, name in _CLIENT_DISPATCH.items()}
        replaced = (self._dispatch_all, self._dispatch)  # dropped after the lock
        with self._unhandled_lock:
            self._dispatch_all = self._dispatch = table
            self._tables += 1
        del replaced
        self._on_error = self._dispatch_call(owner, "ClientErrorEvent", fire("OnClientError"))
        self._on_line = self._dispatch_call(owner, "ClientLineReceived",
                                            fire("OnClientLineReceived"))
        self._on_packet = self._dispatch_call(owner, "ClientPacketReceived",
                                              fire("OnClientPacketReceived"))

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
        self._fire("OnClientError")(self._server, Socket, ErrorEvent, ErrorCode)

    def ClientLineReceived(self, Socket: ServerClientWinSocket, Line: str) -> None:
        """Fire ``OnClientLineReceived`` (fmLine); override to take lines without a signal."""
        self._fire("OnClientLineReceived")(self._server, Socket, Line)

    def ClientPacketReceived(self, Socket: ServerClientWinSocket, Packet: bytes) -> None:
        """Fire ``OnClientPacketReceived`` (fmPacket); override to take packets without a
        signal."""
        self._fire("OnClientPacketReceived")(self._server, Socket, Packet)
