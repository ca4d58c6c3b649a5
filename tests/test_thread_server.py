"""stThreadBlocking ServerSocket: reference checklist T1–T6 in the fixed form of the contract.

Per connection: OnGetSocket → OnAccept → OnGetThread (no idle cached thread) → OnThreadStart (once
per physical thread) → OnClientConnect → OnClientWrite → OnClientRead* → OnClientDisconnect →
(back to the cache, or OnThreadEnd). Every event is delivered in the main thread.

Workers synchronize into the main thread, so the Qt event loop must run while they work: the tests
wait with ``qtbot.waitUntil`` and every plain-socket peer runs in its own ``threading.Thread``.
"""
from __future__ import annotations

import hashlib
import gc
import os
import random
import socket
import threading
import time
from typing import Any, Optional

import pytest

from sockcomp import (
    ESocketError, ServerClientThread, ServerClientWinSocket, ServerSocket, ServerWinSocket, Var,
    WinSocketStream, stThreadBlocking,
)
from sockcomp._waits import Doorbell, WakeUp
from tests.util import EventLog, Job, recv_exactly, recv_until_eof

WAIT = 5000
IO_TIMEOUT = 10.0

FIRST_CONNECTION = ["OnGetSocket", "OnAccept", "OnGetThread", "OnThreadStart",
                    "OnClientConnect", "OnClientWrite"]
REUSED_CONNECTION = ["OnGetSocket", "OnAccept", "OnClientConnect", "OnClientWrite"]


def in_main() -> bool:
    return threading.current_thread() is threading.main_thread()


def sockcomp_threads() -> list[threading.Thread]:
    """Server client threads still alive (the shared lookup pool is not a server's thread)."""
    return [t for t in threading.enumerate() if isinstance(t, ServerClientThread)]



def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s




def request(port: int, data: bytes, reply_len: int) -> bytes:
    """Connect, send, read ``reply_len`` bytes, close."""
    with connect(port) as s:
        s.sendall(data)
        return recv_exactly(s, reply_len)


class Servers:
    def __init__(self, qtbot) -> None:
        self.qtbot = qtbot
        self.servers: list[ServerSocket] = []
        self.sockets: list[socket.socket] = []

    def make(self, cache: Optional[int] = None) -> ServerSocket:
        srv = ServerSocket()
        self.servers.append(srv)
        srv.ServerType = stThreadBlocking
        srv.Address = "127.0.0.1"
        srv.Port = 0
        if cache is not None:
            srv.ThreadCacheSize = cache
        return srv

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        for srv in reversed(self.servers):
            srv.Close()


@pytest.fixture
def servers(qtbot):
    s = Servers(qtbot)
    yield s
    s.close()


def thread_log(srv: ServerSocket) -> EventLog:
    """EventLog recording, for every event, whether it was delivered in the main thread."""
    return EventLog(srv, snapshot=lambda name, args: in_main())


def upper_echo(srv: ServerSocket) -> None:
    """The default thread's OnClientRead: reply with the text upper-cased (main thread)."""
    def on_read(Sender, Socket):
        assert in_main()
        Socket.SendText(Socket.ReceiveText().upper())

    srv.OnClientRead.connect(on_read)


# --- T1: the first connection -------------------------------------------------------------------

def test_first_connection_event_order_senders_and_threads(qtbot, servers, hook):
    srv = servers.make()
    ss = srv.Socket
    log = thread_log(srv)
    inside: dict[str, Any] = {}

    def on_get_socket(Sender, Handle, ClientSocket):
        inside["handle"] = Handle
        inside["get_socket_var"] = isinstance(ClientSocket, Var) and ClientSocket.value is None

    def on_get_thread(Sender, ClientSocket, SocketThread):
        inside["get_thread_var"] = isinstance(SocketThread, Var) and SocketThread.value is None
        inside["idle_at_get_thread"] = ss.IdleThreads

    def on_connect(Sender, Socket):
        inside["thread_at_connect"] = ss.GetClientThread(Socket)
        inside["counts_at_connect"] = (ss.ActiveThreads, ss.IdleThreads, ss.ActiveConnections)
        inside["listed"] = any(c is Socket for c in ss.Connections)
        inside["connected"] = Socket.Connected

    def on_disconnect(Sender, Socket):
        inside["thread_at_disconnect"] = ss.GetClientThread(Socket)
        inside["listed_at_disconnect"] = any(c is Socket for c in ss.Connections)

    srv.OnGetSocket.connect(on_get_socket)
    srv.OnGetThread.connect(on_get_thread)
    srv.OnClientConnect.connect(on_connect)
    srv.OnClientDisconnect.connect(on_disconnect)
    upper_echo(srv)
    srv.Open()
    assert srv.Active and ss.ServerType == stThreadBlocking
    assert srv.ThreadCacheSize == 10 and ss.ThreadCacheSize == 10

    reply = Job(request, ss.LocalPort, b"hello", 5).wait(qtbot)
    assert reply == b"HELLO"
    qtbot.waitUntil(lambda: ss.IdleThreads == 1 and ss.ActiveThreads == 0, timeout=WAIT)

    assert log.names() == ["OnListen"] + FIRST_CONNECTION + ["OnClientRead",
                                                              "OnClientDisconnect"]
    assert all(log.snapshots), "an event was delivered outside the main thread"

    client = log.args("OnAccept")[1]
    assert isinstance(client, ServerClientWinSocket)
    assert client.ServerWinSocket is ss
    assert inside["handle"] == log.args("OnGetSocket")[1] and isinstance(inside["handle"], int)
    assert inside["get_socket_var"] and inside["get_thread_var"]
    assert inside["idle_at_get_thread"] == 0
    # Senders: OnListen/OnAccept get the component, the others srv.Socket
    assert log.args("OnListen")[0] is srv and log.args("OnListen")[1] is ss
    assert log.args("OnAccept")[0] is srv
    assert log.args("OnGetSocket")[0] is ss
    assert log.args("OnGetThread")[0] is ss and log.args("OnGetThread")[1] is client
    for name in ("OnClientConnect", "OnClientWrite", "OnClientRead", "OnClientDisconnect"):
        sender, sock = log.args(name)
        assert sender is ss and sock is client, name
    sender, thread = log.args("OnThreadStart")
    assert sender is ss
    assert isinstance(thread, ServerClientThread) and type(thread) is ServerClientThread
    assert thread is not threading.main_thread() and thread.is_alive()
    assert thread.ServerSocket is ss
    assert thread.KeepInCache is True
    assert inside["thread_at_connect"] is thread
    assert inside["thread_at_disconnect"] is thread
    assert inside["counts_at_connect"] == (1, 0, 1)
    assert inside["listed"] and inside["connected"] and inside["listed_at_disconnect"]
    assert ss.Connections == [] and ss.ActiveConnections == 0
    assert thread.ClientSocket is None  # idle in the cache
    assert ss.GetClientThread(client) is None
    assert hook == []


