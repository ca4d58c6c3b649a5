"""QML types for the socket components: ``import Sockcomp 1.0`` after :func:`register_qml_types`.

QML binds and handles only names that begin with a lower-case letter (measured with PySide6
6.11 and 6.12: ``Host: "x"`` is an "Invalid attached object assignment", and no handler name
reaches a signal called ``OnConnect``), and it cannot look into the Python objects the VCL
events carry (``Socket``, ``ErrorCode``). So the QML types add, on top of the components:

* **properties** named as the VCL's with the first letter lowered (``Host`` → ``host``,
  ``UseTLS`` → ``useTLS``; a leading ``TLS`` is lowered whole: ``TLSCAFile`` → ``tlsCAFile``),
  each reading and writing the VCL property and notifying with ``<name>Changed``;
* **events** as signals named after the VCL event without ``On``, so the QML handler carries the
  Delphi name with a lower-case ``o``: ``OnConnect`` → signal ``connect``, handler
  ``onConnect``; ``OnClientRead`` → ``onClientRead``. ``Sender`` is dropped (the handler runs in
  the component's scope); ``socket`` is a :class:`QmlWinSocket` (QML type ``WinSocket``);
  ``error`` a :class:`QmlSocketError` whose ``errorCode`` a handler sets to 0, as Pascal's
  ``ErrorCode := 0``;
* ``socket`` (the component's ``Socket``), ``open()``, ``close()``, and on the server
  ``connections`` and ``activeConnections``.

The QML types *are* the components (:class:`QmlClientSocket` derives from
:class:`~sockcomp.ClientSocket`), so Python code that finds one in the QML tree
(``root.findChild(ClientSocket, "chat")``) uses the whole VCL API, and its ``On*`` signals fire
too (first, then the QML signal). Every event is delivered in the component's thread, the GUI
thread that runs the QML engine, in thread-blocking mode too. See docs/qml.md.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from PySide6.QtCore import Property, QByteArray, QObject, QTimer, Signal, Slot
from PySide6.QtQml import qmlRegisterType, qmlRegisterUncreatableType

from .clientsocket import ClientSocket
from .clientwinsock import ClientWinSocket
from .enums import (
    ErrorEvent,
    ScktComp,
    seConnect,
    seConnecting,
    seDisconnect,
    seLookup,
    seRead,
    seWrite,
)
from .serversocket import ServerSocket
from .serverwinsock import ServerClientWinSocket
from .var import Var
from .winsock import CustomWinSocket, seHalfClose

__all__ = ["register_qml_types", "qml_name", "QML_URI", "QmlClientSocket", "QmlServerSocket",
           "QmlWinSocket", "QmlSocketError", "QML_PROPERTY_NAMES"]

#: The QML module the types are registered in by default.
QML_URI = "Sockcomp"

_ACRONYMS = ("TLS",)


def qml_name(vcl_name: str) -> str:
    """The QML name of a VCL property or method name: the first letter lowered, a leading
    acronym lowered whole (``Host`` → ``host``, ``UseTLS`` → ``useTLS``, ``TLSCAFile`` →
    ``tlsCAFile``). An event's QML signal is ``qml_name`` of the name without ``On``."""
    for acronym in _ACRONYMS:
        if vcl_name.startswith(acronym):
            return acronym.lower() + vcl_name[len(acronym):]
    return vcl_name[:1].lower() + vcl_name[1:]


_PLAIN_TYPES: dict[str, type] = {"bool": bool, "int": int, "double": float, "QString": str}
_QOBJECT_PROPERTIES: int = QObject().metaObject().propertyCount()


def _vcl_properties(component: type) -> tuple[tuple[str, type, bool], ...]:
    """``(name, type, writable)`` of every Qt property ``component`` adds to QObject (its
    enums are ScktComp's). Raises TypeError for a property type QML types cannot mirror."""
    mo = component.staticMetaObject  # type: ignore[attr-defined]
    found = []
    for index in range(_QOBJECT_PROPERTIES, mo.propertyCount()):
        prop = mo.property(index)
        type_name = prop.typeName()
        type_ = _PLAIN_TYPES.get(type_name) or getattr(ScktComp, type_name.split("::")[-1], None)
        if type_ is None:
            raise TypeError(f"sockcomp.qml cannot mirror {component.__name__}.{prop.name()} "
                            f"of type {type_name}")
        found.append((prop.name(), type_, prop.isWritable()))
    return tuple(found)


