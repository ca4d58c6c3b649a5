"""``ClientSocket``: the TCP client component (Delphi's ``TClientSocket``)."""
from __future__ import annotations

import ssl
from typing import Any, Callable, Optional, Union

from PySide6.QtCore import QObject, QTimer, Signal

from ._component import SocketComponent, connection_setting, weak_method
from ._lifecycle import Phase
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


class ClientSocket(SocketComponent):
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
        super().__init__(self._socket, parent)
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
        self._reopen = False  # Open() was called while the connection was ending
        self._reconnect_timer = QTimer(self)
        self._reconnect_timer.setSingleShot(True)
        self._reconnect_timer.timeout.connect(self._reconnect)
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
        sock = self._socket
        sock._event_sink = weak_method(self, "_socket_event")
        sock._error_sink = weak_method(self, "_socket_error")
        sock._frame_sink = weak_method(self, "_socket_frame")
        sock.released_sink = weak_method(self, "_socket_released")
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
        if not isinstance(value, str):
            raise ESocketError(f"Invalid Host {value!r}: must be a string")
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
        """Milliseconds allowed from Open to OnConnect: lookup, connect and TLS handshake. 0
        (default) leaves a non-blocking connect to the OS and bounds a blocking one by 30 s.
        Expiry is ``OnError(eeConnect, 10060)`` then ``OnDisconnect`` (beyond the VCL; no
        extra thread in non-blocking mode)."""
        return int(self._socket.ConnectTimeout)

    @ConnectTimeout.setter
    def ConnectTimeout(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ESocketError(f"Invalid ConnectTimeout {value!r}: must be an int >= 0 (ms)")
        self._socket.ConnectTimeout = value

    AllowHalfClose = connection_setting(
        "AllowHalfClose", "When the peer finishes sending, fire OnHalfClose and keep the socket "
        "open (beyond the VCL); the application calls Close() when its reply is done. Default "
        "False: the peer's FIN fires OnDisconnect (with the socket still writable inside it).")
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
    Framing = connection_setting("Framing", "``fmNone`` (raw: OnRead/ReceiveText), ``fmLine`` "
                                 "or ``fmPacket``: one event per message (OnLineReceived / "
                                 "OnPacketReceived). Beyond the VCL.")
    LineEnd = connection_setting("LineEnd", "Line terminator for ``fmLine`` and ``SendLine``.")
    MaxFrameSize = connection_setting("MaxFrameSize", "Longest line/packet accepted (default "
                                      "1 MiB); longer is OnError(eeReceive, 10040).")
    FrameOverflow = connection_setting("FrameOverflow", "``foClose`` (default) closes after an "
                                       "oversized message; ``foDiscard`` skips it.")
    Encoding = connection_setting("Encoding", "Text encoding (default 'utf-8').")

    @property
    def KeepAliveDetectionTime(self) -> int:
        """Longest time (ms) until keepalive reports a vanished peer, from the values actually
        set: KeepAliveTime + KeepAliveCount × KeepAliveInterval (read-only)."""
        return self._socket.KeepAliveDetectionTime

    def Open(self) -> None:
        """Connect (``Active := True``); a no-op when already connected or connecting.

        Inside OnDisconnect (or OnError), it reconnects once the ending connection is
        released. ctBlocking: returns after OnLookup, OnConnecting and OnConnect, or raises
        the ``ESocketError`` (after OnError and OnDisconnect) when the connection fails.
        """
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
        sock.Open(self._host, self._address, self._service, self._port)

    def Close(self) -> None:
        """Disconnect (``Active := False``); also abandons a lookup or connect in progress
        and stops AutoReconnect."""
        self._stored_active = False
        self._wanted = False
        self._reopen = False
        self._reconnect_timer.stop()
        self._socket.hold_while_closed = False
        self._socket.DiscardOutbox()
        self._socket.Close()

    @property
    def Reconnecting(self) -> bool:
        """True while AutoReconnect waits for its next attempt (read-only)."""
        return self._reconnect_timer.isActive()

    def _reconnect(self) -> None:
        if not (self._wanted and self.AutoReconnect) or self._socket.Phase is not Phase.CLOSED:
            return
        self.ReconnectAttempt += 1
        self.OnReconnect.emit(self, self._socket)
        if self._wanted and self._socket.Phase is Phase.CLOSED:
            self._open()

    def _schedule_reconnect(self) -> None:
        first = max(int(self.ReconnectInterval), 1)
        cap = max(int(self.ReconnectMaxInterval), first)
        self._reconnect_delay = first if not self._reconnect_delay else \
            min(self._reconnect_delay * 2, cap)
        self._reconnect_timer.start(self._reconnect_delay)

    def _watched_sockets(self) -> list[CustomWinSocket]:
        return [self._socket]

    def _settings_target(self) -> CustomWinSocket:
        return self._socket

    # ------------------------------------------------------------------ socket events
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