# --- default ClientExecute: no busy polling -----------------------------------------------------

def test_onclientread_not_repeated_until_the_handler_reads(qtbot, servers, hook):
    srv = servers.make()
    ss = srv.Socket
    reads: list[Any] = []
    srv.OnClientRead.connect(lambda Sender, Socket: reads.append(Socket))  # does not read
    log = thread_log(srv)
    srv.Open()
    proceed = threading.Event()

    def client():
        with connect(ss.LocalPort) as s:
            s.sendall(b"first")
            assert proceed.wait(IO_TIMEOUT)
            s.sendall(b"second")
            assert proceed.wait(IO_TIMEOUT)
            s.sendall(b"third")
            assert recv_exactly(s, 2) == b"ok"

    job = Job(client)
    qtbot.waitUntil(lambda: len(reads) == 1, timeout=WAIT)
    sock = reads[0]
    proceed.set()
    qtbot.waitUntil(lambda: sock.ReceiveLength() == len(b"firstsecondthird"), timeout=WAIT)
    qtbot.wait(100)  # the loop runs; unread data must not bring OnClientRead again
    assert len(reads) == 1
    assert sock.ReceiveText() == "firstsecondthird"
    qtbot.wait(50)
    assert len(reads) == 1  # nothing left: no renotification
    sock.SendText("ok")
    job.wait(qtbot)
    qtbot.waitUntil(lambda: log.count("OnClientDisconnect") == 1, timeout=WAIT)
    assert all(log.snapshots)
    assert hook == []


def test_more_data_after_reading_fires_onclientread_again(qtbot, servers):
    srv = servers.make()
    ss = srv.Socket
    got: list[str] = []

    def on_read(Sender, Socket):
        assert in_main()
        got.append(Socket.ReceiveText())

    srv.OnClientRead.connect(on_read)
    srv.Open()
    step = threading.Event()

    def client():
        with connect(ss.LocalPort) as s:
            s.sendall(b"one")
            assert step.wait(IO_TIMEOUT)
            s.sendall(b"two")
            assert recv_until_eof(s) == b""

    job = Job(client)
    qtbot.waitUntil(lambda: got == ["one"], timeout=WAIT)
    step.set()
    qtbot.waitUntil(lambda: got == ["one", "two"], timeout=WAIT)
    ss.Connections[0].Close()  # main thread closes the server side → the client sees EOF
    job.wait(qtbot)


# --- T2: the thread cache -----------------------------------------------------------------------

def test_cached_thread_is_reused_without_ongetthread_or_onthreadstart(qtbot, servers, hook):
    srv = servers.make()
    ss = srv.Socket
    upper_echo(srv)
    log = thread_log(srv)
    threads_at_connect: list[Any] = []
    srv.OnClientConnect.connect(lambda Sender, Socket:
                                threads_at_connect.append(ss.GetClientThread(Socket)))
    srv.Open()

    assert Job(request, ss.LocalPort, b"abc", 3).wait(qtbot) == b"ABC"
    qtbot.waitUntil(lambda: ss.IdleThreads == 1 and ss.ActiveThreads == 0, timeout=WAIT)
    thread = log.args("OnThreadStart")[1]
    first = len(log.names())

    assert Job(request, ss.LocalPort, b"xyz", 3).wait(qtbot) == b"XYZ"
    qtbot.waitUntil(lambda: ss.IdleThreads == 1 and ss.ActiveThreads == 0, timeout=WAIT)
    assert log.names()[first:] == REUSED_CONNECTION + ["OnClientRead", "OnClientDisconnect"]
    assert threads_at_connect == [thread, thread]
    assert thread.is_alive()
    assert log.count("OnThreadEnd") == 0

    end = len(log.names())
    srv.Close()  # the idle thread ends, before Close returns
    assert log.names()[end:] == ["OnThreadEnd"]
    assert log.args("OnThreadEnd")[0] is ss and log.args("OnThreadEnd")[1] is thread
    assert not thread.is_alive()
    assert ss.IdleThreads == 0 and ss.ActiveThreads == 0
    assert all(log.snapshots)
    assert hook == []


