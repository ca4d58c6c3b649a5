"""Thread-blocking servers: ``ServerClientThread`` and the thread cache.

In ``stThreadBlocking`` mode each connection is served by a ``ServerClientThread`` running
``ClientExecute``, where waiting on the network is allowed. Accepting stays on the component's
thread, so OnGetSocket, OnAccept and OnGetThread run there directly. **Every event a worker
raises is delivered in the component's thread too** (:mod:`sockcomp._synchronize`): the worker
waits until it has been handled, so ``Var`` results come back and handlers need no locking.
That is safer than the VCL, whose thread-mode events ran unsynchronized in workers.

**Where code runs, and what may wait:** ``ClientExecute`` runs in the worker: its socket calls
(``ReceiveBuf``, ``SendBuf``, a ``WinSocketStream``) wait for the network. Event handlers run
in the component's thread: there the same calls never wait (receives return what the worker
has read, sends queue under ``SendQueueLimit``), so the GUI never freezes on a slow peer.
"""
from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol

from ._waits import Doorbell, WakeUp, set_thread_wake
from .errors import HandleException as _hook_exception
from .var import Var

if TYPE_CHECKING:
    from ._synchronize import Synchronizer


class ServedClient(Protocol):
    """What a thread uses of the connection it serves (a ServerClientWinSocket)."""

    worker: Any
    _event_sink: Callable[[Any, int], None]
    _error_sink: Callable[[Any, Any, Var[int]], None]

    @property
    def Connected(self) -> bool: ...
    @property
    def SocketHandle(self) -> int: ...
    @property
    def ServerWinSocket(self) -> "_Server": ...
    def start_connection(self) -> None: ...
    def read_into_buffer(self, timeout_ms: Optional[int] = None) -> bool: ...
    def Close(self, ForceClosed: bool = False) -> None: ...


class _Server(Protocol):
    """What a thread uses of its server (a ServerWinSocket)."""

    threads: "ThreadCache"

    @property
    def synchronizer(self) -> "Synchronizer": ...
    def ThreadStart(self, Thread: Any) -> None: ...
    def ThreadEnd(self, Thread: Any) -> None: ...
    def worker_event(self, client: Any, event: int) -> None: ...
    def worker_error(self, client: Any, event: Any, code: Var[int]) -> None: ...

__all__ = ["ServerClientThread", "ThreadCache", "SHUTDOWN_WAIT", "ServedClient"]

#: How long server ``Close()`` waits for busy threads before leaving them to end on their
#: own (s): only threads stuck in code of their own (not waiting on a socket) take that long.
SHUTDOWN_WAIT = 10.0


class ThreadCache:
    """The server's threads, busy and idle, with the VCL's KeepInCache rule."""

    def __init__(self) -> None:
        self._threads: list[ServerClientThread] = []
        self.lock = threading.Lock()
        self.size = 0
        self.closing = False

    def register(self, thread: "ServerClientThread") -> None:
        with self.lock:
            if thread not in self._threads:
                self._threads.append(thread)
                thread.KeepInCache = not self.closing and len(self._threads) <= self.size

    def remove(self, thread: "ServerClientThread") -> None:
        with self.lock:
            if thread in self._threads:
                self._threads.remove(thread)

    def take_idle(self) -> Optional["ServerClientThread"]:
        with self.lock:
            for thread in self._threads:
                if thread._idle and not thread.Terminated:
                    thread._idle = False
                    return thread
        return None

    def resize(self, size: int) -> None:
        """The VCL rule: only the first min(old, new) threads stay flagged KeepInCache."""
        with self.lock:
            start = min(self.size, size)
            self.size = size
            for index, thread in enumerate(self._threads):
                thread.KeepInCache = index < start

    def all(self) -> list["ServerClientThread"]:
        with self.lock:
            return list(self._threads)

    def count(self, busy: bool) -> int:
        with self.lock:
            return sum(1 for t in self._threads if (t._client is not None) == busy and
                       (busy or t._idle))

    def set_idle(self, thread: "ServerClientThread") -> None:
        with self.lock:
            thread._idle = True


