"""``ClientWinSocket``: the socket of a ClientSocket — lookup, connect, then data.

Non-blocking: a host name is looked up off the component's thread, every address it resolves to
is tried in turn (so 'localhost' works whether the server listens on ::1 or 127.0.0.1), and the
connection completes from the event loop. Blocking (``ctBlocking``): the same steps run inside
``Open``, bounded by ``ConnectTimeout`` (or :data:`BLOCKING_CONNECT_TIMEOUT_MS`). Either way a
failure is OnError then OnDisconnect, never a half-open socket, and never OnConnect after it
(the life cycle forbids it, whatever a handler did to ``ErrorCode``).
"""
from __future__ import annotations

import errno
import os
import socket
from typing import Any, Optional, Union

from ._lifecycle import Input, Phase
from ._pump import current_pump
from ._resolve import AddrInfo, Lookup, lookup_async, lookup_numeric
from ._settings import check_port, check_service
from ._waits import Deadline
from .enums import ClientType, LookupState, eeConnect, eeLookup, seLookup
from .errors import (
    WSAENOADDRESS, ESocketError, HandleException, cannot_create_socket, raise_error, wsa_code,
)
from .winsock import CustomWinSocket

__all__ = ["ClientWinSocket", "BLOCKING_CONNECT_TIMEOUT_MS"]

_CONNECT_PENDING = {errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, errno.EALREADY}
#: What bounds a ctBlocking connect (and its TLS handshake) when ConnectTimeout is 0 (ms).
BLOCKING_CONNECT_TIMEOUT_MS = 30_000
_OPENING = (Phase.LOOKUP, Phase.CONNECTING, Phase.HANDSHAKING)