# --- T3: ThreadCacheSize 0 ----------------------------------------------------------------------

def test_thread_cache_size_0_ends_each_thread_after_its_connection(qtbot, servers, hook):
    srv = servers.make(cache=0)
    ss = srv.Socket
    upper_echo(srv)
    log = thread_log(srv)
    keep: list[bool] = []
    srv.OnClientConnect.connect(lambda Sender, Socket:
                                keep.append(ss.GetClientThread(Socket).KeepInCache))
    srv.Open()

    one_conn = FIRST_CONNECTION + ["OnClientRead", "OnClientDisconnect", "OnThreadEnd"]
    assert Job(request, ss.LocalPort, b"a", 1).wait(qtbot) == b"A"
    qtbot.waitUntil(lambda: log.count("OnThreadEnd") == 1, timeout=WAIT)
    assert log.names() == ["OnListen"] + one_conn
    first = log.args("OnThreadStart")[1]
    assert log.args("OnThreadEnd")[1] is first
    qtbot.waitUntil(lambda: not first.is_alive(), timeout=WAIT)
    assert ss.IdleThreads == 0 and ss.ActiveThreads == 0

    assert Job(request, ss.LocalPort, b"b", 1).wait(qtbot) == b"B"
    qtbot.waitUntil(lambda: log.count("OnThreadEnd") == 2, timeout=WAIT)
    assert log.names() == ["OnListen"] + one_conn + one_conn  # a new thread each time
    second = log.args("OnThreadStart", 1)[1]
    assert second is not first
    assert keep == [False, False]
    assert ss.IdleThreads == 0
    assert all(log.snapshots)
    assert hook == []


def test_keep_in_cache_follows_thread_cache_size_at_registration(qtbot, servers, hook):
    srv = servers.make(cache=1)
    ss = srv.Socket
    log = thread_log(srv)
    connected: list[Any] = []
    srv.OnClientConnect.connect(lambda Sender, Socket: connected.append(Socket))
    srv.Open()
    release = threading.Event()

    def client():
        with connect(ss.LocalPort):
            assert release.wait(IO_TIMEOUT)

    first = Job(client)
    qtbot.waitUntil(lambda: len(connected) == 1, timeout=WAIT)
    second = Job(client)
    qtbot.waitUntil(lambda: len(connected) == 2, timeout=WAIT)
    t1 = ss.GetClientThread(connected[0])
    t2 = ss.GetClientThread(connected[1])
    assert t1 is not None and t2 is not None and t1 is not t2
    assert (t1.KeepInCache, t2.KeepInCache) == (True, False)
    assert ss.ActiveThreads == 2 and ss.IdleThreads == 0
    release.set()
    first.wait(qtbot)
    second.wait(qtbot)
    qtbot.waitUntil(lambda: log.count("OnClientDisconnect") == 2 and ss.IdleThreads == 1
                    and log.count("OnThreadEnd") == 1, timeout=WAIT)
    assert log.args("OnThreadEnd")[1] is t2
    assert t1.is_alive() and t1.ClientSocket is None
    assert all(log.snapshots)
    assert hook == []


# --- T4: a custom thread from OnGetThread (ported Delphi echo) ----------------------------------

class EchoThread(ServerClientThread):
    """Line for line the Delphi help's TServerClientThread.ClientExecute with a TWinSocketStream."""

    def ClientExecute(self) -> None:
        self.Data = {"thread": threading.current_thread(), "reads": 0,
                     "socket_data": self.ClientSocket.Data}
        try:
            stream = WinSocketStream(self.ClientSocket, 60000)
            while not self.Terminated and self.ClientSocket.Connected:
                if stream.WaitForData(60000):
                    buffer = stream.Read(4096)
                    if buffer == b"":
                        self.ClientSocket.Close()  # peer closed
                    else:
                        self.Data["reads"] += 1
                        stream.Write(buffer)
                else:
                    self.ClientSocket.Close()
        except Exception:
            self.HandleException()