class ServerClientThread(threading.Thread):
    """Serves one connection at a time for a thread-blocking ServerSocket (``TServerClientThread``).

    Subclass it and override :meth:`ClientExecute`; supply your class from OnGetThread::

        class EchoThread(ServerClientThread):
            def ClientExecute(self):
                stream = WinSocketStream(self.ClientSocket, 60000)
                while not self.Terminated and self.ClientSocket.Connected:
                    if stream.WaitForData(60000):
                        data = stream.Read(4096)
                        if not data:
                            self.ClientSocket.Close()   # peer closed
                        else:
                            stream.Write(data)

        def on_get_thread(Sender, ClientSocket, SocketThread):
            SocketThread.value = EchoThread(False, ClientSocket)

    A thread kept in the cache (``KeepInCache``) waits for its next connection instead of
    ending; reset per-connection state at the start of ``ClientExecute``. The default
    ``ClientExecute`` reads what arrives and delivers OnClientRead to the component's thread
    (no polling). A thread created suspended is started by the server.
    """

    def __init__(self, CreateSuspended: bool, ClientSocket: ServedClient) -> None:
        server = ClientSocket.ServerWinSocket
        super().__init__(name=f"sockcomp-client-{ClientSocket.SocketHandle}", daemon=True)
        self._server: _Server = server
        self._client: Optional[ServedClient] = None
        self._activated = Doorbell()  # rung by ReActivate and Terminate
        self._terminated = False
        self._idle = False
        self._wake = WakeUp()
        #: Kept for the next connection when True (decided by ThreadCacheSize at registration).
        self.KeepInCache = False
        #: Free for the application.
        self.Data: Any = None
        self.ReActivate(ClientSocket)
        if not CreateSuspended:
            self.start()

    # -- VCL surface -------------------------------------------------------------------------
    @property
    def ClientSocket(self) -> Optional[ServedClient]:
        """The connection being served (None while idle in the cache)."""
        return self._client

    @property
    def ServerSocket(self) -> _Server:
        """The listening socket this thread works for."""
        return self._server

    @property
    def Terminated(self) -> bool:
        """Set by :meth:`Terminate` (and by server shutdown); ClientExecute should poll it."""
        return self._terminated

    def Terminate(self) -> None:
        """Ask the thread to finish: sets Terminated and ends its waits on the network."""
        self._terminated = True
        self._activated.ring()
        self._wake.set()

    def Resume(self) -> None:
        """Start a thread created with ``CreateSuspended=True``."""
        if not self.is_alive() and self.ident is None:
            self.start()

    def ReActivate(self, ClientSocket: ServedClient) -> None:
        """Hand the thread a (new) connection and wake it (called by the server). The
        connection's events go through this thread's :meth:`Event` and :meth:`Error` when a
        subclass overrides them."""
        self._client = ClientSocket
        ClientSocket.worker = self
        cls = type(self)
        if cls.Event is not ServerClientThread.Event:
            ClientSocket._event_sink = lambda socket, event: self.Event(event)
        if cls.Error is not ServerClientThread.Error:
            ClientSocket._error_sink = lambda socket, event, code: self.Error(event, code)
        self._server.threads.register(self)
        self._activated.ring()

    def Event(self, SocketEvent: int) -> None:
        """An event of the connection served (``TServerClientThread.Event``), in the thread
        that raised it (this one, mostly): the default delivers it to the component's thread
        (OnClientRead and the others). Override to see events first; call ``super()``."""
        client = self._client
        if client is not None:
            self._server.worker_event(client, SocketEvent)

    def Error(self, ErrorEvent: Any, ErrorCode: Var[int]) -> None:
        """An error of the connection served (``TServerClientThread.Error``): the default
        delivers OnClientError to the component's thread. An override may set
        ``ErrorCode.value`` (0: nothing reaches the exception hook)."""
        client = self._client
        if client is not None:
            self._server.worker_error(client, ErrorEvent, ErrorCode)

    def Synchronize(self, Method: Callable[[], Any]) -> Any:
        """Run ``Method()`` in the component's thread, wait, and return its result."""
        return self._server.synchronizer.call(Method)

    def HandleException(self, exc: Optional[BaseException] = None) -> None:
        """Report an exception (default: the one being handled) to the application hook,
        in the component's thread, as ``Application.ShowException`` would."""
        if exc is None:
            exc = sys.exc_info()[1]
        if exc is not None:
            error = exc
            self.Synchronize(lambda: _hook_exception(error))

    def ClientExecute(self) -> None:
        """Serve the connection. The default reads what arrives (waiting here, in the worker)
        and delivers OnClientRead in the component's thread; it returns when the peer closes,
        the connection is closed, or the thread is terminated."""
        sock = self._client
        if sock is None:
            return
        while not self._terminated and sock.Connected:
            sock.read_into_buffer(None)  # while the buffer is full: only watches for errors

    def StartConnect(self) -> bool:
        """Wait until the server hands this thread a connection (``TServerClientThread.
        StartConnect``); False when terminated instead. Called by the thread body."""
        self._activated.wait()
        return not self._terminated and self._client is not None

    def EndConnect(self) -> bool:
        """The connection has been served (``TServerClientThread.EndConnect``): close it (a
        no-op when it ended already) and forget it. True when the thread ends now
        (terminated, not ``KeepInCache``, or the server closing) rather than wait in the cache.
        """
        sock = self._client
        if sock is not None:
            try:
                sock.Close()
            finally:
                self._client = None
        return self._terminated or not self.KeepInCache or self._server.threads.closing

    def DoTerminate(self) -> None:
        """The thread ends (``TServerClientThread.DoTerminate``), after OnThreadEnd: it leaves
        the server's thread list. An override must call ``super().DoTerminate()``."""
        self._server.threads.remove(self)

    # -- machinery ---------------------------------------------------------------------------
    def run(self) -> None:
        """The thread body (override ClientExecute, not this): OnThreadStart; then
        StartConnect, ClientExecute, EndConnect for each connection while kept in the cache;
        then OnThreadEnd and DoTerminate. An exception escaping them goes to the application
        hook and ends the thread."""
        server = self._server
        set_thread_wake(self._wake)
        try:
            server.ThreadStart(self)
            while True:
                if self.StartConnect():
                    self._serve()
                if self.EndConnect():
                    break
                server.threads.set_idle(self)
                server.synchronizer.notify()
        except BaseException as exc:
            self.KeepInCache = False
            self.HandleException(exc)
        finally:
            self._idle = False
            try:
                server.ThreadEnd(self)
            finally:
                try:
                    self.DoTerminate()
                finally:
                    server.threads.remove(self)
                    set_thread_wake(None)
                    self._wake.close()
                    server.synchronizer.notify()

    def _serve(self) -> None:
        """One connection: its TLS handshake and OnClientConnect, then ClientExecute. An
        exception goes to the application hook and the thread leaves the cache."""
        sock = self._client
        assert sock is not None
        try:
            sock.start_connection()  # the TLS handshake (waiting here), OnClientConnect…
            if sock.Connected and not self._terminated:
                self.ClientExecute()
        except BaseException as exc:
            self.KeepInCache = False
            self.HandleException(exc)
