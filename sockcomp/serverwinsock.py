"""The server's socket objects: ``ServerWinSocket`` (listening) and ``ServerClientWinSocket``.

Accepting always runs on the component's thread (its pump). In ``stNonBlocking`` mode each
accepted connection is driven by the same pump; in ``stThreadBlocking`` mode it is served by a
``ServerClientThread`` from the thread cache (:mod:`sockcomp.threads`), whose events are
synchronized back to the component's thread (:mod:`sockcomp._synchronize`).

Resource failures while accepting never leave anything half-registered: an ``accept()`` that
fails (no descriptor: 10024) is the listener's ``OnError(eeAccept)``, and accepting pauses
briefly; a connection whose worker thread cannot start is that client's
``OnClientError(eeAccept, 10055)`` followed by its ``OnClientDisconnect``.
"""
from __future__ import annotations

import errno
import socket
import ssl
import threading
import weakref
from typing import Any, Callable, Optional, Union

from ._lifecycle import Input, Phase
from ._pump import ERRORS, READ, current_pump
from ._resolve import service_port
from ._synchronize import Synchronizer
from ._threadserving import ThreadServing
from ._transport import close_quietly
from .enums import ServerType, asAccept, eeAccept
from .errors import (
    ESocketError, HandleException, cannot_create_socket, describe, error_text, raise_error,
    wsa_code,
)
from .threads import SHUTDOWN_WAIT, ThreadCache
from ._connection import ErrorSink, EventSink, FrameSink, no_error, no_event, no_frame
from .winsock import CustomWinSocket

__all__ = ["ServerWinSocket", "ServerClientWinSocket"]

#: How long accepting pauses after accept() failed for want of resources (ms).
ACCEPT_PAUSE_MS = 100