def test_custom_thread_from_ongetthread_echoes_with_winsocketstream(qtbot, servers, hook):
    srv = servers.make()
    ss = srv.Socket
    log = thread_log(srv)
    made: list[EchoThread] = []

    def on_get_thread(Sender, ClientSocket, SocketThread):
        assert in_main() and Sender is ss
        SocketThread.value = EchoThread(False, ClientSocket)
        made.append(SocketThread.value)

    def on_connect(Sender, Socket):
        Socket.Data = "set in OnClientConnect"  # the worker waits until this handler returned

    srv.OnGetThread.connect(on_get_thread)
    srv.OnClientConnect.connect(on_connect)
    srv.Open()

    def client(messages):
        out = []
        with connect(ss.LocalPort) as s:
            for m in messages:
                s.sendall(m)
                out.append(recv_exactly(s, len(m)))
        return out

    msgs = [b"first", b"second message", bytes(range(256)) * 64]
    assert Job(client, msgs).wait(qtbot) == msgs
    qtbot.waitUntil(lambda: log.count("OnClientDisconnect") == 1 and ss.IdleThreads == 1,
                    timeout=WAIT)
    assert log.names() == ["OnListen"] + FIRST_CONNECTION + ["OnClientDisconnect"]
    assert len(made) == 1
    thread = made[0]
    assert log.args("OnThreadStart")[1] is thread
    assert thread.Data["thread"] is thread  # ClientExecute ran in the worker itself
    assert thread.Data["reads"] >= 3
    assert thread.Data["socket_data"] == "set in OnClientConnect"
    assert thread.KeepInCache is True and thread.is_alive()

    # the second connection reuses the cached EchoThread: no OnGetThread, no OnThreadStart
    start = len(log.names())
    assert Job(client, [b"again"]).wait(qtbot) == [b"again"]
    qtbot.waitUntil(lambda: log.count("OnClientDisconnect") == 2 and ss.IdleThreads == 1,
                    timeout=WAIT)
    assert log.names()[start:] == REUSED_CONNECTION + ["OnClientDisconnect"]
    assert len(made) == 1 and thread.Data["reads"] == 1  # per-connection state was reset
    assert all(log.snapshots)
    assert hook == []


def test_synchronize_runs_in_main_thread_and_returns_the_value(qtbot, servers, hook):
    srv = servers.make()
    ss = srv.Socket
    seen: dict[str, Any] = {}

    class SyncThread(ServerClientThread):
        def ClientExecute(self) -> None:
            def in_gui():
                seen["main"] = in_main()
                seen["active"] = ss.ActiveThreads
                return ("answer", 42)

            seen["worker"] = threading.current_thread() is self
            value = self.Synchronize(in_gui)
            seen["value"] = value
            stream = WinSocketStream(self.ClientSocket, 5000)
            stream.Write(f"{value[0]}={value[1]}".encode())

    srv.OnGetThread.connect(lambda Sender, ClientSocket, SocketThread:
                            setattr(SocketThread, "value", SyncThread(False, ClientSocket)))
    srv.Open()

    def client():
        with connect(ss.LocalPort) as s:
            return recv_until_eof(s)

    assert Job(client).wait(qtbot) == b"answer=42"
    assert seen == {"worker": True, "main": True, "active": 1, "value": ("answer", 42)}
    assert hook == []


# --- T5: exceptions in ClientExecute ------------------------------------------------------------

def test_exception_escaping_clientexecute_goes_to_hook_and_thread_is_not_kept(qtbot, servers,
                                                                               hook):
    import sockcomp
    hook_threads: list[bool] = []

    def recording_hook(exc):
        hook_threads.append(in_main())
        hook.append(exc)

    previous = sockcomp.SetExceptionHook(recording_hook)
    try:
        srv = servers.make()
        ss = srv.Socket
        log = thread_log(srv)
        boom = RuntimeError("boom in ClientExecute")
        made: list[ServerClientThread] = []

        class BoomThread(ServerClientThread):
            def ClientExecute(self) -> None:
                raise boom

        def on_get_thread(Sender, ClientSocket, SocketThread):
            SocketThread.value = BoomThread(False, ClientSocket)
            made.append(SocketThread.value)

        srv.OnGetThread.connect(on_get_thread)
        srv.Open()

        def client():
            with connect(ss.LocalPort) as s:
                return recv_until_eof(s)

        assert Job(client).wait(qtbot) == b""  # the connection was closed
        qtbot.waitUntil(lambda: log.count("OnThreadEnd") == 1, timeout=WAIT)
        assert log.names() == ["OnListen"] + FIRST_CONNECTION + ["OnClientDisconnect",
                                                                  "OnThreadEnd"]
        assert hook == [boom]
        assert hook_threads == [True]
        thread = made[0]
        assert thread.KeepInCache is False
        qtbot.waitUntil(lambda: not thread.is_alive(), timeout=WAIT)
        assert ss.IdleThreads == 0 and ss.ActiveThreads == 0
        assert ss.Connections == []
        assert all(log.snapshots)
    finally:
        sockcomp.SetExceptionHook(previous)


def test_handleexception_inside_clientexecute_reports_and_keeps_the_thread(qtbot, servers,
                                                                            hook):
    srv = servers.make()
    ss = srv.Socket
    log = thread_log(srv)

    class CarefulThread(ServerClientThread):
        def ClientExecute(self) -> None:
            try:
                raise ValueError("handled in ClientExecute")
            except ValueError:
                self.HandleException()

    srv.OnGetThread.connect(lambda Sender, ClientSocket, SocketThread:
                            setattr(SocketThread, "value", CarefulThread(False, ClientSocket)))
    srv.Open()

    def client():
        with connect(ss.LocalPort) as s:
            return recv_until_eof(s)

    assert Job(client).wait(qtbot) == b""
    qtbot.waitUntil(lambda: ss.IdleThreads == 1, timeout=WAIT)
    assert len(hook) == 1 and isinstance(hook[0], ValueError)
    assert str(hook[0]) == "handled in ClientExecute"
    assert log.names() == ["OnListen"] + FIRST_CONNECTION + ["OnClientDisconnect"]
    assert log.count("OnThreadEnd") == 0
    assert all(log.snapshots)