def _mirror_properties(component: type) -> dict[str, Any]:
    """Class-body entries: for each VCL property of ``component``, a lower-case Qt property
    that reads and writes it, and its change signal (which the instance relays from the VCL
    property's, see :func:`_relay_changes`). Nothing of the component's logic is repeated."""
    entries: dict[str, Any] = {}
    for vcl, type_, writable in _vcl_properties(component):
        name = qml_name(vcl)
        changed = Signal(type_, arguments=[name])

        def fget(self: QObject, _vcl: str = vcl) -> Any:
            return getattr(self, _vcl)

        def fset(self: QObject, value: Any, _vcl: str = vcl) -> None:
            setattr(self, _vcl, value)

        doc = getattr(component, vcl).__doc__ or ""
        entries[name] = Property(type_, fget, fset if writable else None, notify=changed,
                                 doc=f"{vcl}: {doc}" if doc else vcl)
        entries[name + "Changed"] = changed
    return entries


#: VCL name → QML name of every property of the QML types.
QML_PROPERTY_NAMES: dict[str, str] = {
    vcl: qml_name(vcl) for component in (ClientSocket, ServerSocket)
    for vcl, _type, _writable in _vcl_properties(component)}

_CHANGE_SIGNALS: dict[type, tuple[tuple[str, str], ...]] = {
    component: tuple((vcl + "Changed", qml_name(vcl) + "Changed")
                     for vcl, _type, _writable in _vcl_properties(component))
    for component in (ClientSocket, ServerSocket)}


def _relay_changes(obj: QObject, component: type) -> None:
    """Make each VCL ``<Name>Changed`` signal of ``obj`` emit the QML ``<name>Changed`` too
    (signal to signal, in Qt). A PySide Property given an inherited signal as its notify
    crashes the QML engine (measured, 6.11 and 6.12), hence a signal of its own."""
    for vcl_signal, qml_signal in _CHANGE_SIGNALS[component]:
        getattr(obj, vcl_signal).connect(getattr(obj, qml_signal))


def _event(*arguments: str, name: Optional[str] = None) -> Signal:
    """A QML event signal: a QObject (the socket wrapper) then the named extra arguments."""
    types: list[type] = [QObject]
    for argument in arguments[1:]:
        types.append(QByteArray if argument == "packet" else
                     QObject if argument == "error" else str)
    if name is None:
        return Signal(*types, arguments=list(arguments))
    return Signal(*types, arguments=list(arguments), name=name)


