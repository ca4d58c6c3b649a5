"""Thread-blocking servers: ``ServerClientThread``, the thread cache, and ``Synchronize``.

In ``stThreadBlocking`` mode each connection is served by a ``ServerClientThread`` running
``ClientExecute`` with blocking calls. Accepting stays on the component's thread, so
OnGetSocket, OnAccept and OnGetThread run there directly. **Every event a worker raises is
delivered in the component's thread too:** the worker hands the call over and waits until it has
been handled (``Synchronize`` semantics), so ``Var`` results come back and handlers need no
locking. That is safer than the VCL, whose thread-mode events ran unsynchronized in workers.

While the component's thread waits for workers (server ``Close()``), it keeps serving their
pending calls, so shutdown cannot deadlock.
"""
from __future__ import annotations

import select
import socket
import sys
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Optional

from .enums import SocketState, seConnect, seWrite
from .errors import HandleException as _hook_exception

if TYPE_CHECKING:
    from ._pump import Pump
    from .serverwinsock import ServerClientWinSocket, ServerWinSocket

__all__ = ["ServerClientThread", "Synchronizer", "ThreadCache"]

#: How long server ``Close()`` waits for busy threads before leaving them to end on their own (s).
SHUTDOWN_WAIT = 10.0


class _Job:
    __slots__ = ("fn", "args", "done", "result", "error")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args
        self.done = threading.Event()
        self.result: Any = None
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            self.result = self.fn(*self.args)
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()