# --- main thread sends while the worker reads; Lock ---------------------------------------------

def test_main_thread_sends_while_worker_is_blocked_reading(qtbot, servers, hook):
    srv = servers.make()
    ss = srv.Socket
    state: dict[str, Any] = {"reading": threading.Event()}

    class ReaderThread(ServerClientThread):
        def ClientExecute(self) -> None:
            stream = WinSocketStream(self.ClientSocket, 60000)
            state["reading"].set()
            state["got"] = stream.Read(100)

    srv.OnGetThread.connect(lambda Sender, ClientSocket, SocketThread:
                            setattr(SocketThread, "value", ReaderThread(False, ClientSocket)))
    connected: list[Any] = []
    srv.OnClientConnect.connect(lambda Sender, Socket: connected.append(Socket))
    srv.Open()

    def client():
        with connect(ss.LocalPort) as s:
            ping = recv_exactly(s, 4)
            s.sendall(b"pong")
            return ping, recv_until_eof(s)

    job = Job(client)
    qtbot.waitUntil(lambda: state["reading"].is_set() and len(connected) == 1, timeout=WAIT)
    qtbot.wait(20)  # let the worker settle into Read
    assert connected[0].SendText("ping") == 4  # main thread, worker blocked in Read
    assert job.wait(qtbot) == (b"ping", b"")
    assert state["got"] == b"pong"
    assert hook == []


def test_lock_unlock_are_reentrant_and_exclude_other_threads(qtbot, servers, hook):
    srv = servers.make()
    ss = srv.Socket
    flags: dict[str, Any] = {"trying": threading.Event(), "released": False,
                             "main_holds": threading.Event()}

    class LockingThread(ServerClientThread):
        def ClientExecute(self) -> None:
            sock = self.ClientSocket
            if not flags["main_holds"].wait(IO_TIMEOUT):
                return
            flags["trying"].set()
            with sock.Lock():
                flags["released_when_acquired"] = flags["released"]
            sock.Lock()
            sock.Lock()
            sock.Unlock()
            sock.Unlock()
            flags["worker_done"] = True

    srv.OnGetThread.connect(lambda Sender, ClientSocket, SocketThread:
                            setattr(SocketThread, "value", LockingThread(False, ClientSocket)))
    connected: list[Any] = []
    srv.OnClientConnect.connect(lambda Sender, Socket: connected.append(Socket))
    srv.Open()
    stop = threading.Event()

    def client():
        with connect(ss.LocalPort):
            stop.wait(IO_TIMEOUT)

    job = Job(client)
    qtbot.waitUntil(lambda: len(connected) == 1, timeout=WAIT)
    sock = connected[0]
    sock.Lock()  # main thread holds the lock (the worker reaches its Lock() meanwhile)
    try:
        with sock.Lock():  # re-entrant
            with sock.Lock():
                pass
        flags["main_holds"].set()
        qtbot.waitUntil(flags["trying"].is_set, timeout=WAIT)
        qtbot.wait(50)
        assert "released_when_acquired" not in flags  # still excluded
        flags["released"] = True
    finally:
        sock.Unlock()
    qtbot.waitUntil(lambda: flags.get("worker_done") is True, timeout=WAIT)
    assert flags["released_when_acquired"] is True
    with sock:  # ``with sock:`` works too
        pass
    stop.set()
    job.wait(qtbot)
    assert hook == []


# --- load: 50 concurrent clients ----------------------------------------------------------------

def test_50_concurrent_clients_echo_checksummed_payloads(qtbot, servers, hook):
    srv = servers.make()
    ss = srv.Socket
    log = thread_log(srv)

    def echo(Sender, Socket):
        Socket.SendBuf(Socket.ReceiveBytes())

    srv.OnClientRead.connect(echo)
    srv.Open()
    port = ss.LocalPort
    rng = random.Random(50)
    payloads = [rng.randbytes(rng.randint(1, 200_000)) for _ in range(50)]

    def client(payload: bytes):
        with connect(port) as s:
            sender = threading.Thread(target=s.sendall, args=(payload,), daemon=True)
            sender.start()  # send and receive at once: neither side can fill up and stall
            got = recv_exactly(s, len(payload))
            sender.join(IO_TIMEOUT)
        return hashlib.sha256(payload).hexdigest(), hashlib.sha256(got).hexdigest(), len(got)

    jobs = [Job(client, p) for p in payloads]
    for job, payload in zip(jobs, payloads):
        sent_hash, got_hash, n = job.wait(qtbot, timeout=20000)
        assert n == len(payload)
        assert got_hash == sent_hash

    qtbot.waitUntil(lambda: log.count("OnClientDisconnect") == 50 and ss.ActiveThreads == 0
                    and ss.ActiveConnections == 0, timeout=WAIT)
    assert log.count("OnClientConnect") == 50 and log.count("OnAccept") == 50
    idle = ss.IdleThreads
    assert 1 <= idle <= 10
    qtbot.waitUntil(lambda: log.count("OnThreadStart") - log.count("OnThreadEnd") == idle,
                    timeout=WAIT)
    mine = [t for t in threading.enumerate()
            if isinstance(t, ServerClientThread) and t.ServerSocket is ss]
    qtbot.waitUntil(lambda: len([t for t in mine if t.is_alive()]) == idle, timeout=WAIT)
    assert all(log.snapshots)
    assert hook == []