def bind_listener(address: str, port: int) -> socket.socket:
    """A socket bound to ``address``:``port`` ('' = every interface, IPv6 and IPv4 alike on
    one dual-stack socket), with SO_REUSEADDR; raises ESocketError."""
    if address:
        try:
            infos = socket.getaddrinfo(address, port, socket.AF_UNSPEC, socket.SOCK_STREAM,
                                       0, socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise ESocketError.from_os_error(exc, "getaddrinfo") from exc
        family, type_, proto, _, sockaddr = infos[0]
        candidates = [(family, sockaddr, False)]
    else:
        candidates = []
        if socket.has_ipv6:
            candidates.append((socket.AF_INET6, ("::", port, 0, 0), True))
        candidates.append((socket.AF_INET, ("0.0.0.0", port), False))
    last: Optional[OSError] = None
    api = "bind"
    for family, sockaddr, dual in candidates:
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:
            last, api = cannot_create_socket(exc), "socket"
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if dual:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            last, api = exc, "bind"
            if exc.errno == errno.EADDRINUSE:
                break
    assert last is not None
    raise ESocketError.from_os_error(last, api) from last


class ServerClientWinSocket(CustomWinSocket):
    """The server's end of one accepted connection.

    ``ServerClientWinSocket(Socket, ServerWinSocket)`` is what an OnGetSocket handler calls
    (``Socket`` is the handle it was given); subclasses may add state and methods.
    """

    def __init__(self, Socket: Union[int, socket.socket],
                 ServerWinSocket: "ServerWinSocket") -> None:
        server = ServerWinSocket
        if isinstance(Socket, socket.socket):
            sock = Socket
        else:
            pending = server.take_pending(Socket)
            sock = pending if pending is not None else socket.socket(fileno=Socket)
        super().__init__()
        self._server = server
        # the listening socket's per-connection settings are the defaults of its clients
        self._copy_settings(server)
        self._tls_context = server.tls_context
        self._tls_server_side = True
        self._pump = server.pump
        threaded = server.ServerType == ServerType.stThreadBlocking
        self._blocking = self._worker_served = threaded
        if threaded:  # events come from the worker: synchronized into the component's thread
            self._event_sink = server.worker_event
            self._error_sink = server.worker_error
            self._frame_sink = server.worker_frame
        else:
            self._event_sink = server.client_event_sink
            self._error_sink = server.client_error_sink
            self._frame_sink = server.client_frame_sink
        #: The ServerClientThread that serves this connection (stThreadBlocking), or None.
        self.worker: Any = None
        with self._mutex:
            self._life.step(Input.ACCEPT)
        self._open_transport(sock)
        self._capture_addresses(sock, server.accepted_peer(sock.fileno()))
        server.add_client(self)

    @property
    def ServerWinSocket(self) -> "ServerWinSocket":
        """The listening socket that accepted this connection."""
        return self._server

    def start_connection(self) -> None:
        """After OnAccept: the TLS handshake when TLS is on, then OnClientConnect (and
        OnClientWrite). In thread mode the worker calls it and waits for the handshake."""
        if self._life.phase is not Phase.ACCEPTED:
            return
        if self._tls_context is not None:
            self._begin_tls()
        else:
            self._established()

    def _handshake_budget(self, timeout: int) -> Optional[float]:
        idle = self.settings.IdleTimeout
        budgets = [b for b in (timeout, idle) if b]
        return min(budgets) if budgets else None

    def abandon_events(self) -> None:
        """The server's component is gone: this connection fires nothing any more."""
        self._event_sink = no_event
        self._error_sink = no_error
        self._frame_sink = no_frame

    def _after_disconnect(self) -> None:
        self._server.remove_client(self)

    def _report_exception(self, exc: BaseException) -> None:
        self._server.report_exception(exc)


class _ComponentEvent:
    """An event of ``ServerWinSocket`` that is its ServerSocket's (the VCL's pass-through:
    the two are one). Reading gives the component's signal (``.connect`` adds a handler);
    assigning sets the one handler assigned so (``None`` removes it), as ``:=`` in Pascal."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, sock: Optional["ServerWinSocket"], owner: Optional[type] = None) -> Any:
        if sock is None:
            return self
        return getattr(sock.component(), self.name)

    def __set__(self, sock: "ServerWinSocket", handler: Optional[Callable[..., Any]]) -> None:
        sock.component().assign_handler(self.name, handler)


class ServerWinSocket(ThreadServing, CustomWinSocket):
    """The listening socket of a ServerSocket: accepts clients and keeps ``Connections``.

    Its events (``OnGetSocket``, ``OnGetThread``, ``OnThreadStart``, ``OnThreadEnd`` and the
    ``OnClient*`` events) are its ServerSocket's signals, so ``Socket.OnClientRead`` and
    ``ServerSocket.OnClientRead`` are one event, as in the VCL. The component-writer hooks
    :meth:`GetClientSocket`, :meth:`GetServerThread` and :meth:`DoCreateThread` may be
    overridden by a subclass that a ServerSocket subclass creates.
    """

    _async_styles = frozenset((asAccept,))

    OnGetSocket = _ComponentEvent()
    OnGetThread = _ComponentEvent()
    OnThreadStart = _ComponentEvent()
    OnThreadEnd = _ComponentEvent()
    OnClientConnect = _ComponentEvent()
    OnClientRead = _ComponentEvent()
    OnClientWrite = _ComponentEvent()
    OnClientDisconnect = _ComponentEvent()
    OnClientError = _ComponentEvent()
    OnClientHalfClose = _ComponentEvent()
    OnClientLineReceived = _ComponentEvent()
    OnClientPacketReceived = _ComponentEvent()

    def __init__(self, sock: Optional[socket.socket] = None) -> None:
        super().__init__(sock)
        self._server_type = ServerType.stNonBlocking
        self._connections: list[ServerClientWinSocket] = []
        self._conn_lock = threading.Lock()
        self._pending: dict[int, socket.socket] = {}
        self._peers: dict[int, Any] = {}  # accepted handle -> the peer address accept() gave
        self._accept_timer: Any = None
        #: The server's worker threads (stThreadBlocking).
        self.threads = ThreadCache()
        self._sync: Optional[Synchronizer] = None
        #: Where the server reports client notifications (set by the ServerSocket component).
        self.client_event_sink: EventSink = no_event
        self.client_error_sink: ErrorSink = no_error
        self.client_frame_sink: FrameSink = no_frame
        #: TLS context for accepted connections (set by the component from its TLS properties).
        self.tls_context: Optional[ssl.SSLContext] = None
        #: Most clients at once (0: no limit). Beyond it a new connection is accepted, sent
        #: ``BannerTooBusy`` (if any) and closed at once, without any event.
        self.MaxConnections = 0
        self.BannerTooBusy = ""
        #: Connections refused because of MaxConnections since the server opened.
        self.RefusedConnections = 0
        #: Asked for each accepted handle: returns the ServerClientWinSocket to use, or None.
        self.get_socket_hook: Callable[[int], Optional[ServerClientWinSocket]] = lambda fd: None
        #: Told about each new client after OnGetSocket (fires OnAccept in the component).
        self.accept_hook: Callable[[ServerClientWinSocket], None] = lambda client: None
        #: Asked for a thread for each client in stThreadBlocking mode when none is idle
        #: (fires OnGetThread): returns a ServerClientThread or None for the default one.
        self.get_thread_hook: Callable[[ServerClientWinSocket], Any] = lambda client: None
        #: Told when a thread starts (True) or ends (False) (OnThreadStart / OnThreadEnd).
        self.thread_event_sink: Callable[[Any, bool], None] = lambda thread, started: None
        #: Client events (SocketEvent) and thread events (True: start, False: end) that nobody
        #: handles, so workers skip their Synchronize round trip (the component skips them in
        #: its own thread). Refreshed by ``unhandled_events_hook`` in the component's thread
        #: before each batch of accepts; the component empties both sets as soon as a handler is
        #: connected. seConnect of a client with an IdleTimeout is never skipped: its idle watch
        #: starts in that thread.
        self.unhandled_client_events: frozenset[int] = frozenset()
        self.unhandled_thread_events: frozenset[bool] = frozenset()
        self.unhandled_events_hook: Callable[[], None] = lambda: None
        self._component: Callable[[], Any] = lambda: None

    def set_component(self, component: Any) -> None:
        """The ServerSocket whose events are this socket's (kept weakly)."""
        self._component = weakref.ref(component)

    def component(self) -> Any:
        """The ServerSocket this listening socket belongs to; ESocketError without one."""
        comp = self._component()
        if comp is None:
            raise ESocketError("This ServerWinSocket has no ServerSocket: its events are "
                               "the component's")
        return comp

    # -- properties --------------------------------------------------------------------------

    @property
    def ServerType(self) -> ServerType:
        """stNonBlocking or stThreadBlocking; not changeable while listening."""
        return self._server_type

    @ServerType.setter
    def ServerType(self, value: Union[ServerType, int]) -> None:
        value = ServerType(int(value))
        if value != self._server_type:
            if self.Connected:
                raise ESocketError("Can't change value while socket is active")
            self._server_type = value
            self.__dict__.pop("_async_styles", None)  # the VCL's rule: [asAccept] again

    def _style_blocking(self) -> bool:
        return self._server_type == ServerType.stThreadBlocking

    def _set_style_blocking(self, blocking: bool) -> None:
        self.ServerType = ServerType.stThreadBlocking if blocking else ServerType.stNonBlocking

    @property
    def Connections(self) -> list[ServerClientWinSocket]:
        """The live client connections (a copy; a closed client leaves it as soon as its
        OnClientDisconnect handler has returned)."""
        with self._conn_lock:
            return list(self._connections)

    @property
    def ActiveConnections(self) -> int:
        """How many clients are connected."""
        return len(self._connections)

    @property
    def pump(self) -> Any:
        """The component thread's readiness pump (once listening)."""
        return self._pump

    # -- the clients' side ---------------------------------------------------------------------
    def add_client(self, client: ServerClientWinSocket) -> None:
        with self._conn_lock:
            self._connections.append(client)

    def remove_client(self, client: ServerClientWinSocket) -> None:
        with self._conn_lock:
            try:
                self._connections.remove(client)
            except ValueError:
                pass

    def accepted_peer(self, handle: int) -> Any:
        """The peer address accept() gave for ``handle`` (None when not accepted here)."""
        return self._peers.pop(handle, None)

    def take_pending(self, handle: int) -> Optional[socket.socket]:
        """The accepted socket object behind ``handle`` (OnGetSocket receives the number)."""
        return self._pending.pop(handle, None)

    # -- listening -------------------------------------------------------------------------
    def _listen_failed(self, error: ESocketError) -> None:
        """Keep ``error`` as LastError/LastErrorMessage, then raise it (or the error proc)."""
        self.LastError = error
        self.LastErrorMessage = error_text(error.errno, error.ErrorCode)
        raise_error(error)

    def Listen(self, Name: str, Address: str, Service: str, Port: int,
               QueueSize: int = socket.SOMAXCONN, Block: Optional[bool] = None) -> None:
        """Bind and listen (``TCustomWinSocket.Listen``): on the host ``Name`` (looked up) or
        else the numeric ``Address``, '' for both meaning every interface, IPv6 and IPv4
        alike; on the port of ``Service`` (a name from the services database, or digits) or
        else ``Port``. ``QueueSize`` is the backlog of connections not yet accepted.
        ``Block`` True makes the server ``stThreadBlocking``, False ``stNonBlocking``, None
        (the default) keeps ``ServerType``.

        ``Name`` is looked up here, waiting for the resolver: a name from the hosts file is
        instant, a slow DNS server is not (use ``Address`` then). Errors (port in use 10048,
        unknown service 10109, bad address) raise
        ``ESocketError`` to the caller, or go to this thread's :func:`SetErrorProc`; OnListen
        fires once listening (Active True, Connected still False inside it).
        """
        if not self._life.allows(Input.LISTEN):
            raise ESocketError("Can't listen on an open socket")
        if Block is not None:
            self.ServerType = ServerType.stThreadBlocking if Block else ServerType.stNonBlocking
        try:
            sock = bind_listener(Name or Address, service_port(Service, Port))
        except ESocketError as error:
            self._listen_failed(error)
            return
        pump = self._pump = current_pump()
        self._sync = Synchronizer(pump)
        self.threads.closing = False
        # listen() before OnListen: a handler that announces "ready" (to another process, a
        # test, a supervisor) must not invite connections that listen() would still refuse.
        try:
            sock.listen(QueueSize)
        except OSError as exc:
            sock.close()
            self._listen_failed(ESocketError.from_os_error(exc, "listen"))
            return
        sock.setblocking(False)
        self._os_sock = sock
        with self._mutex:
            event = self._life.step(Input.LISTEN)
        self._fire(event)  # type: ignore[arg-type]
        with self._mutex:
            if self._life.phase is not Phase.ANNOUNCING or self._os_sock is not sock:
                return  # closed from OnListen
            self._life.step(Input.LISTENED)
        pump.register(sock.fileno(), self._on_ready, READ | ERRORS)

    # -- accepting -------------------------------------------------------------------------
    def _on_ready(self, events: int) -> None:
        sock = self._os_sock
        if sock is None:
            return
        self.unhandled_events_hook()
        for _ in range(64):
            try:
                conn, addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                self._accept_failed(exc)
                return
            self._accepted(conn, addr)
            if self._os_sock is not sock:
                return

    def _accept_failed(self, exc: OSError) -> None:
        """Out of descriptors or similar: the listener's OnError(eeAccept), then accepting
        pauses briefly (no busy loop) and resumes."""
        sock = self._os_sock
        if sock is not None and self._pump is not None:
            self._pump.modify(sock.fileno(), 0)
            if self._accept_timer is None:
                from PySide6.QtCore import QTimer
                self._accept_timer = QTimer(self._pump)
                self._accept_timer.setSingleShot(True)
                self._accept_timer.timeout.connect(self._resume_accept)
            self._accept_timer.start(ACCEPT_PAUSE_MS)
        code = wsa_code(exc)
        self.LastError = ESocketError.from_os_error(exc, "accept")
        text = describe(exc)
        left = self._report_error(eeAccept, code, text)
        if left:
            HandleException(ESocketError.asynchronous(left, "accept", text if left == code
                                                      else "", exc.errno))

    def _resume_accept(self) -> None:
        sock = self._os_sock
        if sock is not None and self._pump is not None and self._life.phase is Phase.LISTENING:
            self._pump.modify(sock.fileno(), READ | ERRORS)

    def _refuse(self, conn: socket.socket) -> None:
        """Over MaxConnections: say so (best effort, never blocking) and close."""
        self.RefusedConnections += 1
        if self.BannerTooBusy:
            try:
                conn.send(self.BannerTooBusy.encode(self.Encoding), socket.MSG_DONTWAIT)
            except OSError:
                pass
        close_quietly(conn, graceful=True)

    def _accepted(self, conn: socket.socket, addr: Any = None) -> None:
        if self.MaxConnections and len(self._connections) >= self.MaxConnections:
            self._refuse(conn)
            return
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        fd = conn.fileno()
        self._pending[fd] = conn
        self._peers[fd] = addr
        try:
            client = self.GetClientSocket(fd)
        except BaseException:
            self._peers.pop(fd, None)
            if self._pending.pop(fd, None) is conn:
                conn.close()
            raise
        self._pending.pop(fd, None)
        self._peers.pop(fd, None)
        self.accept_hook(client)
        if client.Phase is not Phase.ACCEPTED:
            return  # closed from OnGetSocket or OnAccept
        if client._worker_served:
            self._assign_thread(client)  # the thread does the TLS handshake, if any
        else:
            client.start_connection()

    # -- the component writer's hooks (TServerWinSocket's protected methods) ---------------
    def GetClientSocket(self, Socket: int) -> ServerClientWinSocket:
        """The socket object for the accepted handle ``Socket``: OnGetSocket's, else a new
        ServerClientWinSocket. Runs in the component's thread; override to make your own."""
        client = self.get_socket_hook(Socket)
        return client if client is not None else ServerClientWinSocket(Socket, self)

    def Close(self, ForceClosed: bool = False) -> None:
        """Stop listening: every client is closed (OnClientDisconnect each), the port is freed.

        ``ForceClosed`` closes the clients abortively (their queued data is dropped).

        Thread-blocking servers terminate their threads, unblock every thread waiting on its
        socket, and wait for them (serving their synchronized calls meanwhile), so each thread
        ends with OnThreadEnd before Close returns; a thread whose event handler is running
        right now (Close called inside it) ends, with its OnThreadEnd, once that handler
        returns.
        """
        if self._life.phase not in (Phase.ANNOUNCING, Phase.LISTENING):
            return
        sock = self._os_sock
        if sock is not None and self._pump is not None and \
                self._life.phase is Phase.LISTENING:
            self._pump.modify(sock.fileno(), 0)  # accept nothing more
        threads = self.threads.all()
        self.threads.closing = True
        for thread in threads:  # each ends its connection (OnClientDisconnect), then itself
            thread.KeepInCache = False
            thread.Terminate()
        if threads:
            sync = self.synchronizer
            busy = sync.callers_running()  # waiting on the handler that called Close()
            sync.wait_until(lambda: not any(t.is_alive() and t not in busy for t in threads),
                            SHUTDOWN_WAIT)
        for client in reversed(self.Connections):
            client.Close(ForceClosed)
        self._end(graceful=False)

    def abandon(self) -> None:
        """The ServerSocket is gone: close the listener and every client, firing nothing."""
        self.client_event_sink = no_event
        self.client_error_sink = no_error
        self.client_frame_sink = no_frame
        self.thread_event_sink = lambda thread, started: None
        self.accept_hook = lambda client: None
        self.get_socket_hook = lambda fd: None
        self.get_thread_hook = lambda client: None
        self._event_sink = no_event
        self._error_sink = no_error
        for client in self.Connections:
            client.abandon_events()
        self.Close()

    def drop_os_sockets(self) -> None:
        for client in self.Connections:
            client.drop_os_sockets()
        super().drop_os_sockets()

    def Disconnect(self, Socket: Optional[int] = None) -> None:
        """``TServerWinSocket.Disconnect``: shut the whole server down, as :meth:`Close`."""
        if Socket is None or Socket == self.SocketHandle:
            self.Close()

    def _release(self, graceful: bool) -> None:
        sock = self._os_sock
        if sock is not None and self._pump is not None:
            self._pump.unregister(sock.fileno())
        timer, self._accept_timer = self._accept_timer, None
        if timer is not None and self._pump is not None:
            timer.stop()
            self._pump.delete_soon(timer)  # the pump outlives the listener
        super()._release(graceful)