class Synchronizer:
    """Runs calls from worker threads in the owner's thread, waiting for their result."""

    def __init__(self, pump: "Pump") -> None:
        self._pump = pump
        self._queue: deque[_Job] = deque()
        self._cond = threading.Condition()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` in the owner's thread and return its result (or raise its error)."""
        if self._pump.in_own_thread():
            return fn(*args)
        job = _Job(fn, args)
        with self._cond:
            self._queue.append(job)
            self._cond.notify_all()
        self._pump.call_soon_threadsafe(self.drain)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def drain(self) -> None:
        """Run every pending call (owner's thread)."""
        while True:
            with self._cond:
                if not self._queue:
                    return
                job = self._queue.popleft()
            job.run()

    def notify(self) -> None:
        """Wake an owner blocked in :meth:`wait_until` (a worker's state changed)."""
        with self._cond:
            self._cond.notify_all()

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Owner's thread: wait for ``predicate`` while serving the workers' calls."""
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            with self._cond:
                if predicate():
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                if not self._queue:
                    self._cond.wait(min(remaining, 0.5))


class ThreadCache:
    """The server's threads, busy and idle, with the VCL's KeepInCache rule."""

    def __init__(self) -> None:
        self._threads: list[ServerClientThread] = []
        self._lock = threading.Lock()
        self.size = 0
        self.closing = False

    def register(self, thread: "ServerClientThread") -> None:
        with self._lock:
            if thread not in self._threads:
                self._threads.append(thread)
                thread.KeepInCache = not self.closing and len(self._threads) <= self.size

    def remove(self, thread: "ServerClientThread") -> None:
        with self._lock:
            if thread in self._threads:
                self._threads.remove(thread)

    def take_idle(self) -> Optional["ServerClientThread"]:
        with self._lock:
            for thread in self._threads:
                if thread._idle and not thread.Terminated:
                    thread._idle = False
                    return thread
        return None

    def resize(self, size: int) -> None:
        """The VCL rule: only the first min(old, new) threads stay flagged KeepInCache."""
        with self._lock:
            start = min(self.size, size)
            self.size = size
            for index, thread in enumerate(self._threads):
                thread.KeepInCache = index < start

    def all(self) -> list["ServerClientThread"]:
        with self._lock:
            return list(self._threads)

    def count(self, busy: bool) -> int:
        with self._lock:
            return sum(1 for t in self._threads if (t._client is not None) == busy and
                       (busy or t._idle))

    def find(self, client: "ServerClientWinSocket") -> Optional["ServerClientThread"]:
        with self._lock:
            for thread in self._threads:
                if thread._client is client:
                    return thread
        return None


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

    A thread kept in the cache (``KeepInCache``) waits for its next connection instead of ending;
    reset per-connection state at the start of ``ClientExecute``. The default ``ClientExecute``
    delivers OnClientRead to the component's thread whenever data arrives (no polling).
    """

    def __init__(self, CreateSuspended: bool, ClientSocket: "ServerClientWinSocket") -> None:
        server = ClientSocket.ServerWinSocket
        super().__init__(name=f"sockcomp-client-{ClientSocket.SocketHandle}", daemon=True)
        self._server: ServerWinSocket = server
        self._client: Optional[ServerClientWinSocket] = None
        self._activated = threading.Event()
        self._terminated = False
        self._idle = False
        self._wake_r, self._wake_w = socket.socketpair()
        #: Kept for the next connection when True (decided by ThreadCacheSize at registration).
        self.KeepInCache = False
        #: Free for the application.
        self.Data: Any = None
        self.ReActivate(ClientSocket)
        if not CreateSuspended:
            self.start()

    # -- VCL surface -------------------------------------------------------------------------
    @property
    def ClientSocket(self) -> Optional["ServerClientWinSocket"]:
        """The connection being served (None while idle in the cache)."""
        return self._client

    @property
    def ServerSocket(self) -> "ServerWinSocket":
        """The listening socket this thread works for."""
        return self._server

    @property
    def Terminated(self) -> bool:
        """Set by :meth:`Terminate` (and by server shutdown); ClientExecute should poll it."""
        return self._terminated

    def Terminate(self) -> None:
        """Ask the thread to finish: sets Terminated and wakes it from its waits."""
        self._terminated = True
        self._activated.set()
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass

    def Resume(self) -> None:
        """Start a thread created with ``CreateSuspended=True``."""
        if not self.is_alive() and self.ident is None:
            self.start()

    def ReActivate(self, ClientSocket: "ServerClientWinSocket") -> None:
        """Hand the thread a (new) connection and wake it (called by the server)."""
        self._client = ClientSocket
        self._server._threads.register(self)
        self._activated.set()

    def Synchronize(self, Method: Callable[[], Any]) -> Any:
        """Run ``Method()`` in the component's thread, wait, and return its result."""
        return self._server._synchronizer().call(Method)

    def HandleException(self, exc: Optional[BaseException] = None) -> None:
        """Report an exception (default: the one being handled) to the application hook,
        in the component's thread, as ``Application.ShowException`` would."""
        if exc is None:
            exc = sys.exc_info()[1]
        if exc is not None:
            error = exc
            self.Synchronize(lambda: _hook_exception(error))

    def ClientExecute(self) -> None:
        """Serve the connection. The default delivers OnClientRead (in the component's thread)
        each time data arrives and returns when the peer closes or the thread is terminated."""
        sock = self._client
        if sock is None:
            return
        while not self._terminated and sock.Connected:
            if sock._rlen >= sock.receive_high_water:
                self._wait(None, 0.05)  # the application is behind: let it read first
                continue
            if self._wait(sock.SocketHandle, None):
                sock._on_readable()

    # -- machinery ---------------------------------------------------------------------------
    def _wait(self, fd: Optional[int], timeout: Optional[float]) -> bool:
        """Wait until ``fd`` is readable (True) or the thread is woken/terminated (False)."""
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        if fd is not None and fd >= 0:
            poller.register(fd, select.POLLIN)
        events = poller.poll(None if timeout is None else int(timeout * 1000))
        ready = False
        for event_fd, _ in events:
            if event_fd == self._wake_r.fileno():
                try:
                    self._wake_r.recv(4096)
                except OSError:
                    pass
            else:
                ready = True
        return ready and not self._terminated

    def run(self) -> None:
        """The thread body (override ClientExecute, not this): OnThreadStart, serve connections
        while kept in the cache, then OnThreadEnd."""
        server = self._server
        try:
            server._thread_event(self, started=True)
            while True:
                self._activated.wait()
                self._activated.clear()
                if self._terminated or self._client is None:
                    break
                self._serve()
                if self._terminated or not self.KeepInCache or server._threads.closing:
                    break
                with server._threads._lock:
                    self._idle = True
                server._synchronizer().notify()
        finally:
            self._idle = False
            try:
                server._thread_event(self, started=False)
            finally:
                server._threads.remove(self)
                self._wake_r.close()
                self._wake_w.close()
                server._synchronizer().notify()

    def _serve(self) -> None:
        sock = self._client
        assert sock is not None
        try:
            if sock.Connected and sock._tls is not None:
                sock._start_tls()  # blocking handshake; raises after OnClientError on failure
            if sock.Connected:
                sock._fire(seConnect)
            if sock.Connected:
                sock._fire(seWrite)
            if sock.Connected and not self._terminated:
                self.ClientExecute()
        except BaseException as exc:
            self.KeepInCache = False
            self.HandleException(exc)
        finally:
            if sock.State != SocketState.ssClosed:
                sock._disconnect(graceful=True)
            self._client = None