# --- T6: shutdown under load --------------------------------------------------------------------

def test_close_with_busy_threads_returns_fast_and_cleans_up(qtbot, servers, hook):
    srv = servers.make()
    ss = srv.Socket
    log = thread_log(srv)
    gc.collect()
    fds_before = len(os.listdir("/proc/self/fd"))
    threads_before = threading.active_count()
    entered: list[str] = []
    outcomes: list[Any] = []
    lock = threading.Lock()
    kinds = ["read", "poll", "read", "poll", "read", "poll", "default", "default"]
    disconnect_thread: dict[int, Any] = {}

    class ReadBlocked(ServerClientThread):
        def ClientExecute(self) -> None:
            stream = WinSocketStream(self.ClientSocket, 60000)
            with lock:
                entered.append("read")
            try:
                outcomes.append(("read", stream.Read(100)))
            except BaseException as exc:
                outcomes.append(("read", exc))
                raise

    class PollingTerminated(ServerClientThread):
        def ClientExecute(self) -> None:
            tick = threading.Event()
            with lock:
                entered.append("poll")
            while not self.Terminated:
                tick.wait(0.005)
            outcomes.append(("poll", "terminated"))

    counter = iter(range(100))

    def on_get_thread(Sender, ClientSocket, SocketThread):
        kind = kinds[next(counter)]
        if kind == "read":
            SocketThread.value = ReadBlocked(False, ClientSocket)
        elif kind == "poll":
            SocketThread.value = PollingTerminated(False, ClientSocket)
        # "default": leave None → the default thread (blocked waiting for data)

    def on_write(Sender, Socket):
        if type(ss.GetClientThread(Socket)) is ServerClientThread:
            with lock:
                entered.append("default")

    def on_disconnect(Sender, Socket):
        disconnect_thread[id(Socket)] = ss.GetClientThread(Socket)

    srv.OnGetThread.connect(on_get_thread)
    srv.OnClientWrite.connect(on_write)
    srv.OnClientDisconnect.connect(on_disconnect)
    srv.Open()
    port = ss.LocalPort

    def client():
        with connect(port) as s:
            return recv_until_eof(s)  # until the server closes the connection

    jobs = []
    for _ in kinds:  # one at a time, so each connection gets the kind of thread planned
        n = len(entered)
        jobs.append(Job(client))
        qtbot.waitUntil(lambda: len(entered) == n + 1, timeout=WAIT)
    assert sorted(entered) == sorted(kinds)
    assert ss.ActiveThreads == 8 and ss.ActiveConnections == 8
    threads = [t for t in threading.enumerate() if isinstance(t, ServerClientThread)]
    assert len(threads) == 8
    qtbot.wait(30)  # let the workers settle into their blocking calls
    mark = len(log.names())

    t0 = time.monotonic()
    srv.Close()
    elapsed = time.monotonic() - t0

    assert elapsed < 2.0, f"Close took {elapsed:.2f} s"
    after = log.names()[mark:]
    assert after.count("OnThreadEnd") == 8  # each thread ended before Close returned
    assert after.count("OnClientDisconnect") == 8
    assert set(after) == {"OnThreadEnd", "OnClientDisconnect"}
    disconnected = [a[1] for n, a in log.events[mark:] if n == "OnClientDisconnect"]
    assert len({id(s) for s in disconnected}) == 8  # once per client
    ended = [a[1] for n, a in log.events[mark:] if n == "OnThreadEnd"]
    assert {id(t) for t in ended} == {id(t) for t in threads}
    # per thread: its client's OnClientDisconnect comes before its OnThreadEnd
    for sock in disconnected:
        thread = disconnect_thread[id(sock)]
        assert thread is not None
        i_disc = next(i for i, (n, a) in enumerate(log.events) if n == "OnClientDisconnect"
                      and a[1] is sock)
        i_end = next(i for i, (n, a) in enumerate(log.events) if n == "OnThreadEnd"
                     and a[1] is thread)
        assert i_disc < i_end
    assert ss.Connections == [] and ss.ActiveConnections == 0
    assert ss.ActiveThreads == 0 and ss.IdleThreads == 0
    assert not any(t.is_alive() for t in threads)
    assert sockcomp_threads() == []
    assert srv.Active is False
    assert sorted(outcomes, key=repr) == sorted(
        [("read", b"")] * 3 + [("poll", "terminated")] * 3, key=repr)

    for job in jobs:
        assert job.wait(qtbot) == b""  # every client saw the connection closed
    qtbot.waitUntil(lambda: len(os.listdir("/proc/self/fd")) <= fds_before
                    and threading.active_count() == threads_before, timeout=WAIT)
    assert all(log.snapshots)
    assert hook == []


