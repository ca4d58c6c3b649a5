"""``CustomWinSocket``: the base of every socket object (client, server-client, listening).

A socket object coordinates one connection at a time (:mod:`sockcomp._connection`): its life
cycle decides the phase and which VCL event fires, its transport owns the OS socket, the TLS
layer and the send queue, its receive buffer holds what arrived (:mod:`sockcomp._receiving`),
and its send methods queue in order (:mod:`sockcomp._sending`). The components
(:mod:`sockcomp.components`) turn what it reports into Qt signals.

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

import socket
from typing import Any, Callable, Iterable, Optional

from ._connection import ErrorSink, EventSink, FrameSink, no_error, no_event
from ._lifecycle import Input, seHalfClose
from ._receiving import FRAMES_PER_TURN, ReceiveSide
from ._recvbuffer import RECEIVE_HIGH_WATER
from ._resolve import address_of, service_port
from .enums import AsyncStyle, asRead, asWrite
from .errors import ESocketError, raise_error
from ._lifecycle import Phase, READ_PHASES, WRITE_PHASES
from ._sending import SendSide

__all__ = ["CustomWinSocket", "RECEIVE_HIGH_WATER", "seHalfClose", "EventSink", "ErrorSink",
           "FrameSink", "FRAMES_PER_TURN"]


def _plain_address(addr: str) -> str:
    """Show an IPv4-mapped IPv6 address (dual-stack listener) as plain dotted IPv4."""
    if addr.startswith("::ffff:") and "." in addr:
        return addr[7:]
    return addr.split("%", 1)[0] if addr.startswith("fe80") else addr


class CustomWinSocket(ReceiveSide, SendSide):
    """Base of every socket object: one connection at a time, its buffers, the VCL methods.

    ``CustomWinSocket(sock)`` wraps a connected OS socket, as the VCL's constructor does.
    ``RemoteAddress``/``RemotePort``/``LocalAddress``/``LocalPort`` are captured when the
    connection is made and stay valid in every event of it (OnError and OnDisconnect after a
    reset included); afterwards they read ``''`` / ``0`` / ``''`` / ``-1``. ``Data`` is the
    application's. See the module docstring for the delivery and thread rules.
    """

    def __init__(self, sock: Optional[socket.socket] = None) -> None:
        super().__init__(sock)
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

    # ------------------------------------------------------------------ addresses
    def _capture_addresses(self, sock: socket.socket, peer: Any = None) -> None:
        """Keep the peer's address for the whole connection (``getpeername`` fails after a
        reset); ``peer`` when known already (accept's result, the address connected to). The
        local address stays readable from the OS socket until it is released."""
        if peer is None:
            try:
                peer = sock.getpeername()
            except OSError:
                peer = None
        self._remote = peer

    def _local_name(self) -> Optional[tuple[Any, ...]]:
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

    # ------------------------------------------------------------------ event wiring
    @property
    def OnSocketEvent(self) -> Callable[[Any, "CustomWinSocket", int], None]:
        """Where this socket reports its events (``TCustomWinSocket.OnSocketEvent``):
        ``handler(Sender, Socket, SocketEvent)``, Sender and Socket being this socket.

        The components wire it to themselves (that is how OnRead and OnClientRead fire).
        Reading gives a callable that delivers to the current wiring, so a handler can see
        events first and pass them on::

            previous = sock.OnSocketEvent
            def spy(Sender, Socket, SocketEvent):
                log(SocketEvent)
                previous(Sender, Socket, SocketEvent)
            sock.OnSocketEvent = spy

        Assigning replaces the wiring (``None``: the events go nowhere). The handler runs in
        the thread that raised the event: a stThreadBlocking client's worker, unlike the
        component's events.
        """
        sink = self._event_sink
        return lambda Sender, Socket, SocketEvent: sink(Socket, SocketEvent)

    @OnSocketEvent.setter
    def OnSocketEvent(self, handler: Optional[Callable[[Any, "CustomWinSocket", int], None]]
                      ) -> None:
        if handler is None:
            self._event_sink = no_event
        elif not callable(handler):
            raise TypeError(f"OnSocketEvent takes a callable (or None), not {handler!r}")
        else:
            self._event_sink = lambda socket, event: handler(socket, socket, event)

    @property
    def OnErrorEvent(self) -> Callable[[Any, "CustomWinSocket", Any, Any], None]:
        """Where this socket reports its errors (``TCustomWinSocket.OnErrorEvent``):
        ``handler(Sender, Socket, ErrorEvent, ErrorCode)`` with ``ErrorCode`` a ``Var``
        (0 left in it: no exception follows). Read and assigned as :attr:`OnSocketEvent`."""
        sink = self._error_sink
        return lambda Sender, Socket, ErrorEvent, ErrorCode: sink(Socket, ErrorEvent, ErrorCode)

    @OnErrorEvent.setter
    def OnErrorEvent(self, handler: Optional[Callable[[Any, "CustomWinSocket", Any, Any], None]]
                     ) -> None:
        if handler is None:
            self._error_sink = no_error
        elif not callable(handler):
            raise TypeError(f"OnErrorEvent takes a callable (or None), not {handler!r}")
        else:
            self._error_sink = lambda socket, event, code: handler(socket, socket, event, code)

    # ------------------------------------------------------------------ ASyncStyles
    @property
    def ASyncStyles(self) -> frozenset[AsyncStyle]:
        """The notifications this socket reports (``TCustomWinSocket.ASyncStyles``): a
        frozenset of ``asRead``, ``asWrite``, ``asOOB``, ``asAccept``, ``asConnect``,
        ``asClose``; empty for a blocking socket.

        Default ``{asRead, asWrite, asConnect, asClose}`` (a listening socket: ``{asAccept}``).
        Setting the empty set makes the socket blocking (``ClientType`` ctBlocking,
        ``ServerType`` stThreadBlocking) and a non-empty one non-blocking, as in the VCL;
        switching is refused on an open socket (ESocketError ``Can't change value while
        socket is active``), since a connection keeps its mode. Without ``asRead`` OnRead is
        not fired: bytes wait in the receive buffer (reading stops at its high-water mark) for
        ``ReceiveText`` and friends; without ``asWrite`` OnWrite is not fired. Setting either
        back on an open socket fires the event that is due, as Winsock does. ``asConnect``,
        ``asClose``, ``asAccept`` and ``asOOB`` are kept for the VCL's sake, but OnConnect,
        OnDisconnect and accepting always happen (the components' ``Active`` depends on
        them), and out-of-band data is not supported. Values other than AsyncStyle raise
        ESocketError.
        """
        return frozenset() if self._style_blocking() else self._async_styles

    @ASyncStyles.setter
    def ASyncStyles(self, value: Iterable[int]) -> None:
        try:
            styles = frozenset(AsyncStyle(int(item)) for item in value)
        except (TypeError, ValueError):
            raise ESocketError(f"Invalid ASyncStyles {value!r}: must be a set of asRead, "
                               "asWrite, asOOB, asAccept, asConnect, asClose") from None
        if bool(styles) == self._style_blocking():
            self._set_style_blocking(not styles)
        if not styles:
            return
        before = self._async_styles
        if styles == type(self)._async_styles:
            self.__dict__.pop("_async_styles", None)
        else:
            self._async_styles = styles
        self._apply_styles(quiet=self._blocking and not self._worker_served)
        self._styles_enabled((asRead in styles) - (asRead in before),
                             (asWrite in styles) - (asWrite in before))

    def _style_blocking(self) -> bool:
        """Does ASyncStyles read empty? (the socket's mode decides it)."""
        return self._blocking

    def _set_style_blocking(self, blocking: bool) -> None:
        """Switch the mode because ASyncStyles became (non-)empty."""
        if blocking != self._blocking:
            if self._life.phase is not Phase.CLOSED:
                raise ESocketError("Can't change value while socket is active")
            self._blocking = blocking

    def _styles_enabled(self, read: int, write: int) -> None:
        """asRead / asWrite came back (1) on an open socket: the event that is due, later."""
        pump = self._pump
        if pump is None or (read < 1 and write < 1):
            return
        phase = self._life.phase
        if read > 0 and phase in READ_PHASES:
            with self._mutex:
                self._rx.notified = False
            pump.call_soon(self._renotify)
        t = self._transport
        if write > 0 and phase in WRITE_PHASES and t is not None and not t.tx.items:
            pump.call_soon(self.write_drained)

    # ------------------------------------------------------------------ lookups
    def LookupName(self, Name: str) -> str:
        """The first address of host ``Name`` as text (``TCustomWinSocket.LookupName``).

        Waits for the resolver in the calling thread (the components look ``Host`` up off
        it). An unknown name raises ESocketError 11001 (API 'getaddrinfo') where the VCL
        returned ``0.0.0.0``, which connects to this machine; with an error procedure
        installed (:func:`SetErrorProc`) it gets the code and ``'0.0.0.0'`` is returned.
        """
        try:
            return address_of(Name)
        except ESocketError as error:
            raise_error(error)
            return "0.0.0.0"

    def LookupService(self, Service: str) -> int:
        """The TCP port of ``Service`` (``'http'`` → 80; digits are the port), as
        ``TCustomWinSocket.LookupService``. An unknown name raises ESocketError 10109 (API
        'getservbyname') where the VCL returned 0; with an error procedure installed it gets
        the code and 0 is returned."""
        try:
            return service_port(Service, 0)
        except ESocketError as error:
            raise_error(error)
            return 0
