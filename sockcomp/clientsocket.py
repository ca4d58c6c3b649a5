"""``ClientSocket``: the TCP client component (Delphi's ``TClientSocket``)."""
from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from PySide6.QtCore import QObject

from . import enums as _enums
from ._component import SocketComponent, event, qt_property, weak_method
from ._lifecycle import Phase
from ._settings import check_count, check_text
from ._tls import client_context, host_for_sni
from .clientwinsock import ClientWinSocket
from .enums import (
    ClientType,
    ErrorEvent,
    seConnect,
    seConnecting,
    seDisconnect,
    seLookup,
    seRead,
    seWrite,
)
from .errors import ESocketError, HandleException
from .var import Var
from .winsock import CustomWinSocket, seHalfClose

__all__ = ["ClientSocket"]

_ENDING = (Phase.FAILED, Phase.DISCONNECTING)


#: The signal of each socket event, as ``TCustomSocket.Event`` fires them.
_EVENT_SIGNALS = {
    seLookup: "OnLookup", seConnecting: "OnConnecting", seConnect: "OnConnect",
    seRead: "OnRead", seWrite: "OnWrite", seDisconnect: "OnDisconnect",
    seHalfClose: "OnHalfClose",
}

class ClientSocket(SocketComponent):
    """A TCP client component (Delphi's ``TClientSocket``).

    Non-blocking event order: ``OnLookup → OnConnecting → OnConnect → OnWrite → OnRead*`` and
    ``OnDisconnect`` exactly once when the connection ends, however it ends. Errors fire
    ``OnError(Sender, Socket, ErrorEvent, ErrorCode)``; leaving ``ErrorCode.value`` non-zero
    passes an ``ESocketError`` to the application exception hook.
    """

    OnLookup = event("Sender", "Socket")
    OnConnecting = event("Sender", "Socket")
    OnConnect = event("Sender", "Socket")
    OnRead = event("Sender", "Socket")
    OnWrite = event("Sender", "Socket")
    OnDisconnect = event("Sender", "Socket")
    OnHalfClose = event("Sender", "Socket")
    OnLineReceived = event("Sender", "Socket", "Line")
    OnPacketReceived = event("Sender", "Socket", "Packet")
    OnReconnect = event("Sender", "Socket")
    OnError = event("Sender", "Socket", "ErrorEvent", "ErrorCode")

    _DISPATCH_METHODS = frozenset({"Event", "Error", "LineReceived", "PacketReceived"})

    #: The class of :attr:`Socket` (a subclass may name a ClientWinSocket subclass).
    SocketClass: type[ClientWinSocket] = ClientWinSocket

    def __init__(self, parent: Optional[QObject] = None) -> None:
        self._socket = self.SocketClass()
        super().__init__(self._socket, parent)
        self._host = ""
        self._auto_reconnect = False
        self._reconnect_interval = 1000
        self._reconnect_max_interval = 30_000
        self._reconnect_attempt = 0
        self._tls_verify_peer = True
        self._tls_ca_file = ""
        self._tls_server_name = ""
        self._reconnect_delay = 0
        self._wanted = False
        self._reopen = False  # Open() was called while the connection was ending
        self._reconnect_timer = self._owned_timer()
        self._reconnect_timer.timeout.connect(weak_method(self, "_reconnect"))
        self.TLSContext: Optional[ssl.SSLContext] = None
        """A ready ``ssl.SSLContext``, overriding the other TLS properties."""
        sock = self._socket
        sock._event_sink = weak_method(self, "_socket_event")
        sock._error_sink = weak_method(self, "_socket_error")
        sock._frame_sink = weak_method(self, "_socket_frame")
        sock.released_sink = weak_method(self, "_socket_released")
        self._bind_dispatch()

    @property
    def Socket(self) -> ClientWinSocket:
        """The socket object: data methods (SendText, ReceiveText, …) and addresses."""
        return self._socket

    # ------------------------------------------------------------------ Qt properties
    def _get_host(self) -> str:
        return self._host

    def _set_host(self, value: str) -> None:
        if not isinstance(value, str):
            raise ESocketError(f"Invalid Host {value!r}: must be a string")
        if self._change(self._host, value):
            self._host = value

    def _get_client_type(self) -> ClientType:
        return self._socket.ClientType

    def _set_client_type(self, value: Union[ClientType, int]) -> None:
        self._socket.ClientType = value

    def _get_connect_timeout(self) -> int:
        return int(self._socket.ConnectTimeout)

    def _set_connect_timeout(self, value: int) -> None:
        self._socket.ConnectTimeout = check_count(value, "ConnectTimeout", unit=" (ms)")

    def _get_auto_reconnect(self) -> bool:
        return self._auto_reconnect

    def _set_auto_reconnect(self, value: bool) -> None:
        self._auto_reconnect = bool(value)

    def _get_reconnect_interval(self) -> int:
        return self._reconnect_interval

    def _set_reconnect_interval(self, value: int) -> None:
        self._reconnect_interval = check_count(value, "ReconnectInterval", 1, unit=" (ms)")

    def _get_reconnect_max_interval(self) -> int:
        return self._reconnect_max_interval

    def _set_reconnect_max_interval(self, value: int) -> None:
        self._reconnect_max_interval = check_count(value, "ReconnectMaxInterval", 1,
                                                   unit=" (ms)")

    def _get_reconnect_attempt(self) -> int:
        return self._reconnect_attempt

    def _get_reconnecting(self) -> bool:
        return self._reconnect_timer.isActive()

    def _get_tls_verify_peer(self) -> bool:
        return self._tls_verify_peer

    def _set_tls_verify_peer(self, value: bool) -> None:
        self._tls_verify_peer = bool(value)

    def _get_tls_ca_file(self) -> str:
        return self._tls_ca_file

    def _set_tls_ca_file(self, value: str) -> None:
        self._tls_ca_file = check_text(value, "TLSCAFile")

    def _get_tls_server_name(self) -> str:
        return self._tls_server_name

    def _set_tls_server_name(self, value: str) -> None:
        self._tls_server_name = check_text(value, "TLSServerName")

    locals().update(qt_property(
        "Host", str, _get_host, _set_host,
        "Host name of the server, looked up off the GUI thread; beats Address when set. Not "
        "changeable while active."))
    locals().update(qt_property(
        "ClientType", ClientType, _get_client_type, _set_client_type,
        "ctNonBlocking (events, default) or ctBlocking (calls wait); fixed while connected."))
    locals().update(qt_property(
        "ConnectTimeout", int, _get_connect_timeout, _set_connect_timeout,
        "Milliseconds allowed from Open to OnConnect: lookup, connect and TLS handshake. 0 "
        "(default) leaves a non-blocking connect to the OS and bounds a blocking one by 30 s. "
        "Expiry is OnError(eeConnect, 10060) then OnDisconnect (beyond the VCL)."))
    locals().update(qt_property(
        "AutoReconnect", bool, _get_auto_reconnect, _set_auto_reconnect,
        "After a connection ends by anything but Close() (peer gone, refused, error), open "
        "again after ReconnectInterval ms, doubling up to ReconnectMaxInterval; OnReconnect "
        "fires before each attempt. Meanwhile sends are kept and go out after the next "
        "OnConnect. Close() stops it (and drops what was kept)."))
    locals().update(qt_property("ReconnectInterval", int, _get_reconnect_interval,
                                _set_reconnect_interval,
                                "First delay of AutoReconnect, in ms (default 1000)."))
    locals().update(qt_property("ReconnectMaxInterval", int, _get_reconnect_max_interval,
                                _set_reconnect_max_interval,
                                "Longest delay of AutoReconnect, in ms (default 30000)."))
    locals().update(qt_property("ReconnectAttempt", int, _get_reconnect_attempt, None,
                                "Attempts since the last successful connection (read-only)."))
    locals().update(qt_property("Reconnecting", bool, _get_reconnecting, None,
                                "True while AutoReconnect waits for its next attempt "
                                "(read-only)."))
    locals().update(qt_property(
        "TLSVerifyPeer", bool, _get_tls_verify_peer, _set_tls_verify_peer,
        "Verify the server's certificate and name (default on; off only for testing)."))
    locals().update(qt_property("TLSCAFile", str, _get_tls_ca_file, _set_tls_ca_file,
                                "PEM file of trusted CAs; '' uses the system's trust store."))
    locals().update(qt_property(
        "TLSServerName", str, _get_tls_server_name, _set_tls_server_name,
        "Name sent as SNI and checked against the certificate; '' uses Host, else Address."))

    if TYPE_CHECKING:  # the Qt properties made here, as type checkers see them
        from PySide6.QtCore import SignalInstance
        Host: str
        ClientType: _enums.ClientType  # type: ignore[assignment]  # the enum is named so too
        ConnectTimeout: int
        AutoReconnect: bool
        ReconnectInterval: int
        ReconnectMaxInterval: int
        ReconnectAttempt: int
        ReconnectAttemptChanged: SignalInstance
        Reconnecting: bool
        ReconnectingChanged: SignalInstance
        TLSVerifyPeer: bool
        TLSCAFile: str
        TLSServerName: str

    def Open(self) -> None:
        """Connect (``Active := True``, through :meth:`DoActivate`); a no-op when already
        connected or connecting.

        Inside OnDisconnect (or OnError), it reconnects once the ending connection is
        released. ctBlocking: returns after OnLookup, OnConnecting and OnConnect, or raises
        the ``ESocketError`` (after OnError and OnDisconnect) when the connection fails.
        """
        self.DoActivate(True)

    def Close(self) -> None:
        """Disconnect (``Active := False``, through :meth:`DoActivate`); also abandons a
        lookup or connect in progress and stops AutoReconnect."""
        self.DoActivate(False)

    def _activate(self) -> None:
        phase = self._socket.Phase
        self._wanted = True
        if phase in _ENDING:
            self._reopen = True
            return
        if phase is Phase.CLOSED or phase is Phase.CLOSING:
            self._open()

    def _open(self) -> None:
        sock = self._socket
        sock.hold_while_closed = self.AutoReconnect
        if self.UseTLS:
            sock.configure_tls(self.TLSContext or client_context(self.TLSVerifyPeer,
                                                                 self.TLSCAFile),
                               host_for_sni(self.TLSServerName, self._host, self._address))
        else:
            sock.configure_tls(None, None)
        sock.Open(self._host, self._address, self._service, self._port, Block=None)

    def _deactivate(self) -> None:
        self._stored_active = False
        self._wanted = False
        self._reopen = False
        if self._reconnect_timer.isActive():
            self._reconnect_timer.stop()
            self.ReconnectingChanged.emit(False)
        self._socket.hold_while_closed = False
        self._socket.DiscardOutbox()
        self._socket.Close()

    def _reconnect(self) -> None:
        self.ReconnectingChanged.emit(False)
        if not (self._wanted and self.AutoReconnect) or self._socket.Phase is not Phase.CLOSED:
            return
        self._reconnect_attempt += 1
        self.ReconnectAttemptChanged.emit(self._reconnect_attempt)
        self.OnReconnect.emit(self, self._socket)
        if self._wanted and self._socket.Phase is Phase.CLOSED:
            self._open()

    def _schedule_reconnect(self) -> None:
        first = max(int(self.ReconnectInterval), 1)
        cap = max(int(self.ReconnectMaxInterval), first)
        self._reconnect_delay = first if not self._reconnect_delay else \
            min(self._reconnect_delay * 2, cap)
        self._reconnect_timer.start(self._reconnect_delay)
        self.ReconnectingChanged.emit(True)

    def _watched_sockets(self) -> list[CustomWinSocket]:
        return [self._socket]

    def _settings_target(self) -> CustomWinSocket:
        return self._socket

    # ------------------------------------------------------------------ socket events
    def _socket_event(self, socket: CustomWinSocket, event: int) -> None:
        if event == seConnect:
            self._set_active(True)
            self._reconnect_delay = 0
            if self._reconnect_attempt:
                self._reconnect_attempt = 0
                self.ReconnectAttemptChanged.emit(0)
            self._idle.arm()
        elif event == seDisconnect:
            self._set_active(False)
        try:
            on_event = self._on_event
            if on_event is None:
                self._emit[event](self, socket)
            else:
                on_event(socket, event)
        except BaseException as exc:  # an overriding handler's error must not break the socket
            HandleException(exc)
        if event == seDisconnect and self._wanted and self.AutoReconnect and not self._reopen:
            self._schedule_reconnect()

    def _socket_released(self, socket: CustomWinSocket) -> None:
        """The connection was released: an Open() made while it ended runs now."""
        if self._reopen:
            self._reopen = False
            if self._wanted and self._socket.Phase in (Phase.CLOSED, Phase.CLOSING):
                self._open()

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
        fire = self._fire
        self._emit = {event: fire(name) for event, name in _EVENT_SIGNALS.items()}
        self._on_event: Optional[Callable[..., None]] = (
            self.Event if self._overrides(owner, "Event") else None)
        self._on_error = self._dispatch_call(owner, "Error", fire("OnError"))
        self._on_line = self._dispatch_call(owner, "LineReceived", fire("OnLineReceived"))
        self._on_packet = self._dispatch_call(owner, "PacketReceived", fire("OnPacketReceived"))

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
        self._fire("OnError")(self, Socket, ErrorEvent, ErrorCode)

    def LineReceived(self, Socket: ClientWinSocket, Line: str) -> None:
        """Fire ``OnLineReceived`` (fmLine); override to take lines without a signal."""
        self._fire("OnLineReceived")(self, Socket, Line)

    def PacketReceived(self, Socket: ClientWinSocket, Packet: bytes) -> None:
        """Fire ``OnPacketReceived`` (fmPacket); override to take packets without a signal."""
        self._fire("OnPacketReceived")(self, Socket, Packet)