# --- resources ----------------------------------------------------------------------------------

def test_500_sequential_connections_then_close_leave_no_fds_or_threads(qtbot, servers, hook):
    srv = servers.make()
    ss = srv.Socket
    upper_echo(srv)
    disconnects = [0]
    srv.OnClientDisconnect.connect(lambda Sender, Socket:
                                   disconnects.__setitem__(0, disconnects[0] + 1))
    log = thread_log(srv)

    def cycles(port: int, n: int) -> None:
        for _ in range(n):
            assert request(port, b"ping", 4) == b"PING"

    # warm-up: whatever is created lazily on first use exists before the baseline
    srv.Open()
    Job(cycles, ss.LocalPort, 3).wait(qtbot)
    qtbot.waitUntil(lambda: disconnects[0] == 3, timeout=WAIT)
    srv.Close()
    qtbot.waitUntil(lambda: sockcomp_threads() == [], timeout=WAIT)
    gc.collect()
    fds_before = len(os.listdir("/proc/self/fd"))
    threads_before = threading.active_count()

    srv.Open()
    Job(cycles, ss.LocalPort, 500).wait(qtbot, timeout=25000)
    qtbot.waitUntil(lambda: disconnects[0] == 503 and ss.ActiveConnections == 0
                    and ss.ActiveThreads == 0, timeout=WAIT)
    assert log.count("OnClientConnect") == 503
    assert 1 <= ss.IdleThreads <= 10
    srv.Close()
    assert ss.Connections == [] and ss.IdleThreads == 0
    assert log.count("OnThreadStart") == log.count("OnThreadEnd")
    qtbot.waitUntil(lambda: len(os.listdir("/proc/self/fd")) <= fds_before
                    and threading.active_count() == threads_before, timeout=WAIT)
    assert sockcomp_threads() == []
    assert all(log.snapshots)
    assert hook == []


def test_server_close_is_idempotent_and_reopens(qtbot, servers, hook):
    srv = servers.make()
    ss = srv.Socket
    upper_echo(srv)
    srv.Open()
    assert Job(request, ss.LocalPort, b"q", 1).wait(qtbot) == b"Q"
    srv.Close()
    srv.Close()
    assert srv.Active is False
    assert isinstance(ss, ServerWinSocket)
    srv.Open()
    assert srv.Active is True
    assert Job(request, ss.LocalPort, b"r", 1).wait(qtbot) == b"R"
    srv.Close()
    assert sockcomp_threads() == []
    with pytest.raises(ESocketError):
        srv.ThreadCacheSize = -1
    assert hook == []


# --- events nobody handles skip the Synchronize round trip ---------------------------------------

def spy_synchronizer(srv: ServerSocket) -> list[str]:
    """Names of the calls workers synchronize into the main thread from now on."""
    sync = srv.Socket.synchronizer
    calls: list[str] = []
    real = sync.call

    def call(fn, *args):
        if not in_main():
            calls.append(getattr(fn, "__name__", repr(fn)))
        return real(fn, *args)

    sync.call = call  # type: ignore[method-assign]
    return calls


def give_echo_threads(srv: ServerSocket) -> None:
    """OnGetThread supplies an EchoThread: the only handler of the server."""
    srv.OnGetThread.connect(
        lambda Sender, ClientSocket, SocketThread:
        setattr(SocketThread, "value", EchoThread(False, ClientSocket)))


def echo_once(port: int) -> bytes:
    return request(port, b"ping", 4)


def test_unhandled_thread_mode_events_are_not_synchronized(qtbot, servers, hook):
    """With only OnGetThread handled, a connection's life (thread start, connect, write,
    disconnect) costs no Synchronize round trip; the echo still works and the thread is cached."""
    srv = servers.make()
    give_echo_threads(srv)
    srv.Open()
    calls = spy_synchronizer(srv)
    for _ in range(3):
        assert Job(echo_once, srv.Socket.LocalPort).wait(qtbot) == b"ping"
        qtbot.waitUntil(lambda: srv.Socket.ActiveConnections == 0 and srv.Socket.IdleThreads == 1,
                        timeout=WAIT)
    assert calls == []
    assert hook == []


def test_handler_connected_mid_connection_gets_that_connections_later_events(qtbot, servers,
                                                                             hook):
    """Connecting a handler makes workers synchronize again at once, even for a connection whose
    earlier events were skipped; a handler disconnected again is noticed at the next client."""
    srv = servers.make()
    give_echo_threads(srv)
    srv.Open()
    calls = spy_synchronizer(srv)
    port = srv.Socket.LocalPort

    peer = Job(connect, port).wait(qtbot)
    servers.sockets.append(peer)

    def first_echo() -> bytes:
        peer.sendall(b"one")
        return recv_exactly(peer, 3)

    assert Job(first_echo).wait(qtbot) == b"one"  # the worker is past connect and write
    assert calls == []

    log = thread_log(srv)  # connects OnClientDisconnect (and every other event) now
    peer.close()
    qtbot.waitUntil(lambda: log.count("OnClientDisconnect") == 1, timeout=WAIT)
    assert "_client_event" in calls
    assert all(log.snapshots)  # delivered in the main thread

    # the next connection is seen whole, cached thread and all
    assert Job(echo_once, port).wait(qtbot) == b"ping"
    qtbot.waitUntil(lambda: log.count("OnClientDisconnect") == 2, timeout=WAIT)
    assert log.names()[-5:] == REUSED_CONNECTION + ["OnClientDisconnect"]
    assert hook == []