class ClientWinSocket(CustomWinSocket):
    """The socket of a ClientSocket: looks up, connects, then reads and writes."""

    def __init__(self, sock: Optional[socket.socket] = None) -> None:
        super().__init__(sock)
        self._client_type = ClientType.ctNonBlocking
        self._lookup: Optional[Lookup] = None
        self._lookup_state = LookupState.lsIdle
        self._addresses: list[AddrInfo] = []
        self._connect_error: Optional[OSError] = None
        self._deadline = Deadline(None)
        self._attempt_address: Any = None  # the address being connected to
        self._connect_timer: Any = None  # a QTimer owned by the pump, made on first use
        #: Milliseconds allowed from Open to OnConnect (lookup, connect and TLS handshake);
        #: 0: the OS default (non-blocking) or BLOCKING_CONNECT_TIMEOUT_MS (blocking).
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
            self.__dict__.pop("_async_styles", None)  # the VCL's rule: the default set again

    def _style_blocking(self) -> bool:
        return self._client_type == ClientType.ctBlocking

    def _set_style_blocking(self, blocking: bool) -> None:
        self.ClientType = ClientType.ctBlocking if blocking else ClientType.ctNonBlocking

    def configure_tls(self, context: Any, hostname: Optional[str]) -> None:
        """TLS for the next Open (``context`` None: plain TCP); ``hostname`` is sent as SNI
        and checked against the certificate."""
        self._tls_context = context
        self._tls_server_side = False
        self._tls_hostname = hostname

    @property
    def LookupState(self) -> LookupState:
        """Progress of the asynchronous host lookup."""
        return self._lookup_state

    def _current(self, generation: int, *phases: Phase) -> bool:
        """Is this still the attempt numbered ``generation``, in one of ``phases``?"""
        life = self._life
        return life.generation == generation and life.phase in phases

    def Open(self, Name: str, Address: str, Service: str, Port: int,
             Block: Optional[bool] = True) -> None:
        """Connect (``TCustomWinSocket.Open``): the host ``Name`` beats the numeric
        ``Address``; ``Service`` beats ``Port``. ``Block`` True (the VCL's default) connects
        here and makes the socket ``ctBlocking``, False connects through the event loop
        (``ctNonBlocking``), None keeps ``ClientType``. ``ClientSocket.Open`` passes its
        ClientType.

        Non-blocking: OnLookup fires now; with a numeric Address OnConnecting too, and the rest
        follows from the event loop (a Name is looked up off this thread). A missing address,
        or a bad numeric address or service, is reported at once (OnError(eeLookup),
        OnDisconnect) and raised unless the handler set ``ErrorCode.value = 0``. Blocking:
        returns connected, or raises after OnError and OnDisconnect; with the error suppressed
        by a handler it returns, not connected. A raised error goes to this thread's
        :func:`SetErrorProc` instead when one is installed. Opening an open socket raises
        ``Socket already open``, a port (or Service digits) outside 0..65535 ``Invalid port
        number``, before any event.
        """
        service = check_service(Service)
        if not service:
            check_port(Port)
        with self._mutex:
            if not self._life.allows(Input.OPEN):
                raise ESocketError("Socket already open")
            if Block is not None:
                self._client_type = ClientType.ctBlocking if Block else ClientType.ctNonBlocking
            blocking = self._blocking = self._client_type == ClientType.ctBlocking
            self._apply_styles(quiet=blocking)
            if self._pump is None and not blocking:
                self._pump = current_pump()
            self._life.step(Input.OPEN)
            generation = self._life.generation
        timeout = self.ConnectTimeout
        if blocking:
            self._deadline = Deadline(timeout or BLOCKING_CONNECT_TIMEOUT_MS)
        elif timeout > 0:
            self._start_connect_timer(timeout)
        self._fire(seLookup)
        if not self._current(generation, Phase.LOOKUP):
            return  # closed from OnLookup
        port: Union[int, str] = service if service else Port
        if Name:
            if blocking:
                self._lookup_blocking(Name, port)
                return
            self._lookup_state = LookupState.lsLookupAddress
            assert self._pump is not None
            self._lookup = lookup_async(self._pump, Name, port, self._lookup_done)
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

    def _start_connect_timer(self, timeout_ms: int) -> None:
        """A QTimer of the pump's for this attempt, deleted once the attempt ends (never one
        that outlives it: the pump lives as long as its thread)."""
        if self._connect_timer is None:
            from PySide6.QtCore import QTimer
            self._connect_timer = QTimer(self._pump)
            self._connect_timer.setSingleShot(True)
            self._connect_timer.timeout.connect(self._connect_timed_out)
        self._connect_timer.start(int(timeout_ms))

    def _stop_connect_timer(self) -> None:
        timer, self._connect_timer = self._connect_timer, None
        if timer is not None and self._pump is not None:
            timer.stop()
            self._pump.delete_soon(timer)  # maybe inside its own timeout

    def _connect_timed_out(self) -> None:
        phase = self._life.phase
        if phase in _OPENING:
            self._addresses = []
            api = "SSL_do_handshake" if phase is Phase.HANDSHAKING else "connect"
            self._fail(eeConnect, TimeoutError(errno.ETIMEDOUT, os.strerror(errno.ETIMEDOUT)),
                       api)

    def _lookup_done(self, infos: Optional[list[AddrInfo]], error: Optional[OSError]) -> None:
        self._lookup = None
        self._lookup_state = LookupState.lsIdle
        if self._life.phase is not Phase.LOOKUP:
            return
        if error is not None or not infos:
            self._lookup_failed(error, "ASync Lookup", synchronous=False)
            return
        self._connect(infos)

    def _lookup_failed(self, exc: Optional[BaseException], api: str, synchronous: bool) -> None:
        with self._mutex:
            if not self._life.live:
                return
            self._life.step(Input.FAIL)
        code = wsa_code(exc) if exc is not None else WSAENOADDRESS
        self.LastError = (ESocketError.from_os_error(exc, api) if exc is not None else
                          ESocketError("No address specified", WSAENOADDRESS))
        left = self._report_error(eeLookup, code, str(self.LastError))
        self._end(graceful=False)
        if not left:
            return
        if exc is None:
            err = ESocketError("No address specified", WSAENOADDRESS)
        else:
            err = ESocketError.from_code(left, api, getattr(exc, "errno", None))
        if synchronous:
            raise_error(err)
        else:
            HandleException(err)

    def _cancel_pending(self) -> None:
        self._stop_connect_timer()
        self._addresses = []
        if self._lookup is not None:
            self._lookup.cancel()
            self._lookup = None
            self._lookup_state = LookupState.lsIdle

    def _handshake_budget(self, timeout: int) -> Optional[float]:
        """ConnectTimeout covers the handshake too: whichever ends first."""
        left = self._deadline.remaining_ms()
        if not timeout:
            return left
        return timeout if left is None else min(timeout, left)

    # -- connecting ------------------------------------------------------------------------
    def _connect(self, infos: list[AddrInfo]) -> None:
        self._addresses = list(infos)
        self._connect_error = None
        self._try_next_address()

    def _try_next_address(self) -> None:
        generation = self._life.generation
        while self._addresses and self._current(generation, Phase.LOOKUP, Phase.CONNECTING):
            family, type_, proto, _, sockaddr = self._addresses.pop(0)
            self._attempt_address = sockaddr
            try:
                sock = socket.socket(family, type_, proto)
            except OSError as exc:
                self._connect_error = cannot_create_socket(exc)
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            transport = self._open_transport(sock)
            with self._mutex:
                event = self._life.step(Input.RESOLVED)
            if event is not None:
                self._fire(event)  # OnConnecting, for the first address only
                if not self._current(generation, Phase.CONNECTING) or \
                        self._transport is not transport:
                    return  # closed from OnConnecting
            if self._blocking:
                assert self._waiter is not None
                err = self._waiter.connect_wait(sockaddr, self._deadline)
                if err == 0:
                    self._tcp_up()
                    return
            else:
                err = sock.connect_ex(sockaddr)
                if err == 0 or err in _CONNECT_PENDING:
                    transport.watch_connect()  # connect_done() follows
                    return
            self._drop_attempt()
            self._connect_error = OSError(err, os.strerror(err))
            if err == errno.ETIMEDOUT and self._blocking and self._deadline.expired:
                self._addresses = []
        if self._current(generation, Phase.LOOKUP, Phase.CONNECTING):
            error = self._connect_error or OSError(errno.ECONNREFUSED, "Connection refused")
            if self._blocking:
                self._fail(eeConnect, error, "connect", raise_=True)
            else:
                assert self._pump is not None
                self._pump.call_soon(self._connect_failed_later, generation, error)

    def _drop_attempt(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.release(graceful=False)

    def _connect_failed_later(self, generation: int, error: OSError) -> None:
        if self._current(generation, Phase.LOOKUP, Phase.CONNECTING) and self._transport is None:
            self._fail(eeConnect, error, "connect")

    def connect_done(self, err: int) -> None:
        """Transport: the non-blocking connect ended (0: connected, else the errno)."""
        if self._life.phase is not Phase.CONNECTING:
            return
        if err:
            self._drop_attempt()
            self._connect_error = OSError(err, os.strerror(err))
            if self._addresses:
                self._try_next_address()
            else:
                self._fail(eeConnect, self._connect_error, "connect")
            return
        self._tcp_up()

    def _tcp_up(self) -> None:
        """TCP is connected: the TLS handshake next, or the connection is made."""
        self._addresses = []
        transport = self._transport
        assert transport is not None
        self._capture_addresses(transport.sock, self._attempt_address)
        if self._tls_context is not None:
            if not self._blocking and not self.ConnectTimeout and self.HandshakeTimeout:
                self._start_connect_timer(self.HandshakeTimeout)
            self._begin_tls()
            return
        self._established()

    def _connection_made(self) -> None:
        self._stop_connect_timer()

    def _established(self) -> None:
        super()._established()
        if not self.Connected:
            return
        outbox, self._outbox = self._outbox, []
        for data in outbox:  # what was sent while reconnecting, after OnConnect's own sends
            if self.SendBuf(data) <= 0:
                break

    def _send_while_closed(self, buf: Any, view: memoryview) -> int:
        if not self.hold_while_closed or self._blocking:
            return 0
        data = bytes(view)
        self._outbox.append(data)
        return len(data)

    def DiscardOutbox(self) -> int:
        """Drop what was kept for the next connection; returns the bytes dropped."""
        dropped = sum(map(len, self._outbox))
        self._outbox = []
        return dropped
