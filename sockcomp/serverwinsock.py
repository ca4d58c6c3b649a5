"""The server's socket objects: ``ServerWinSocket`` (listening) and ``ServerClientWinSocket``.

Accepting always runs on the component's thread (its pump). In ``stNonBlocking`` mode each
accepted connection is driven by the same pump; in ``stThreadBlocking`` mode it is blocking and
served by a ``ServerClientThread`` from the thread cache (:mod:`sockcomp.threads`), whose events
are synchronized back to the component's thread.
"""
from __future__ import annotations

import errno
import socket
import ssl
import threading
from typing import Any, Callable, Optional, Union

from ._pump import READ, current_pump
from .enums import ErrorEvent, ServerType, SocketState, seConnect, seListen
from .errors import ESocketError, HandleException
from .threads import SHUTDOWN_WAIT, ServerClientThread, Synchronizer, ThreadCache
from ._sendqueue import close_quietly
from .var import Var
from .winsock import (
    CustomWinSocket,
    ErrorSink,
    EventSink,
    FrameSink,
    _no_error,
    _no_event,
    _no_frame,
)

__all__ = ["ServerWinSocket", "ServerClientWinSocket"]


class ServerClientWinSocket(CustomWinSocket):
    """The server's end of one accepted connection.

    ``ServerClientWinSocket(Socket, ServerWinSocket)`` is what an OnGetSocket handler calls
    (``Socket`` is the handle it was given); subclasses may add state and methods.
    """

    def __init__(self, Socket: Union[int, socket.socket],
                 ServerWinSocket: "ServerWinSocket") -> None:
        if isinstance(Socket, socket.socket):
            sock = Socket
        else:
            pending = ServerWinSocket._pending.pop(Socket, None)
            sock = pending if pending is not None else socket.socket(fileno=Socket)
        super().__init__(sock)
        self._server = ServerWinSocket
        self._event_sink = ServerWinSocket._client_event
        self._error_sink = ServerWinSocket._client_error
        self._frame_sink = ServerWinSocket._client_frame
        # the listening socket's per-connection settings are the defaults of its clients
        self._copy_settings(ServerWinSocket)
        self._apply_options()
        self._blocking = ServerWinSocket.ServerType == ServerType.stThreadBlocking
        if not self._blocking:  # events fire on the component's thread: straight to its sinks
            self._event_sink = ServerWinSocket.client_event_sink
            self._error_sink = ServerWinSocket.client_error_sink
            self._frame_sink = ServerWinSocket.client_frame_sink
        self._pump = ServerWinSocket._pump
        with ServerWinSocket._conn_lock:
            ServerWinSocket._connections.append(self)
        if self._blocking:
            sock.setblocking(True)
        else:
            sock.setblocking(False)
            self._attach(READ)

    @property
    def ServerWinSocket(self) -> "ServerWinSocket":
        """The listening socket that accepted this connection."""
        return self._server

    def _after_disconnect(self) -> None:
        self._server._remove(self)

    def _report_exception(self, exc: BaseException) -> None:
        sync = self._server._sync
        if self._blocking and sync is not None and not sync._pump.in_own_thread():
            sync.call(HandleException, exc)  # a worker's error: the hook runs where events do
        else:
            HandleException(exc)