def test_handler_disconnected_is_noticed_at_the_next_client(qtbot, servers, hook):
    """Which events have receivers is asked of Qt once and kept between clients, but a
    disconnect drops the answer: the next client's events are skipped again."""
    srv = servers.make()
    give_echo_threads(srv)
    srv.Open()
    port = srv.Socket.LocalPort
    seen: list[str] = []

    def on_connect(Sender, Socket):
        seen.append("OnClientConnect")

    def settled() -> bool:
        return srv.Socket.ActiveConnections == 0 and srv.Socket.IdleThreads == 1

    srv.OnClientConnect.connect(on_connect)
    calls = spy_synchronizer(srv)
    for _ in range(2):  # the second client is served from the kept answer
        assert Job(echo_once, port).wait(qtbot) == b"ping"
        qtbot.waitUntil(settled, timeout=WAIT)
    assert seen == ["OnClientConnect"] * 2
    assert calls.count("_client_event") == 2  # each connect synchronized, nothing else

    srv.OnClientConnect.disconnect(on_connect)
    calls.clear()
    for _ in range(2):
        assert Job(echo_once, port).wait(qtbot) == b"ping"
        qtbot.waitUntil(settled, timeout=WAIT)
    assert calls == []
    assert seen == ["OnClientConnect"] * 2
    assert hook == []


def test_accept_events_connected_after_clients_were_served_fire_for_the_next(qtbot, servers,
                                                                            hook):
    """OnGetSocket and OnAccept are skipped while nobody receives them (thread mode), and a
    handler connected between clients gets the very next client's events."""
    srv = servers.make()
    give_echo_threads(srv)
    srv.Open()
    port = srv.Socket.LocalPort
    seen: list[str] = []
    for _ in range(2):  # the second accept decides from the kept answer
        assert Job(echo_once, port).wait(qtbot) == b"ping"
        qtbot.waitUntil(lambda: srv.Socket.ActiveConnections == 0, timeout=WAIT)

    srv.OnGetSocket.connect(lambda Sender, Socket, ClientSocket: seen.append("OnGetSocket"))
    srv.OnAccept.connect(lambda Sender, Socket: seen.append("OnAccept"))
    assert Job(echo_once, port).wait(qtbot) == b"ping"
    qtbot.waitUntil(lambda: srv.Socket.ActiveConnections == 0, timeout=WAIT)
    assert seen == ["OnGetSocket", "OnAccept"]
    assert hook == []


def test_idle_timeout_in_thread_mode_without_handlers_still_closes_the_client(qtbot, servers,
                                                                             hook):
    """OnClientConnect has no receiver, but seConnect still reaches the main thread when the
    client has an IdleTimeout: that is where its idle watch starts."""
    srv = servers.make()
    srv.Socket.IdleTimeout = 200
    give_echo_threads(srv)
    srv.Open()

    def idle_client(port):
        with connect(port) as s:
            return recv_until_eof(s)  # the server closes the silent connection

    assert Job(idle_client, srv.Socket.LocalPort).wait(qtbot) == b""
    qtbot.waitUntil(lambda: srv.Socket.ActiveConnections == 0, timeout=WAIT)
    assert [getattr(e, "ErrorCode", None) for e in hook] == [10060]  # unhandled OnClientError


# -- the doorbell a server rings to hand a cached worker its next connection -----------------

def test_a_doorbell_lets_one_wait_through_per_ring_however_often_it_rang() -> None:
    bell = Doorbell()
    bell.ring()
    bell.ring()  # open already: no error, and still one wait only
    bell.wait()
    second = threading.Thread(target=bell.wait, daemon=True)
    second.start()
    second.join(0.2)
    assert second.is_alive()  # the door closed behind the first wait
    bell.ring()
    second.join(WAIT / 1000)
    assert not second.is_alive()


def test_a_doorbell_rung_from_another_thread_wakes_the_waiter() -> None:
    bell = Doorbell()
    woke = threading.Event()

    def waiter() -> None:
        bell.wait()
        woke.set()

    t = threading.Thread(target=waiter, daemon=True)
    t.start()
    threading.Thread(target=bell.ring, daemon=True).start()
    assert woke.wait(WAIT / 1000)
    t.join(WAIT / 1000)


def test_a_wake_up_set_after_it_closed_writes_nothing_anywhere() -> None:
    # Terminate (set) can come from another thread just as the worker ends (close): the
    # descriptor's number may then already name another file, which must get nothing
    a, b = socket.socketpair()
    wake = WakeUp()
    number = wake.fd
    wake.close()
    try:
        os.dup2(a.fileno(), number)  # the number now names a socket, as a reuse would
        wake.set()
        assert wake.signalled
        b.setblocking(False)
        with pytest.raises(BlockingIOError):
            b.recv(64)  # nothing was written through the old number
    finally:
        os.close(number)
        a.close()
        b.close()
