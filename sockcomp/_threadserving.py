"""The thread-blocking side of a listening socket (``stThreadBlocking``): its worker threads,
how a client gets one, and how the workers' notifications reach the component's thread.

:class:`ThreadServing` is a part of :class:`~sockcomp.serverwinsock.ServerWinSocket` (its
base), kept apart so that the listening socket's own life (listen, accept, close) reads on its
own. The names are the VCL's where the VCL has them (``GetServerThread``, ``ThreadStart`` …).
"""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol

from ._lifecycle import Phase
from ._pump import current_pump
from ._synchronize import Synchronizer
from .enums import ErrorEvent, eeAccept, seConnect
from .errors import HandleException
from .threads import ServedClient, ServerClientThread, ThreadCache
from .var import Var
from .winsock import CustomWinSocket

if TYPE_CHECKING:
    from ._connection import ErrorSink, EventSink, FrameSink

__all__ = ["ThreadServing"]


class AcceptedClient(ServedClient, Protocol):
    """What the thread side uses of an accepted client (a ``ServerClientWinSocket``; this
    module cannot import that class: ``serverwinsock`` builds on this one)."""

    @property
    def Phase(self) -> Phase: ...
    def fail(self, event: ErrorEvent, exc: BaseException, api: str,
             graceful: bool = False) -> None: ...


class ThreadServing:
    """Worker threads of a thread-blocking server (a base of ServerWinSocket)."""

    # set by ServerWinSocket.__init__
    threads: ThreadCache
    _sync: Optional[Synchronizer]
    client_event_sink: "EventSink"
    client_error_sink: "ErrorSink"
    client_frame_sink: "FrameSink"
    get_thread_hook: Callable[[Any], Any]  # given the AcceptedClient
    thread_event_sink: Callable[[Any, bool], None]
    unhandled_client_events: frozenset[int]
    unhandled_thread_events: frozenset[bool]
    unhandled_events_hook: Callable[[], None]

    @property
    def ThreadCacheSize(self) -> int:
        """How many idle threads stay cached for reuse (stThreadBlocking)."""
        return self.threads.size

    @ThreadCacheSize.setter
    def ThreadCacheSize(self, value: int) -> None:
        self.threads.resize(int(value))

    @property
    def ActiveThreads(self) -> int:
        """Threads currently serving a connection."""
        return self.threads.count(busy=True)

    @property
    def IdleThreads(self) -> int:
        """Cached threads waiting for a connection."""
        return self.threads.count(busy=False)

    def GetClientThread(self, ClientSocket: AcceptedClient) -> Any:
        """The thread serving ``ClientSocket`` (None in stNonBlocking mode, and once the
        connection has ended); inside OnClientDisconnect too."""
        if ClientSocket.Phase in (Phase.CLOSED, Phase.CLOSING):
            return None
        return ClientSocket.worker

    @property
    def synchronizer(self) -> Synchronizer:
        """Runs workers' calls in the component's thread (exists once the server listened)."""
        if self._sync is None:
            self._sync = Synchronizer(current_pump())
        return self._sync

    def worker_event(self, client: CustomWinSocket, event: int) -> None:
        """A thread-mode client's event: delivered in the component's thread."""
        sync = self._sync
        if sync is not None and not sync.in_owner_thread():
            if event in self.unhandled_client_events and not (
                    event == seConnect and client.IdleTimeout):
                return
            sync.call(self.client_event_sink, client, event)
        else:
            self.client_event_sink(client, event)

    def worker_error(self, client: CustomWinSocket, event: ErrorEvent, code: Var[int]) -> None:
        sync = self._sync
        if sync is not None and not sync.in_owner_thread():
            sync.call(self.client_error_sink, client, event, code)
        else:
            self.client_error_sink(client, event, code)

    def worker_frame(self, client: CustomWinSocket, message: Any) -> None:
        sync = self._sync
        if sync is not None and not sync.in_owner_thread():
            sync.call(self.client_frame_sink, client, message)
        else:
            self.client_frame_sink(client, message)

    def thread_event(self, thread: Any, started: bool) -> None:
        """A worker started or ends: OnThreadStart / OnThreadEnd in the component's thread."""
        if started in self.unhandled_thread_events:
            return
        self.synchronizer.call(self.thread_event_sink, thread, started)

    def report_exception(self, exc: BaseException) -> None:
        """An error to the application hook, in the component's thread."""
        sync = self._sync
        if sync is not None and not sync.in_owner_thread():
            sync.call(HandleException, exc)
        else:
            HandleException(exc)

    def GetServerThread(self, ClientSocket: AcceptedClient) -> ServerClientThread:
        """The thread to serve ``ClientSocket`` (stThreadBlocking): an idle cached one
        (reactivated), else OnGetThread's, else :meth:`DoCreateThread`'s. Raises TypeError
        when OnGetThread supplies something else than a ServerClientThread."""
        thread = self.threads.take_idle()
        if thread is not None:
            thread.ReActivate(ClientSocket)
            return thread
        thread = self.get_thread_hook(ClientSocket)
        if thread is None:
            return self.DoCreateThread(ClientSocket)
        if not isinstance(thread, ServerClientThread):
            raise TypeError("OnGetThread must supply a ServerClientThread (or leave None)")
        return thread

    def ThreadStart(self, Thread: ServerClientThread) -> None:
        """A worker thread starts (``TServerWinSocket.ThreadStart``), called in that worker
        before its first connection: the place for per-thread set-up (a database
        connection…). The default fires OnThreadStart in the component's thread and waits
        for it."""
        self.thread_event(Thread, started=True)

    def ThreadEnd(self, Thread: ServerClientThread) -> None:
        """A worker thread ends (``TServerWinSocket.ThreadEnd``), called in that worker after
        its last connection (also when it failed): the place to release per-thread
        resources. The default fires OnThreadEnd in the component's thread and waits for it.
        """
        self.thread_event(Thread, started=False)

    def DoCreateThread(self, ClientSocket: AcceptedClient) -> ServerClientThread:
        """A new default thread for ``ClientSocket``: ``ServerClientThread(False,
        ClientSocket)``; override to create your own class."""
        return ServerClientThread(False, ClientSocket)

    def _assign_thread(self, client: AcceptedClient) -> None:
        """GetServerThread, and start the thread if it was created suspended. A thread that
        cannot start ends that connection with OnClientError(eeAccept)."""
        thread: Optional[ServerClientThread] = None
        try:
            try:
                thread = self.GetServerThread(client)
            except TypeError:
                client.Close()
                raise
            if thread.ident is None:
                thread.Resume()  # created suspended: the server starts it
        except (RuntimeError, OSError) as exc:
            stale = thread or client.worker  # a thread registers itself before it starts
            if stale is not None:
                self.threads.remove(stale)
                client.worker = None
            native = exc.errno if isinstance(exc, OSError) and exc.errno else errno.ENOBUFS
            error = OSError(native, f"can't start a thread for the connection: {exc}")
            client.fail(eeAccept, error, "CreateThread", graceful=True)