# ---------------------------------------------------------------------------------------------
class QmlWinSocket(QObject):
    """A socket object (``CustomWinSocket``) as QML sees it: QML type ``WinSocket``.

    One wrapper per socket object for as long as the component knows it (the client's, for the
    component's life; a server's client, from OnAccept until its ``onClientDisconnect``
    handlers have run, then deleted: a reference kept in QML turns ``null``), so ``===``
    compares connections. Read-only properties, read live and notified by ``stateChanged`` at
    each life-cycle event; methods named as the VCL's with a lower-case first letter. Use it in
    the component's thread only (the GUI thread).
    """

    stateChanged = Signal()

    def __init__(self, socket: CustomWinSocket, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self._socket = socket

    @property
    def Socket(self) -> CustomWinSocket:
        """The socket object wrapped (for Python code)."""
        return self._socket

    def _refresh_later(self) -> None:
        """Notify ``stateChanged`` on the next event-loop turn (after the socket is released),
        unless the wrapper is gone by then."""
        QTimer.singleShot(0, self, self.stateChanged.emit)

    # properties -------------------------------------------------------------------------
    def _connected(self) -> bool:
        return bool(self._socket.Connected)

    def _state(self) -> int:
        return int(self._socket.State)

    def _local_address(self) -> str:
        return self._socket.LocalAddress

    def _local_port(self) -> int:
        return self._socket.LocalPort

    def _remote_address(self) -> str:
        return self._socket.RemoteAddress

    def _remote_port(self) -> int:
        return self._socket.RemotePort

    def _handle(self) -> int:
        return self._socket.SocketHandle

    def _tls_active(self) -> bool:
        return bool(self._socket.TLSActive)

    def _last_error_message(self) -> str:
        return self._socket.LastErrorMessage

    connected = Property(bool, _connected, notify=stateChanged,
                         doc="Connected: true from connect until the end of the disconnect "
                             "handlers.")
    state = Property(int, _state, notify=stateChanged,
                     doc="State: a ScktComp.SocketState value (ssConnected, ...).")
    localAddress = Property(str, _local_address, notify=stateChanged,
                            doc="LocalAddress: local IP address ('' without a connection).")
    localPort = Property(int, _local_port, notify=stateChanged,
                         doc="LocalPort: local port (-1 without a connection); a listener's "
                             "port.")
    remoteAddress = Property(str, _remote_address, notify=stateChanged,
                             doc="RemoteAddress: the peer's IP address ('' when not "
                                 "connected).")
    remotePort = Property(int, _remote_port, notify=stateChanged,
                          doc="RemotePort: the peer's port (0 when not connected).")
    handle = Property(int, _handle, notify=stateChanged,
                      doc="SocketHandle: the OS descriptor, -1 when there is none.")
    tlsActive = Property(bool, _tls_active, notify=stateChanged,
                         doc="TLSActive: true when the connection is encrypted.")
    lastErrorMessage = Property(str, _last_error_message, notify=stateChanged,
                                doc="LastErrorMessage: text of the last error reported.")

    # methods ------------------------------------------------------------------------------
    @Slot(str, result=int)
    def sendText(self, text: str) -> int:
        """SendText: queue ``text`` (encoded with Encoding); returns the bytes accepted (0 when
        not connected). Errors raise a JS Error with the VCL message."""
        return self._socket.SendText(text)

    @Slot(str, result=int)
    def sendLine(self, text: str) -> int:
        """SendLine: ``text`` then LineEnd; returns the bytes accepted."""
        return self._socket.SendLine(text)

    @Slot(QByteArray, result=int)
    def sendBuf(self, data: QByteArray) -> int:
        """SendBuf: queue the bytes of an ArrayBuffer; returns the bytes accepted."""
        return self._socket.SendBuf(bytes(data.data()))

    @Slot(QByteArray, result=int)
    def sendPacket(self, data: QByteArray) -> int:
        """SendPacket: the bytes of an ArrayBuffer as one packet (fmPacket framing)."""
        return self._socket.SendPacket(bytes(data.data()))

    @Slot(result=str)
    def receiveText(self) -> str:
        """ReceiveText: everything received so far, decoded ('' when nothing is pending)."""
        return self._socket.ReceiveText()

    @Slot(result=QByteArray)
    def receiveBytes(self) -> QByteArray:
        """ReceiveBytes: everything received so far, as an ArrayBuffer."""
        return QByteArray(self._socket.ReceiveBytes())

    @Slot(result=int)
    def receiveLength(self) -> int:
        """ReceiveLength: bytes that can be read now."""
        return self._socket.ReceiveLength()

    @Slot()
    def shutdown(self) -> None:
        """Shutdown(SD_SEND): send FIN after everything queued; keep receiving."""
        self._socket.Shutdown()

    @Slot()
    def close(self) -> None:
        """Close: end the connection (the disconnect event follows)."""
        self._socket.Close()


class QmlSocketError(QObject):
    """What an ``error`` handler receives (QML type ``SocketError``), the VCL's ``ErrorEvent``
    and ``var ErrorCode``: set ``errorCode`` to 0 to mark the error handled, as Pascal's
    ``ErrorCode := 0``; otherwise, after every handler, the ``ESocketError`` goes to the
    application exception hook (``sockcomp.SetExceptionHook``, default ``sys.excepthook``)."""

    errorCodeChanged = Signal(int)

    def __init__(self, event: int, code: int, message: str,
                 parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self._event = int(event)
        self._code = code
        self._message = message

    def _error_event(self) -> int:
        return self._event

    def _error_event_name(self) -> str:
        return ErrorEvent(self._event).name

    def _get_code(self) -> int:
        return self._code

    def _set_code(self, value: int) -> None:
        if value != self._code:
            self._code = int(value)
            self.errorCodeChanged.emit(self._code)

    def _get_message(self) -> str:
        return self._message

    errorEvent = Property(int, _error_event, constant=True,
                          doc="ErrorEvent: a ScktComp.ErrorEvent value (eeConnect, ...).")
    errorEventName = Property(str, _error_event_name, constant=True,
                              doc="The ErrorEvent's name ('eeConnect', ...).")
    errorCode = Property(int, _get_code, _set_code, notify=errorCodeChanged,
                         doc="ErrorCode: the WSA code (10061 refused, 10054 reset, 10060 timed "
                             "out, 11001 host not found); set 0 to suppress the exception.")
    message = Property(str, _get_message, constant=True,
                       doc="The error explained (LastErrorMessage), VCL-shaped.")


def _error_to_qml(emit: Callable[[QObject, QObject], None], wrapper: QObject,
                  event: ErrorEvent, code: Var[int], message: str) -> None:
    """Fire a QML error signal with a fresh SocketError; write its errorCode back."""
    try:
        value = int(code.value or 0)
    except (TypeError, ValueError):
        value = -1
    error = QmlSocketError(int(event), value, message)
    emit(wrapper, error)
    code.value = error._code


# ---------------------------------------------------------------------------------------------
class QmlClientSocket(ClientSocket):
    """``ClientSocket`` for QML (QML type ``ClientSocket``): the component itself, plus
    lower-case properties and QML events (module docstring). ``socket`` is the one
    :class:`QmlWinSocket` of the component's ``Socket``."""

    locals().update(_mirror_properties(ClientSocket))

    lookup = _event("socket")
    connecting = _event("socket")
    connect_ = _event("socket", name="connect")        # QObject.connect keeps its name
    read = _event("socket")
    write = _event("socket")
    disconnect_ = _event("socket", name="disconnect")  # QObject.disconnect keeps its name
    halfClose = _event("socket")
    lineReceived = _event("socket", "line")
    packetReceived = _event("socket", "packet")
    reconnect = _event("socket")
    error = _event("socket", "error")

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self._qml_socket = QmlWinSocket(self.Socket, self)
        self._qml_emit = {
            seLookup: self.lookup.emit, seConnecting: self.connecting.emit,
            seConnect: self.connect_.emit, seRead: self.read.emit, seWrite: self.write.emit,
            seDisconnect: self.disconnect_.emit, seHalfClose: self.halfClose.emit,
        }
        _relay_changes(self, ClientSocket)
        self.OnReconnect.connect(self._qml_reconnect)

    def _qml_get_socket(self) -> QObject:
        return self._qml_socket

    socket = Property(QObject, _qml_get_socket, constant=True,
                      doc="Socket: the connection (WinSocket), the same object in every event.")

    @Slot()
    def open(self) -> None:
        """Open: connect (active = true). Errors raise a JS Error (a bad Host, ...)."""
        self.Open()

    @Slot()
    def close(self) -> None:
        """Close: disconnect (active = false); stops autoReconnect."""
        self.Close()

    @Slot(object, object)
    def _qml_reconnect(self, Sender: Any, Socket: Any) -> None:
        self.reconnect.emit(self._qml_socket)

    # the dispatch methods: the VCL signal first (super), then the QML one
    def Event(self, Socket: ClientWinSocket, SocketEvent: int) -> None:
        super().Event(Socket, SocketEvent)
        wrapper = self._qml_socket
        if SocketEvent != seRead and SocketEvent != seWrite:
            wrapper.stateChanged.emit()
        self._qml_emit[SocketEvent](wrapper)
        if SocketEvent == seDisconnect:
            wrapper._refresh_later()

    def Error(self, Socket: ClientWinSocket, ErrorEvent: ErrorEvent, ErrorCode: Var[int]) -> None:
        super().Error(Socket, ErrorEvent, ErrorCode)
        _error_to_qml(self.error.emit, self._qml_socket, ErrorEvent, ErrorCode,
                      Socket.LastErrorMessage)

    def LineReceived(self, Socket: ClientWinSocket, Line: str) -> None:
        super().LineReceived(Socket, Line)
        self.lineReceived.emit(self._qml_socket, Line)

    def PacketReceived(self, Socket: ClientWinSocket, Packet: bytes) -> None:
        super().PacketReceived(Socket, Packet)
        self.packetReceived.emit(self._qml_socket, Packet)


#: The client events whose dispatch methods QmlServerSocket extends, and the methods.
_CLIENT_EVENTS = {seConnect: "ClientConnect", seRead: "ClientRead", seWrite: "ClientWrite",
                  seDisconnect: "ClientDisconnect", seHalfClose: "ClientHalfClose"}


def _then_qml(name: str, event: int) -> Callable[..., None]:
    """ServerSocket's dispatch method ``name`` (its VCL signal), then the QML event."""
    vcl = getattr(ServerSocket, name)

    def method(self: "QmlServerSocket", Socket: ServerClientWinSocket) -> None:
        vcl(self, Socket)
        self._qml_client_event(Socket, event)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"{(vcl.__doc__ or name).splitlines()[0]} Then the QML event."
    return method


class QmlServerSocket(ServerSocket):
    """``ServerSocket`` for QML (QML type ``ServerSocket``): the component itself, plus
    lower-case properties and QML events (module docstring). ``socket`` wraps the listening
    socket (``socket.localPort`` is the port listened on, useful with ``port: 0``);
    ``connections`` lists the clients between their ``clientConnect`` and the end of their
    ``clientDisconnect`` handlers, in connection order."""

    locals().update(_mirror_properties(ServerSocket))

    listen = _event("socket")
    accept = _event("socket")
    clientConnect = _event("socket")
    clientRead = _event("socket")
    clientWrite = _event("socket")
    clientDisconnect = _event("socket")
    clientHalfClose = _event("socket")
    clientLineReceived = _event("socket", "line")
    clientPacketReceived = _event("socket", "packet")
    clientError = _event("socket", "error")
    error = _event("socket", "error")
    connectionsChanged = Signal()

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self._qml_socket = QmlWinSocket(self.Socket, self)
        self._qml_wrappers: dict[CustomWinSocket, QmlWinSocket] = {}
        self._qml_connected: dict[CustomWinSocket, QmlWinSocket] = {}
        self._qml_client_emit = {
            seConnect: self.clientConnect.emit, seRead: self.clientRead.emit,
            seWrite: self.clientWrite.emit, seDisconnect: self.clientDisconnect.emit,
            seHalfClose: self.clientHalfClose.emit,
        }
        _relay_changes(self, ServerSocket)
        self.OnListen.connect(self._qml_listen)
        self.OnAccept.connect(self._qml_accept)
        self.OnError.connect(self._qml_error)
        self.ActiveChanged.connect(self._qml_active_changed)

    # properties ---------------------------------------------------------------------------
    def _qml_get_socket(self) -> QObject:
        return self._qml_socket

    def _qml_get_connections(self) -> list[QObject]:
        return list(self._qml_connected.values())

    def _qml_get_active_connections(self) -> int:
        return len(self._qml_connected)

    socket = Property(QObject, _qml_get_socket, constant=True,
                      doc="Socket: the listening socket (WinSocket); socket.localPort is the "
                          "port listened on.")
    connections = Property(list, _qml_get_connections, notify=connectionsChanged,
                           doc="Socket.Connections: the connected clients (WinSocket), in "
                               "connection order.")
    activeConnections = Property(int, _qml_get_active_connections, notify=connectionsChanged,
                                 doc="The number of connections (clients still in their TLS "
                                     "handshake are not counted, unlike "
                                     "Socket.ActiveConnections).")

    @Slot()
    def open(self) -> None:
        """Open: listen (active = true). Errors raise a JS Error (port in use: 10048, ...)."""
        self.Open()

    @Slot()
    def close(self) -> None:
        """Close: stop listening and disconnect every client (active = false)."""
        self.Close()

    # wrappers -----------------------------------------------------------------------------
    def _qml_wrap(self, socket: CustomWinSocket) -> QmlWinSocket:
        wrapper = self._qml_wrappers.get(socket)
        if wrapper is None:
            wrapper = self._qml_wrappers[socket] = QmlWinSocket(socket, self)
        return wrapper

    def _qml_forget(self, socket: CustomWinSocket) -> None:
        wrapper = self._qml_wrappers.pop(socket, None)
        if self._qml_connected.pop(socket, None) is not None:
            self.connectionsChanged.emit()
        if wrapper is not None:
            wrapper.deleteLater()

    # listener events ----------------------------------------------------------------------
    @Slot(object, object)
    def _qml_listen(self, Sender: Any, Socket: Any) -> None:
        self._qml_socket.stateChanged.emit()
        self.listen.emit(self._qml_socket)

    @Slot(object, object)
    def _qml_accept(self, Sender: Any, Socket: Any) -> None:
        self.accept.emit(self._qml_wrap(Socket))

    @Slot(object, object, object, object)
    def _qml_error(self, Sender: Any, Socket: Any, ErrorEvent: Any, ErrorCode: Any) -> None:
        _error_to_qml(self.error.emit, self._qml_socket, ErrorEvent, ErrorCode,
                      Socket.LastErrorMessage)

    @Slot(bool)
    def _qml_active_changed(self, active: bool) -> None:
        self._qml_socket.stateChanged.emit()
        if not active:  # clients that never reached their disconnect event
            for socket in list(self._qml_wrappers):
                self._qml_forget(socket)

    # client events: the VCL signal first (super), then the QML one ------------------------
    def _qml_client_event(self, Socket: ServerClientWinSocket, event: int) -> None:
        wrapper = self._qml_wrap(Socket)
        if event == seConnect:
            self._qml_connected[Socket] = wrapper
            wrapper.stateChanged.emit()
            self.connectionsChanged.emit()
        elif event == seDisconnect or event == seHalfClose:
            wrapper.stateChanged.emit()
        self._qml_client_emit[event](wrapper)
        if event == seDisconnect:
            self._qml_forget(Socket)

    # ClientConnect, ClientRead, ClientWrite, ClientDisconnect, ClientHalfClose
    locals().update({name: _then_qml(name, event) for event, name in _CLIENT_EVENTS.items()})

    def ClientErrorEvent(self, Socket: ServerClientWinSocket, ErrorEvent: ErrorEvent,
                         ErrorCode: Var[int]) -> None:
        super().ClientErrorEvent(Socket, ErrorEvent, ErrorCode)
        _error_to_qml(self.clientError.emit, self._qml_wrap(Socket), ErrorEvent, ErrorCode,
                      Socket.LastErrorMessage)

    def ClientLineReceived(self, Socket: ServerClientWinSocket, Line: str) -> None:
        super().ClientLineReceived(Socket, Line)
        self.clientLineReceived.emit(self._qml_wrap(Socket), Line)

    def ClientPacketReceived(self, Socket: ServerClientWinSocket, Packet: bytes) -> None:
        super().ClientPacketReceived(Socket, Packet)
        self.clientPacketReceived.emit(self._qml_wrap(Socket), Packet)


# ---------------------------------------------------------------------------------------------
_registered: set[tuple[str, int, int]] = set()
# PySide6's stubs type the QML names as bytes, but the calls accept only str (6.11 and 6.12).
_register_type: Callable[..., int] = qmlRegisterType
_register_uncreatable: Callable[..., int] = qmlRegisterUncreatableType


def register_qml_types(uri: str = QML_URI, major: int = 1, minor: int = 0) -> None:
    """Register the QML types in module ``uri`` ``major.minor`` (default ``Sockcomp 1.0``):
    ``ClientSocket`` and ``ServerSocket`` (creatable), ``WinSocket`` and ``SocketError`` (what
    handlers receive) and ``ScktComp`` (the enumerations: ``ScktComp.ErrorEvent.eeConnect``).

    Call it once before loading QML that imports the module; calling it again is harmless.
    Raises ``RuntimeError`` when Qt refuses a registration.
    """
    key = (uri, major, minor)
    if key in _registered:
        return
    results = [
        _register_type(QmlClientSocket, uri, major, minor, "ClientSocket"),
        _register_type(QmlServerSocket, uri, major, minor, "ServerSocket"),
        _register_uncreatable(QmlWinSocket, uri, major, minor, "WinSocket",
                                   "a WinSocket comes with a component's events"),
        _register_uncreatable(QmlSocketError, uri, major, minor, "SocketError",
                                   "a SocketError comes with an error event"),
        _register_uncreatable(ScktComp, uri, major, minor, "ScktComp",
                                   "ScktComp holds the enumerations only"),
    ]
    if any(result < 0 for result in results):
        raise RuntimeError(f"Qt refused to register the sockcomp QML types in {uri} "
                           f"{major}.{minor}")
    _registered.add(key)
