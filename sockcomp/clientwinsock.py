"""``ClientWinSocket``: the socket of a ClientSocket — lookup, connect, then data.

Non-blocking: a host name is looked up off the component's thread, every address it resolves to
is tried in turn (so 'localhost' works whether the server listens on ::1 or 127.0.0.1), and the
connection completes from the event loop. Blocking (``ctBlocking``): the same steps run inside
``Open``. Either way a failure is OnError then OnDisconnect, never a half-open socket.
"""
from __future__ import annotations

import errno
import socket
from typing import Any, Optional, Union

from ._pump import WRITE, current_pump
from ._resolve import AddrInfo, Lookup, lookup_async, lookup_numeric
from .enums import (
    ClientType,
    LookupState,
    SocketState,
    eeConnect,
    eeLookup,
    seConnect,
    seConnecting,
    seLookup,
)
from .errors import WSAENOADDRESS, ESocketError, HandleException, wsa_code
from .winsock import CustomWinSocket

__all__ = ["ClientWinSocket"]

_CONNECT_PENDING = {errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, errno.EALREADY}


class ClientWinSocket(CustomWinSocket):
    """The socket of a ClientSocket: looks up, connects, then reads and writes."""

    def __init__(self, sock: Optional[socket.socket] = None) -> None:
        super().__init__(sock)
        self._client_type = ClientType.ctNonBlocking
        self._lookup: Optional[Lookup] = None
        self._lookup_state = LookupState.lsIdle
        self._addresses: list[AddrInfo] = []
        self._connect_error: Optional[OSError] = None
        self._attempt: object = None
        self._connect_timer: Any = None  # a QTimer owned by the pump, made on first use
        #: Milliseconds allowed from Open to OnConnect (0: the OS default). Beyond the VCL.
        self.ConnectTimeout = 0
        #: While True (AutoReconnect between connections), SendBuf keeps what it is given for
        #: the next connection instead of refusing it.
        self.hold_while_closed = False
        self._outbox: list[bytes] = []

    @property
    def ClientType(self) -> ClientType:
        """ctNonBlocking (events) or ctBlocking (calls block); not changeable while connected."""
        return self._client_type

    @ClientType.setter
    def ClientType(self, value: Union[ClientType, int]) -> None:
        value = ClientType(int(value))
        if value != self._client_type:
            if self.Connected:
                raise ESocketError("Can't change value while socket is active")
            self._client_type = value

    @property
    def LookupState(self) -> LookupState:
        """Progress of the asynchronous host lookup."""
        return self._lookup_state

    def Open(self, Host: str, Address: str, Service: str, Port: int,
             Block: Optional[bool] = None) -> None:
        """Connect: Host (looked up off-thread) beats Address; Service beats Port.

        Non-blocking: OnLookup fires now; with a numeric Address OnConnecting too, and the rest
        follows from the event loop. A missing address, or a bad numeric address or service, is
        reported at once (OnError(eeLookup), OnDisconnect) and raised unless the handler set
        ``ErrorCode.value = 0``.
        """
        if self._state != SocketState.ssClosed:
            raise ESocketError("Socket already open")
        if Block is not None and Block != (self._client_type == ClientType.ctBlocking):
            self._client_type = ClientType.ctBlocking if Block else ClientType.ctNonBlocking
        self._blocking = self._client_type == ClientType.ctBlocking
        if self._pump is None and not self._blocking:
            self._pump = current_pump()
        self._state = SocketState.ssLookup
        attempt = self._attempt = object()
        if self.ConnectTimeout > 0 and not self._blocking:
            self._start_connect_timer(attempt)
        self._fire(seLookup)
        if self._state != SocketState.ssLookup:
            return  # closed from OnLookup
        port: Union[int, str] = Service if Service else Port
        if Host:
            if self._blocking:
                self._lookup_blocking(Host, port)
                return
            self._lookup_state = LookupState.lsLookupAddress
            assert self._pump is not None
            self._lookup = lookup_async(self._pump, Host, port, self._lookup_done)
            return
        if not Address:
            self._lookup_failed(None, "", synchronous=True)
            return
        try:
            infos = lookup_numeric(Address, port)
        except socket.gaierror as exc:
            api = "getservbyname" if exc.errno == getattr(socket, "EAI_SERVICE", None) else \
                "inet_pton"
            self._lookup_failed(exc, api, synchronous=True)
            return
        self._connect(infos)

    def _lookup_blocking(self, host: str, port: Union[int, str]) -> None:
        try:
            infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM)
        except socket.gaierror as exc:
            self._lookup_failed(exc, "getaddrinfo", synchronous=True)
            return
        self._connect(infos)

    def _start_connect_timer(self, attempt: object) -> None:
        """One QTimer per socket, stopped once the attempt ends (never a timer that outlives it)."""
        if self._connect_timer is None:
            from PySide6.QtCore import QTimer
            self._connect_timer = QTimer(self._pump)
            self._connect_timer.setSingleShot(True)
            self._connect_timer.timeout.connect(lambda: self._connect_timed_out(self._attempt))
        self._connect_timer.start(int(self.ConnectTimeout))

    def _stop_connect_timer(self) -> None:
        if self._connect_timer is not None:
            self._connect_timer.stop()

    def _connect_timed_out(self, attempt: object) -> None:
        if attempt is self._attempt and self._state in (SocketState.ssLookup,
                                                        SocketState.ssConnecting):
            self._addresses = []
            self._fail(eeConnect, TimeoutError(errno.ETIMEDOUT, "Connection timed out"), "connect")

    def _lookup_done(self, infos: Optional[list[AddrInfo]], error: Optional[OSError]) -> None:
        self._lookup = None
        self._lookup_state = LookupState.lsIdle
        if self._state != SocketState.ssLookup:
            return
        if error is not None or not infos:
            self._lookup_failed(error, "ASync Lookup", synchronous=False)
            return
        self._connect(infos)

    def _lookup_failed(self, exc: Optional[BaseException], api: str, synchronous: bool) -> None:
        code = wsa_code(exc) if exc is not None else WSAENOADDRESS
        self.LastError = (ESocketError.from_os_error(exc, api) if exc is not None else
                          ESocketError("No address specified", WSAENOADDRESS))
        left = self._report_error(eeLookup, code, str(self.LastError))
        self._disconnect(graceful=False)
        if not left:
            return
        if exc is None:
            err = ESocketError("No address specified", WSAENOADDRESS)
        else:
            err = ESocketError.from_code(left, api, getattr(exc, "errno", None))
        if synchronous:
            raise err
        HandleException(err)

    def _cancel_pending(self) -> None:
        self._attempt = None
        self._stop_connect_timer()
        if self._lookup is not None:
            self._lookup.cancel()
            self._lookup = None
            self._lookup_state = LookupState.lsIdle

    # -- connecting ------------------------------------------------------------------------
    def _connect(self, infos: list[AddrInfo]) -> None:
        self._addresses = list(infos)
        self._connect_error = None
        self._state = SocketState.ssConnecting
        self._try_next_address(first=True)

    def _try_next_address(self, first: bool = False) -> None:
        while self._addresses and self._state == SocketState.ssConnecting:
            family, type_, proto, _, sockaddr = self._addresses.pop(0)
            try:
                sock = socket.socket(family, type_, proto)
            except OSError as exc:
                self._connect_error = exc
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
            self._apply_options()
            if first:
                first = False
                self._fire(seConnecting)
                if self._state != SocketState.ssConnecting or self._sock is not sock:
                    return  # closed from OnConnecting
            if self._blocking:
                if self._connect_blocking(sock, sockaddr):
                    return
                continue
            sock.setblocking(False)
            err = sock.connect_ex(sockaddr)
            if err == 0 or err in _CONNECT_PENDING:
                self._attach(WRITE)
                return
            self._connect_error = OSError(err, errno.errorcode.get(err, str(err)))
            self._sock = None
            sock.close()
        if self._state == SocketState.ssConnecting:
            error = self._connect_error or OSError(errno.ECONNREFUSED, "Connection refused")
            if self._blocking:
                self._fail(eeConnect, error, "connect", raise_=True)
            else:
                assert self._pump is not None
                self._pump.call_soon(self._connect_failed_later, error)

    def _connect_blocking(self, sock: socket.socket, sockaddr: Any) -> bool:
        """Blocking connect (honouring ConnectTimeout); True once connected and OnConnect fired."""
        sock.settimeout(self.ConnectTimeout / 1000 if self.ConnectTimeout > 0 else None)
        try:
            sock.connect(sockaddr)
        except OSError as exc:
            self._sock = None
            sock.close()
            self._connect_error = exc
            return False
        self._addresses = []
        self._state = SocketState.ssConnected
        if self._tls is not None:
            self._start_tls()  # raises (after OnError, OnDisconnect) when the handshake fails
        if self._sock is not None:
            self._sock.settimeout(None)
        self._fire(seConnect)
        return True

    def _connect_failed_later(self, error: OSError) -> None:
        if self._state == SocketState.ssConnecting and self._sock is None:
            self._fail(eeConnect, error, "connect")

    def _send_while_closed(self, buf: Any, count: Optional[int]) -> int:
        if not self.hold_while_closed or self._blocking:
            return 0
        view = memoryview(buf).cast("B")
        data = bytes(view[:count] if count is not None else view)
        self._outbox.append(data)
        return len(data)

    def _connected(self) -> None:
        self._attempt = None
        self._stop_connect_timer()
        super()._connected()
        outbox, self._outbox = self._outbox, []
        for data in outbox:  # what was sent while reconnecting, after OnConnect's own sends
            if self.SendBuf(data) <= 0:
                break

    def DiscardOutbox(self) -> int:
        """Drop what was kept for the next connection; returns the bytes dropped."""
        dropped = sum(map(len, self._outbox))
        self._outbox = []
        return dropped

    def _on_connect_ready(self) -> None:
        sock = self._sock
        assert sock is not None
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err == 0:
            try:
                sock.getpeername()
            except OSError as exc:
                if exc.errno == errno.ENOTCONN:
                    return  # spurious readiness: still connecting
                err = exc.errno or errno.ECONNREFUSED
        if err:
            assert self._pump is not None
            self._pump.unregister(sock.fileno())
            self._sock = None
            sock.close()
            self._connect_error = OSError(err, errno.errorcode.get(err, str(err)))
            if self._addresses:
                self._try_next_address()
            else:
                self._fail(eeConnect, self._connect_error, "connect")
            return
        self._addresses = []
        if self._tls is not None:
            self._start_tls()
            return
        self._state = SocketState.ssConnected
        self._update_interest()
        self._connected()