class ServerWinSocket(CustomWinSocket):
    """The listening socket of a ServerSocket: accepts clients and keeps ``Connections``."""

    def __init__(self, sock: Optional[socket.socket] = None) -> None:
        super().__init__(sock)
        self._server_type = ServerType.stNonBlocking
        self._connections: list[ServerClientWinSocket] = []
        self._conn_lock = threading.Lock()
        self._pending: dict[int, socket.socket] = {}
        self._threads = ThreadCache()
        self._sync: Optional[Synchronizer] = None
        #: Where the server reports client notifications (set by the ServerSocket component).
        self.client_event_sink: EventSink = _no_event
        self.client_error_sink: ErrorSink = _no_error
        self.client_frame_sink: FrameSink = _no_frame
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
        #: stThreadBlocking: client events (SocketEvent) and thread events (True: start, False:
        #: end) that nobody handles, so workers skip their Synchronize round trip. Refreshed by
        #: ``unhandled_events_hook`` in the component's thread before each thread gets a client;
        #: the component empties both sets as soon as a handler is connected. seConnect of a
        #: client with an IdleTimeout is never skipped: its idle watch starts in that thread.
        self.unhandled_client_events: frozenset[int] = frozenset()
        self.unhandled_thread_events: frozenset[bool] = frozenset()
        self.unhandled_events_hook: Callable[[], None] = lambda: None

    @property
    def ThreadCacheSize(self) -> int:
        """How many idle threads stay cached for reuse (stThreadBlocking)."""
        return self._threads.size

    @ThreadCacheSize.setter
    def ThreadCacheSize(self, value: int) -> None:
        self._threads.resize(int(value))

    @property
    def ActiveThreads(self) -> int:
        """Threads currently serving a connection."""
        return self._threads.count(busy=True)

    @property
    def IdleThreads(self) -> int:
        """Cached threads waiting for a connection."""
        return self._threads.count(busy=False)

    def GetClientThread(self, ClientSocket: "ServerClientWinSocket") -> Any:
        """The thread serving ``ClientSocket``, or None."""
        return self._threads.find(ClientSocket)

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

    def _client_event(self, client: CustomWinSocket, event: int) -> None:
        sync = self._sync
        if sync is not None and not sync._pump.in_own_thread():
            if event in self.unhandled_client_events and not (
                    event == seConnect and client.IdleTimeout):
                return
            sync.call(self.client_event_sink, client, event)
        else:
            self.client_event_sink(client, event)

    def _client_error(self, client: CustomWinSocket, event: ErrorEvent, code: Var[int]) -> None:
        sync = self._sync
        if sync is not None and not sync._pump.in_own_thread():
            sync.call(self.client_error_sink, client, event, code)
        else:
            self.client_error_sink(client, event, code)

    def _client_frame(self, client: CustomWinSocket, message: Any) -> None:
        sync = self._sync
        if sync is not None and not sync._pump.in_own_thread():
            sync.call(self.client_frame_sink, client, message)
        else:
            self.client_frame_sink(client, message)

    def _synchronizer(self) -> Synchronizer:
        """The Synchronizer of the component's thread (exists once the server has listened)."""
        if self._sync is None:
            self._sync = Synchronizer(current_pump())
        return self._sync

    def _thread_event(self, thread: Any, started: bool) -> None:
        if started in self.unhandled_thread_events:
            return
        self._synchronizer().call(self.thread_event_sink, thread, started)

    def _remove(self, client: ServerClientWinSocket) -> None:
        with self._conn_lock:
            try:
                self._connections.remove(client)
            except ValueError:
                pass

    # -- listening -------------------------------------------------------------------------
    def Listen(self, Address: str, Service: str, Port: int,
               QueueSize: int = socket.SOMAXCONN) -> None:
        """Bind and listen. '' listens on every interface, IPv6 and IPv4 alike.

        Errors (port in use, unknown service, bad address) raise ``ESocketError`` to the caller;
        OnListen fires after bind, before ``listen()``, as in the VCL.
        """
        if self._state != SocketState.ssClosed:
            raise ESocketError("Can't listen on an open socket")
        port: Union[int, str] = Service if Service else Port
        if isinstance(port, str) and not port.isdigit():
            try:
                port = socket.getservbyname(port, "tcp")
            except OSError as exc:
                raise ESocketError.from_code(10109, "getservbyname") from exc
        sock = self._bind(Address, int(port))
        self._sock = sock
        self._pump = current_pump()
        self._sync = Synchronizer(self._pump)
        self._threads.closing = False
        # listen() before OnListen: a handler that announces "ready" (to another process, a
        # test, a supervisor) must not invite connections that listen() would still refuse.
        # Inside OnListen the VCL's view holds: Active True, Connected still False.
        try:
            sock.listen(QueueSize)
        except OSError as exc:
            self._sock = None
            sock.close()
            raise ESocketError.from_os_error(exc, "listen") from exc
        sock.setblocking(False)
        self._state = SocketState.ssConnecting  # listening, but Connected reads False in OnListen
        self._fire(seListen)
        if self._sock is not sock:
            return  # closed from OnListen
        self._state = SocketState.ssListening
        self._attach(READ)

    def _bind(self, address: str, port: int) -> socket.socket:
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
        for family, sockaddr, dual in candidates:
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
            except OSError as exc:
                last = exc
                continue
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if dual:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                sock.bind(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                last = exc
                if exc.errno == errno.EADDRINUSE:
                    break
        assert last is not None
        raise ESocketError.from_os_error(last, "bind") from last

    def _on_ready(self, events: int) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(64):
            try:
                conn, _addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                self._accept_failed(exc)
                return
            self._accepted(conn)
            if self._sock is not sock:
                return

    def _accept_failed(self, exc: OSError) -> None:
        """Out of descriptors or similar: report, and pause accepting briefly (no busy loop)."""
        from PySide6.QtCore import QTimer
        HandleException(ESocketError.from_os_error(exc, "accept"))
        sock = self._sock
        if sock is not None and self._pump is not None:
            self._pump.modify(sock.fileno(), 0)
            QTimer.singleShot(100, self._pump, self._resume_accept)

    def _resume_accept(self) -> None:
        if self._sock is not None and self._pump is not None:
            self._pump.modify(self._sock.fileno(), READ)

    def _refuse(self, conn: socket.socket) -> None:
        """Over MaxConnections: say so (best effort, never blocking) and close."""
        self.RefusedConnections += 1
        if self.BannerTooBusy:
            try:
                conn.send(self.BannerTooBusy.encode(self.Encoding), socket.MSG_DONTWAIT)
            except OSError:
                pass
        close_quietly(conn, graceful=True)

    def _accepted(self, conn: socket.socket) -> None:
        if self.MaxConnections and len(self._connections) >= self.MaxConnections:
            self._refuse(conn)
            return
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        fd = conn.fileno()
        self._pending[fd] = conn
        try:
            client = self.get_socket_hook(fd)
            if client is None:
                client = ServerClientWinSocket(conn, self)
        except BaseException:
            if self._pending.pop(fd, None) is conn:
                conn.close()
            raise
        self._pending.pop(fd, None)
        self.accept_hook(client)
        if self.tls_context is not None and client.Connected:
            client._tls = self.tls_context
            client._tls_server_side = True
        if client._blocking:
            if client.Connected:
                self._assign_thread(client)  # the thread does the TLS handshake, if any
            return
        if client._tls is not None and client.Connected:
            client._start_tls()  # OnClientConnect once the handshake succeeds
        elif client.Connected:
            client._connected()

    def _assign_thread(self, client: ServerClientWinSocket) -> None:
        """Reuse an idle cached thread, else OnGetThread, else a default ServerClientThread."""
        self.unhandled_events_hook()
        thread = self._threads.take_idle()
        if thread is not None:
            thread.ReActivate(client)
            return
        thread = self.get_thread_hook(client)
        if thread is None:
            thread = ServerClientThread(False, client)
        elif not isinstance(thread, ServerClientThread):
            client.Close()
            raise TypeError("OnGetThread must supply a ServerClientThread (or leave None)")

    def Close(self, ForceClosed: bool = False) -> None:
        """Stop listening: every client is closed (OnClientDisconnect each), the port is freed.

        ``ForceClosed`` closes the clients abortively (their queued data is dropped).

        Thread-blocking servers terminate their threads, unblock every thread waiting on its
        socket, and wait for them (serving their synchronized calls meanwhile), so each thread
        ends with OnThreadEnd before Close returns.
        """
        if self._state == SocketState.ssClosed or self._disconnecting:
            return
        sock = self._sock
        if sock is not None and self._pump is not None:
            self._pump.modify(sock.fileno(), 0)  # accept nothing more
        threads = self._threads.all()
        if threads:
            self._threads.closing = True
            for thread in threads:
                thread.KeepInCache = False
                thread.Terminate()
                client = thread.ClientSocket
                if client is not None and client._sock is not None:
                    try:
                        socket.socket.shutdown(client._sock, socket.SHUT_RDWR)
                    except OSError:
                        pass
            assert self._sync is not None
            self._sync.wait_until(lambda: not any(t.is_alive() for t in threads), SHUTDOWN_WAIT)
        for client in reversed(self.Connections):
            client.Close(ForceClosed)
        self._disconnect(graceful=False)
