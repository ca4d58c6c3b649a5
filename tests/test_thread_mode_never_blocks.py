"""A socket call made in the component's thread never waits on the network, in any mode.

The component's thread is the GUI thread, where every event handler runs. Socket methods are safe
to call from any thread. In ``stThreadBlocking`` mode the worker thread does the blocking I/O and a
handler works on buffers: ``ReceiveBuf``/``ReceiveText`` return what the worker has read (-1 / ''
when nothing is there yet), and ``SendBuf``/``SendText`` queue (up to ``SendQueueLimit``) for the
worker to flush.

Each scenario that could freeze the GUI runs a ``Watchdog``, which must never see a stall of
100 ms or more. The server scenarios also run an ``EchoProbe``: a second client of the same server
that must keep getting its echoes meanwhile. A ``Close()`` made inside a handler is timed instead,
against the bound each test states. Plain-socket peers run in threads of their own. A peer that
holds back on purpose (a client that does not read, or a client that stays silent) gives up after
``HOLD`` seconds. So a component that does block fails the test instead of hanging it.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest
from PySide6.QtCore import QTimer, qInstallMessageHandler

from sockcomp import (
    ClientSocket, ServerClientThread, ServerSocket, WinSocketStream, ctBlocking, ctNonBlocking,
    eeAccept, stNonBlocking, stThreadBlocking,
)
from tests.util import EventLog, Job, Watchdog, recv_exactly, recv_until_eof

WAIT = 5000          # ms: qtbot.waitUntil
IO_TIMEOUT = 5.0     # s: blocking calls of plain-socket peers
HOLD = 6.0           # s: a peer holding back on purpose gives up after this (failsafe)
PROBE_TIMEOUT = 3.0  # s: the probe's wait for one echo
PROBE_LIFETIME = 8.0
STALL_MS = 100       # the longest stall of the component's thread a test accepts

FIRST_CONNECTION = ["OnGetSocket", "OnAccept", "OnGetThread", "OnThreadStart",
                    "OnClientConnect", "OnClientWrite"]
NONBLOCKING_CONNECTION = ["OnGetSocket", "OnAccept", "OnClientConnect", "OnClientWrite"]

REPO = Path(__file__).resolve().parents[1]


# -- helpers -----------------------------------------------------------------------------------




def request(port: int, data: bytes, reply_len: int) -> bytes:
    """Connect, send, read ``reply_len`` bytes, close."""
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as s:
        s.sendall(data)
        return recv_exactly(s, reply_len)


def first_difference(a: bytes, b: bytes) -> str:
    """Where two large byte strings part (pytest's own diff of megabytes would take ages)."""
    for i in range(0, min(len(a), len(b)), 65536):
        if a[i:i + 65536] != b[i:i + 65536]:
            j = next(k for k in range(i, i + 65536) if a[k] != b[k])
            return f"first difference at byte {j}: {a[j:j + 20]!r} != {b[j:j + 20]!r}"
    return f"lengths {len(a)} and {len(b)}"


def events_for(log: EventLog, sock: Any) -> list[str]:
    """The names of the events whose Socket argument is ``sock``, in order."""
    return [name for name, args in log.events if len(args) > 1 and args[1] is sock]


@contextlib.contextmanager
def qt_messages() -> Iterator[list[str]]:
    """Record Qt's warnings (qInstallMessageHandler) while the block runs, then restore."""
    messages: list[str] = []
    previous = qInstallMessageHandler(lambda mode, context, message: messages.append(message))
    try:
        yield messages
    finally:
        qInstallMessageHandler(previous)


def cross_thread_warnings(messages: list[str]) -> list[str]:
    """Qt's complaints about a notifier or object used from the wrong thread."""
    return [m for m in messages if "qsocketnotifier" in m.lower() or "thread" in m.lower()]


def wait_quietly(qtbot, predicate: Callable[[], bool], timeout: int = WAIT) -> bool:
    """waitUntil that returns False on timeout, so the exact assertion that follows explains."""
    try:
        qtbot.waitUntil(predicate, timeout=timeout)
    except qtbot.TimeoutError:
        return False
    return True


class Reader:
    """Reads a plain socket in a thread of its own until EOF (or ``expected`` bytes).

    With a ``gate`` it does not read until the gate is set, or until ``HOLD`` seconds have passed
    (``gate_timed_out``), so a writer blocked on it is freed and the test fails instead of
    hanging.
    """

    def __init__(self, sock: socket.socket, expected: Optional[int] = None,
                 gate: Optional[threading.Event] = None, keep: bool = True) -> None:
        sock.settimeout(IO_TIMEOUT)
        self.sock = sock
        self.expected = expected
        self.gate = gate
        self.keep = keep
        self.chunks: list[bytes] = []
        self.received = 0
        self.only_zeros = True
        self.eof = False
        self.gate_timed_out = False
        self.error: Optional[BaseException] = None
        self.started = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="test-reader")
        self.thread.start()

    def _run(self) -> None:
        try:
            if self.gate is not None and not self.gate.wait(HOLD):
                self.gate_timed_out = True
            self.started.set()
            while self.expected is None or self.received < self.expected:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    self.eof = True
                    break
                self.received += len(chunk)
                if self.keep:
                    self.chunks.append(chunk)
                elif chunk.count(0) != len(chunk):
                    self.only_zeros = False
        except OSError as exc:
            self.error = exc
        finally:
            self.done.set()

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


class EchoProbe:
    """A second client of the server under test: pings, and checks each echo, in a thread.

    It connects in the constructor (the test's thread), so its port is known before the server
    sees the connection. It waits at most ``PROBE_TIMEOUT`` for an echo and gives up after
    ``PROBE_LIFETIME``; then it closes its socket.
    """

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port: int = self.sock.getsockname()[1]
        self.echoes = 0
        self.errors: list[Any] = []
        self._stop = threading.Event()
        self.done = threading.Event()
        self._deadline = time.monotonic() + PROBE_LIFETIME
        self.thread = threading.Thread(target=self._run, daemon=True, name="test-probe")
        self.thread.start()

    def _run(self) -> None:
        seq = 0
        try:
            while not self._stop.is_set() and time.monotonic() < self._deadline:
                msg = b"ping%06d\n" % seq
                self.sock.sendall(msg)
                got = recv_exactly(self.sock, len(msg))
                if got != msg:
                    self.errors.append(("wrong echo", msg, got))
                    return
                self.echoes += 1
                seq += 1
                self._stop.wait(0.005)  # pacing: one ping every few ms, not a flood
        except OSError as exc:
            self.errors.append(exc)
        finally:
            self.done.set()
            self.sock.close()

    def expect_more(self, qtbot, more: int) -> None:
        """Wait until ``more`` further echoes came back (the server kept serving this client)."""
        target = self.echoes + more
        wait_quietly(qtbot, lambda: self.echoes >= target or self.done.is_set())
        assert self.echoes >= target, (
            f"the other client got {self.echoes} echoes, wanted {target}; errors {self.errors}")

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(PROBE_TIMEOUT + 2)


def echo_for(ports: set[int]) -> Callable[[Any, Any], None]:
    """OnClientRead handler echoing the text of the clients whose port is in ``ports``."""
    def on_read(Sender, Socket) -> None:
        if Socket.RemotePort in ports:
            Socket.SendText(Socket.ReceiveText())
    return on_read


class Resources:
    """Components, plain sockets, probes and gates of one test, released at its end."""

    def __init__(self) -> None:
        self.components: list[Any] = []
        self.sockets: list[socket.socket] = []
        self.probes: list[EchoProbe] = []
        self.gates: list[threading.Event] = []
        self.probe_ports: set[int] = set()

    def server(self, server_type, **props: Any) -> ServerSocket:
        srv = ServerSocket()
        self.components.append(srv)
        srv.ServerType = server_type
        srv.Address = "127.0.0.1"
        srv.Port = 0
        for name, value in props.items():
            setattr(srv, name, value)
        return srv

    def client(self, client_type, port: int) -> ClientSocket:
        cli = ClientSocket()
        self.components.append(cli)
        cli.ClientType = client_type
        cli.Address = "127.0.0.1"
        cli.Port = port
        return cli

    def listener(self) -> socket.socket:
        lst = socket.create_server(("127.0.0.1", 0))
        lst.settimeout(IO_TIMEOUT)
        self.sockets.append(lst)
        return lst

    def accept(self, lst: socket.socket) -> socket.socket:
        conn, _ = lst.accept()
        conn.settimeout(IO_TIMEOUT)
        self.sockets.append(conn)
        return conn

    def connect(self, port: int) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sockets.append(s)
        return s

    def probe(self, port: int) -> EchoProbe:
        p = EchoProbe(port)
        self.probes.append(p)
        self.probe_ports.add(p.port)
        return p

    def gate(self) -> threading.Event:
        g = threading.Event()
        self.gates.append(g)
        return g

    def close(self) -> None:
        for g in self.gates:
            g.set()
        for p in self.probes:
            p.stop()
        for s in self.sockets:
            s.close()
        for comp in reversed(self.components):
            comp.Close()


@pytest.fixture
def res(qtbot):
    r = Resources()
    yield r
    r.close()


# -- 1: SendBuf of 64 MB in OnClientConnect, thread mode -----------------------------------------

@pytest.mark.timeout(30)
def test_sendbuf_64mb_in_onclientconnect_queues_up_to_the_limit_and_returns(qtbot, res, hook):
    limit = 4 * 1024 * 1024
    big = bytes(64 * 1024 * 1024)
    srv = res.server(stThreadBlocking, SendQueueLimit=limit)
    ss = srv.Socket
    log = EventLog(srv)
    sent: dict[str, Any] = {}

    def on_connect(Sender, Socket):
        if Socket.RemotePort not in res.probe_ports:  # the client that never reads
            sent["socket"] = Socket
            sent["n"] = Socket.SendBuf(big)

    srv.OnClientConnect.connect(on_connect)
    srv.OnClientRead.connect(echo_for(res.probe_ports))
    srv.Open()
    port = ss.LocalPort

    dog = Watchdog().start()
    probe = res.probe(port)
    probe.expect_more(qtbot, 3)
    go = res.gate()
    reader = Reader(res.connect(port), gate=go, keep=False)  # does not read until go
    qtbot.waitUntil(lambda: "n" in sent, timeout=WAIT)
    n = sent["n"]
    assert 0 < n <= limit, f"SendBuf in OnClientConnect returned {n}"
    probe.expect_more(qtbot, 5)  # the server keeps serving the other client meanwhile
    assert not reader.started.is_set(), "the first client had to read before SendBuf returned"
    stall = dog.stop()
    assert stall < STALL_MS, f"the component's thread stalled for {stall:.0f} ms"

    go.set()  # now the first client reads: it gets exactly what SendBuf accepted
    qtbot.waitUntil(lambda: reader.received >= n or reader.done.is_set(), timeout=WAIT)
    sent["socket"].Close()
    qtbot.waitUntil(lambda: reader.done.is_set()
                    and "OnClientDisconnect" in events_for(log, sent["socket"]), timeout=WAIT)
    qtbot.wait(50)  # nothing further comes
    assert reader.error is None and reader.eof
    assert reader.received == n
    assert reader.only_zeros
    names = events_for(log, sent["socket"])
    assert names[:3] == ["OnAccept", "OnGetThread", "OnClientConnect"]
    assert names.count("OnClientDisconnect") == 1 and names[-1] == "OnClientDisconnect"
    assert probe.errors == []
    assert hook == []


# -- 2: the classic ReceiveBuf loop in OnClientRead ----------------------------------------------

@pytest.mark.timeout(30)
@pytest.mark.parametrize("server_type", [stThreadBlocking, stNonBlocking],
                         ids=["thread", "nonblocking"])
def test_classic_receivebuf_loop_in_onclientread_ends_with_minus_one(qtbot, res, hook,
                                                                     server_type):
    srv = res.server(server_type)
    ss = srv.Socket
    log = EventLog(srv)
    last: dict[int, list[int]] = {}
    by_port: dict[int, Any] = {}

    def on_read(Sender, Socket):  # the Delphi handler, line for line (it also serves the probe)
        buf = bytearray(4096)
        while (n := Socket.ReceiveBuf(buf)) > 0:
            Socket.SendBuf(buf[:n])
        by_port[Socket.RemotePort] = Socket
        last.setdefault(Socket.RemotePort, []).append(n)

    srv.OnClientRead.connect(on_read)
    srv.Open()
    port = ss.LocalPort

    dog = Watchdog().start()
    probe = res.probe(port)
    probe.expect_more(qtbot, 3)
    release = res.gate()
    hello = res.connect(port)
    hello_port = hello.getsockname()[1]
    got: dict[str, Any] = {}

    def hello_client():
        t0 = time.monotonic()
        hello.sendall(b"hello")
        got["reply"] = recv_exactly(hello, 5)
        got["elapsed"] = time.monotonic() - t0
        release.wait(HOLD)  # stays connected and silent until the test is done
        hello.shutdown(socket.SHUT_WR)

    job = Job(hello_client)
    qtbot.waitUntil(lambda: "reply" in got, timeout=WAIT)
    assert got["reply"] == b"hello"
    assert got["elapsed"] < 2.0
    qtbot.waitUntil(lambda: hello_port in last, timeout=WAIT)
    assert last[hello_port] == [-1], "ReceiveBuf did not return -1 when nothing was buffered"
    probe.expect_more(qtbot, 5)
    stall = dog.stop()
    assert stall < STALL_MS, f"the component's thread stalled for {stall:.0f} ms"

    connection = ["OnAccept", "OnGetThread", "OnClientConnect", "OnClientWrite", "OnClientRead"]
    if server_type == stNonBlocking:
        connection.remove("OnGetThread")
    names = events_for(log, by_port[hello_port])
    assert names[:len(connection)] == connection
    assert set(names[len(connection):]) <= {"OnClientWrite"}  # no second OnClientRead
    release.set()
    job.wait(qtbot)
    assert probe.errors == []
    assert hook == []


# -- 3: ServerSocket.Close() inside a client handler ---------------------------------------------

@pytest.mark.timeout(40)
@pytest.mark.parametrize("where", ["OnClientRead", "OnClientConnect"])
@pytest.mark.parametrize("server_type", [stThreadBlocking, stNonBlocking],
                         ids=["thread", "nonblocking"])
def test_server_close_inside_a_client_handler_returns_promptly(qtbot, res, hook, server_type,
                                                               where):
    thread_mode = server_type == stThreadBlocking
    srv = res.server(server_type)
    ss = srv.Socket
    log = EventLog(srv)  # connected first: it records each event before the handlers run
    threads: dict[Any, Any] = {}
    took: list[float] = []

    def close_server():
        t0 = time.monotonic()
        srv.Close()
        took.append(time.monotonic() - t0)

    def on_connect(Sender, Socket):
        threads[Socket] = ss.GetClientThread(Socket)
        if where == "OnClientConnect" and len(threads) == 2:
            close_server()

    def on_read(Sender, Socket):
        Socket.ReceiveText()
        if where == "OnClientRead" and not took:
            close_server()

    srv.OnClientConnect.connect(on_connect)
    srv.OnClientRead.connect(on_read)
    srv.Open()
    port = ss.LocalPort
    connection = FIRST_CONNECTION if thread_mode else NONBLOCKING_CONNECTION

    first = res.connect(port)
    qtbot.waitUntil(lambda: log.count("OnClientWrite") == 1, timeout=WAIT)
    second = res.connect(port)
    if where == "OnClientRead":
        qtbot.waitUntil(lambda: log.count("OnClientWrite") == 2, timeout=WAIT)
        first.sendall(b"x")
    qtbot.waitUntil(lambda: bool(took), timeout=15000)  # the broken Close waits 10 s for the thread
    assert took[0] < 1.0, f"Close() inside {where} took {took[0]:.2f} s"

    qtbot.waitUntil(lambda: log.count("OnClientDisconnect") == 2
                    and log.count("OnThreadEnd") == log.count("OnThreadStart"), timeout=WAIT)
    qtbot.wait(50)  # nothing further comes
    if where == "OnClientRead":
        before = ["OnListen"] + connection + connection + ["OnClientRead"]
    else:
        before = ["OnListen"] + connection + connection[:-1]
    names = log.names()
    assert names[:len(before)] == before
    ending = ["OnClientDisconnect"] * 2 + (["OnThreadEnd"] * 2 if thread_mode else [])
    assert sorted(names[len(before):]) == sorted(ending)
    disconnected = [args[1] for name, args in log.events if name == "OnClientDisconnect"]
    assert {id(s) for s in disconnected} == {id(s) for s in threads}  # once per client
    if thread_mode:
        ended = [args[1] for name, args in log.events if name == "OnThreadEnd"]
        assert {id(t) for t in ended} == {id(t) for t in threads.values()}
        for sock, thread in threads.items():  # per thread: its client's disconnect comes first
            i_disc = next(i for i, (n, a) in enumerate(log.events)
                          if n == "OnClientDisconnect" and a[1] is sock)
            i_end = next(i for i, (n, a) in enumerate(log.events)
                         if n == "OnThreadEnd" and a[1] is thread)
            assert i_disc < i_end
    assert srv.Active is False
    assert ss.ActiveConnections == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT).close()
    assert recv_until_eof(first) == b"" and recv_until_eof(second) == b""
    assert hook == []


# -- 4: a worker thread that cannot start; EMFILE at accept --------------------------------------

class UnstartableThread(ServerClientThread):
    """What OnGetThread hands over when the system has no resources left for a thread."""

    def start(self) -> None:
        raise RuntimeError("can't start new thread")


@pytest.mark.timeout(30)
def test_worker_thread_that_cannot_start_is_eaccept_10055_then_disconnect(qtbot, res, hook):
    srv = res.server(stThreadBlocking)
    ss = srv.Socket
    log = EventLog(srv)
    fail = [True]
    errors: list[tuple[Any, ...]] = []

    def on_get_thread(Sender, ClientSocket, SocketThread):
        if fail[0]:  # once; the next client gets the default thread
            fail[0] = False
            SocketThread.value = UnstartableThread(True, ClientSocket)

    def on_error(Sender, Socket, ErrorEvent, ErrorCode):
        errors.append((Sender, Socket, ErrorEvent, ErrorCode.value))
        ErrorCode.value = 0

    srv.OnGetThread.connect(on_get_thread)
    srv.OnClientError.connect(on_error)
    srv.OnClientRead.connect(lambda Sender, Socket: Socket.SendText(Socket.ReceiveText()))
    srv.Open()
    port = ss.LocalPort

    first = res.connect(port)
    wait_quietly(qtbot, lambda: log.count("OnClientDisconnect") == 1)
    qtbot.wait(50)  # nothing further comes
    assert log.names() == ["OnListen", "OnGetSocket", "OnAccept", "OnGetThread",
                           "OnClientError", "OnClientDisconnect"]
    client = log.args("OnAccept")[1]
    assert errors == [(ss, client, eeAccept, 10055)]
    assert log.args("OnClientDisconnect")[1] is client
    assert recv_until_eof(first) == b""
    assert ss.ActiveConnections == 0
    assert hook == []  # no raw RuntimeError; ErrorCode was cleared

    mark = len(log.names())
    assert Job(request, port, b"ping", 4).wait(qtbot) == b"ping"
    qtbot.waitUntil(lambda: log.count("OnClientDisconnect") == 2, timeout=WAIT)
    assert log.names()[mark:] == FIRST_CONNECTION + ["OnClientRead", "OnClientDisconnect"]
    assert type(log.args("OnThreadStart")[1]) is ServerClientThread
    assert ss.ActiveConnections == 0
    assert hook == []


EMFILE_SCRIPT = r'''
import errno, json, os, resource, socket, sys, time
from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer, SignalInstance
import sockcomp
from sockcomp import ServerSocket, ServerType

app = QCoreApplication([])
hooked = []
sockcomp.SetExceptionHook(lambda exc: hooked.append(f"{type(exc).__name__}: {exc}"))


def wait_until(predicate, ms):
    deadline = time.monotonic() + ms / 1000
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        loop = QEventLoop()
        QTimer.singleShot(5, loop.quit)
        loop.exec()
    return True


def read_exactly(sock, n, ms=5000):
    got = bytearray()

    def complete():
        try:
            chunk = sock.recv(n - len(got), socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True
        if not chunk:
            return True
        got.extend(chunk)
        return len(got) >= n

    wait_until(complete, ms)
    return got.decode("latin-1")


srv = ServerSocket()
srv.ServerType = ServerType[sys.argv[1]]
srv.Address = "127.0.0.1"
srv.Port = 0
errors = []
signal = getattr(srv, "OnError", None)
has_on_error = isinstance(signal, SignalInstance)
if has_on_error:
    def on_error(Sender, Socket, ErrorEvent, ErrorCode):
        errors.append([Sender is srv, Socket is srv.Socket, int(ErrorEvent), ErrorCode.value,
                       srv.Socket.ActiveConnections, len(srv.Socket.Connections)])
        ErrorCode.value = 0
    signal.connect(on_error)
srv.OnClientRead.connect(lambda Sender, Socket: Socket.SendText(Socket.ReceiveText()))
srv.Open()
port = srv.Socket.LocalPort

c0 = socket.create_connection(("127.0.0.1", port), timeout=5)  # served before the shortage
c0.settimeout(None)  # blocking: recv(MSG_DONTWAIT) must not wait (a timeout socket would poll)
c0.sendall(b"zero")
echo0 = read_exactly(c0, 4)
c1 = socket.socket()  # made now: connecting it later takes no new descriptor
c1.settimeout(5)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 65, hard))
dummies = []
while True:  # take every descriptor left
    try:
        dummies.append(os.open(os.devnull, os.O_RDONLY))
    except OSError as exc:
        if exc.errno != errno.EMFILE:
            raise
        break
c1.connect(("127.0.0.1", port))  # the kernel completes it; the server's accept() gets EMFILE
c1.settimeout(None)
c1.sendall(b"one")
reported = wait_until(lambda: errors, 3000)
wait_until(lambda: False, 300)  # accept keeps failing a while: still nothing half-registered
active_during = srv.Socket.ActiveConnections
connections_during = len(srv.Socket.Connections)
for fd in dummies:
    os.close(fd)
echo1 = read_exactly(c1, 3)  # the same pending connection is accepted and served now
c2 = socket.create_connection(("127.0.0.1", port), timeout=5)
c2.settimeout(None)
c2.sendall(b"two")
echo2 = read_exactly(c2, 3)
active_after = srv.Socket.ActiveConnections
for c in (c0, c1, c2):
    c.close()
wait_until(lambda: srv.Socket.ActiveConnections == 0, 3000)
srv.Close()
print(json.dumps({
    "has_on_error": has_on_error, "errors": errors[:5], "error_count": len(errors),
    "hooked": hooked[:5], "hook_count": len(hooked), "descriptors_taken": len(dummies),
    "echo0": echo0, "echo1": echo1, "echo2": echo2, "active_during": active_during,
    "connections_during": connections_during, "active_after": active_after,
}))
'''


@pytest.mark.timeout(60)
@pytest.mark.parametrize("server_type", ["stNonBlocking", "stThreadBlocking"])
def test_emfile_at_accept_is_the_listeners_onerror_and_serving_resumes(server_type):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-c", EMFILE_SCRIPT, server_type], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=45)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["descriptors_taken"] > 0
    assert summary["has_on_error"] is True, f"ServerSocket has no OnError signal: {summary}"
    # OnError(Sender=srv, Socket=srv.Socket, eeAccept, 10024), with only the served client
    # registered (ActiveConnections and Connections both 1)
    assert summary["error_count"] >= 1, summary
    assert all(e == [True, True, int(eeAccept), 10024, 1, 1] for e in summary["errors"]), summary
    assert summary["hooked"] == [], summary
    assert (summary["active_during"], summary["connections_during"]) == (1, 1), summary
    assert (summary["echo0"], summary["echo1"], summary["echo2"]) == ("zero", "one", "two")
    assert summary["active_after"] == 3


# -- 5: ReceiveText on a blocking socket after half a UTF-8 character ----------------------------

def split_char_peer(res: Resources, second: threading.Event, done: threading.Event):
    """A peer that sends b'\\xc3', then b'\\xa9' once ``second`` is set, then waits for ``done``."""
    lst = res.listener()

    def run():
        conn, _ = lst.accept()
        with conn:
            conn.sendall(b"\xc3")
            if second.wait(IO_TIMEOUT):
                conn.sendall(b"\xa9")
            done.wait(IO_TIMEOUT)

    return lst.getsockname()[1], Job(run)


@pytest.mark.timeout(30)
def test_blocking_client_receivetext_completes_a_split_character(qtbot, res, hook):
    second, done = res.gate(), res.gate()
    port, peer = split_char_peer(res, second, done)
    cli = res.client(ctBlocking, port)
    cli.Open()
    stream = WinSocketStream(cli.Socket, 1000)
    assert stream.WaitForData(1000) is True
    assert cli.Socket.ReceiveText() == ""
    second.set()
    assert stream.WaitForData(1000) is True
    assert cli.Socket.ReceiveText() == "é"
    done.set()
    peer.wait(qtbot)
    assert hook == []


@pytest.mark.timeout(30)
def test_blocking_client_waitfordata_does_not_report_a_held_byte_again(qtbot, res, hook):
    second, done = res.gate(), res.gate()
    port, peer = split_char_peer(res, second, done)
    cli = res.client(ctBlocking, port)
    cli.Open()
    stream = WinSocketStream(cli.Socket, 1000)
    assert stream.WaitForData(1000) is True
    assert cli.Socket.ReceiveText() == ""
    t0 = time.monotonic()
    assert stream.WaitForData(200) is False, "the held first byte was reported as new data"
    assert time.monotonic() - t0 >= 0.15  # it waited: a `while not WaitForData(0)` loop idles
    second.set()
    done.set()
    peer.wait(qtbot)
    assert hook == []


@pytest.mark.timeout(30)
def test_thread_clientexecute_receivetext_split_character_without_spinning(qtbot, res, hook):
    srv = res.server(stThreadBlocking)
    ss = srv.Socket
    results: list[tuple[str, int]] = []

    class Utf8Thread(ServerClientThread):
        def ClientExecute(self) -> None:
            stream = WinSocketStream(self.ClientSocket, 2000)
            text, loops = "", 0
            deadline = time.monotonic() + 5  # the broken socket spins: stop it anyway
            while (not self.Terminated and "é" not in text and loops < 100_000
                   and time.monotonic() < deadline):
                loops += 1
                if stream.WaitForData(2000):
                    text += self.ClientSocket.ReceiveText()
            results.append((text, loops))

    def on_get_thread(Sender, ClientSocket, SocketThread):
        if ClientSocket.RemotePort not in res.probe_ports:
            SocketThread.value = Utf8Thread(False, ClientSocket)

    srv.OnGetThread.connect(on_get_thread)
    srv.OnClientRead.connect(echo_for(res.probe_ports))
    srv.Open()
    port = ss.LocalPort

    dog = Watchdog().start()
    probe = res.probe(port)
    probe.expect_more(qtbot, 3)
    peer = res.connect(port)

    def send_split():
        peer.sendall(b"\xc3")
        time.sleep(0.3)  # the scenario: the second byte comes later (not a synchronisation)
        peer.sendall(b"\xa9")
        peer.shutdown(socket.SHUT_WR)

    job = Job(send_split)
    qtbot.waitUntil(lambda: bool(results), timeout=10000)
    job.wait(qtbot)
    probe.expect_more(qtbot, 5)
    stall = dog.stop()
    text, loops = results[0]
    assert text == "é"
    assert loops < 20, f"the ClientExecute loop spun {loops} times on the held byte"
    assert stall < STALL_MS, f"the component's thread stalled for {stall:.0f} ms"
    assert probe.errors == []
    assert hook == []


# -- 6: SendBuf of 16 MB from a plain thread on a non-blocking client ----------------------------

def connected_client(qtbot, res: Resources) -> tuple[ClientSocket, socket.socket]:
    """A ctNonBlocking ClientSocket connected (in the GUI thread) to a plain peer."""
    lst = res.listener()
    cli = res.client(ctNonBlocking, lst.getsockname()[1])
    log = EventLog(cli)
    cli.Open()
    qtbot.waitUntil(lambda: log.count("OnWrite") == 1, timeout=WAIT)
    assert log.names() == ["OnLookup", "OnConnecting", "OnConnect", "OnWrite"]
    return cli, res.accept(lst)


@pytest.mark.timeout(30)
def test_sendbuf_16mb_from_a_plain_thread_on_a_nonblocking_client(qtbot, res, hook,
                                                                  pump_backend):
    payload = bytes(range(256)) * (16 * 4096)  # 16 MiB
    cli, conn = connected_client(qtbot, res)
    reader = Reader(conn, expected=len(payload) + 3)
    with qt_messages() as messages:
        dog = Watchdog().start()
        accepted = Job(cli.Socket.SendBuf, payload).wait(qtbot)
        assert accepted == len(payload)
        assert cli.Socket.SendBuf(b"END") == 3
        wait_quietly(qtbot, reader.done.is_set, timeout=15000)
        stall = dog.stop()
    assert reader.received == len(payload) + 3, (
        f"the peer got {reader.received} bytes ({reader.error!r}); Qt said {messages}")
    data = reader.data
    assert data == payload + b"END", first_difference(data, payload + b"END")
    assert cross_thread_warnings(messages) == []
    assert stall < STALL_MS, f"the component's thread stalled for {stall:.0f} ms"
    assert hook == []


# -- 7: four plain threads and the GUI thread send records through one socket --------------------

RECORDS_PER_THREAD = 4 * 1024 * 1024 // 10  # 10-byte records: 4 MB per thread
GUI_RECORDS = 2000
WORKERS = b"ABCD"
GUI = ord("G")
BATCH = 64 * 10  # bytes per SendBuf call of a worker: 64 whole records


def records(letter: int, count: int) -> bytes:
    return b"".join(b"%c%08d\n" % (letter, seq) for seq in range(count))


def send_records(sock: Any, payload: bytes) -> list[tuple[int, int]]:
    """A worker: SendBuf per batch of records; returns the calls that did not accept it all."""
    short = []
    for start in range(0, len(payload), BATCH):
        chunk = payload[start:start + BATCH]
        n = sock.SendBuf(chunk)
        if n != len(chunk):
            short.append((start, n))
    return short


class GuiSender:
    """The GUI thread's share: 20 records per timer tick, one SendBuf call per record."""

    def __init__(self, sock: Any, count: int) -> None:
        self.sock = sock
        self.count = count
        self.seq = 0
        self.short: list[tuple[int, int]] = []
        self.timer = QTimer()
        self.timer.setInterval(1)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        for _ in range(20):
            if self.seq >= self.count:
                self.timer.stop()
                return
            n = self.sock.SendBuf(b"%c%08d\n" % (GUI, self.seq))
            if n != 10:
                self.short.append((self.seq, n))
            self.seq += 1

    @property
    def finished(self) -> bool:
        return self.seq >= self.count


def check_records(data: bytes, payloads: dict[int, bytes]) -> list[str]:
    """Problems found: torn records, or a sender whose records are not all there in order."""
    if not data.endswith(b"\n"):
        return [f"the stream ends with {data[-20:]!r}"]
    groups: dict[bytes, list[bytes]] = {}
    torn = []
    for line in data[:-1].split(b"\n"):
        if len(line) != 9 or line[0] not in payloads or not line[1:].isdigit():
            torn.append(line)
        groups.setdefault(line[:1], []).append(line)
    problems = [f"{len(torn)} torn records, e.g. {torn[:3]!r}"] if torn else []
    for letter, payload in payloads.items():
        lines = groups.get(bytes([letter]), [])
        if b"\n".join(lines) + b"\n" != payload:
            seqs = [int(x[1:]) for x in lines if x[1:].isdigit()]
            in_order = next((i for i, s in enumerate(seqs) if s != i), len(seqs))
            wanted = payload.count(b"\n")
            problems.append(f"{chr(letter)}: {len(lines)} of {wanted} records, "
                            f"in order up to index {in_order}")
    return problems


def record_storm(qtbot, sock: Any, conn: socket.socket) -> None:
    payloads = {letter: records(letter, RECORDS_PER_THREAD) for letter in WORKERS}
    payloads[GUI] = records(GUI, GUI_RECORDS)
    total = sum(len(p) for p in payloads.values())
    reader = Reader(conn, expected=total)
    with qt_messages() as messages:
        dog = Watchdog().start()
        gui = GuiSender(sock, GUI_RECORDS)
        gui.timer.start()
        jobs = {letter: Job(send_records, sock, payloads[letter]) for letter in WORKERS}
        shorts = {chr(letter): job.wait(qtbot, timeout=20000) for letter, job in jobs.items()}
        qtbot.waitUntil(lambda: gui.finished, timeout=WAIT)
        wait_quietly(qtbot, reader.done.is_set, timeout=20000)
        stall = dog.stop()
    assert shorts == {"A": [], "B": [], "C": [], "D": []}  # SendQueueLimit 0: all accepted
    assert gui.short == []
    assert reader.received == total, f"the peer got {reader.received} of {total} bytes " \
                                     f"({reader.error!r})"
    assert check_records(reader.data, payloads) == []
    assert cross_thread_warnings(messages) == []
    assert stall < STALL_MS, f"the component's thread stalled for {stall:.0f} ms"


@pytest.mark.timeout(60)
def test_records_from_four_threads_and_the_gui_on_a_nonblocking_client(qtbot, res, hook,
                                                                      pump_backend):
    cli, conn = connected_client(qtbot, res)
    assert cli.Socket.SendQueueLimit == 0
    record_storm(qtbot, cli.Socket, conn)
    assert hook == []


@pytest.mark.timeout(60)
def test_records_from_four_threads_and_the_gui_on_a_thread_mode_client(qtbot, res, hook):
    srv = res.server(stThreadBlocking)
    clients: list[Any] = []
    srv.OnClientConnect.connect(lambda Sender, Socket: clients.append(Socket))
    srv.Open()
    conn = res.connect(srv.Socket.LocalPort)
    qtbot.waitUntil(lambda: bool(clients), timeout=WAIT)
    assert clients[0].SendQueueLimit == 0
    record_storm(qtbot, clients[0], conn)
    assert hook == []


# -- 8: Close from inside a handler; server Close while workers read -----------------------------

@pytest.mark.timeout(30)
def test_client_close_inside_onclientread_in_thread_mode_returns_promptly(qtbot, res, hook):
    srv = res.server(stThreadBlocking)
    ss = srv.Socket
    log = EventLog(srv)
    took: list[float] = []

    def on_read(Sender, Socket):
        Socket.ReceiveText()
        t0 = time.monotonic()
        Socket.Close()
        took.append(time.monotonic() - t0)

    srv.OnClientRead.connect(on_read)
    srv.Open()
    peer = res.connect(ss.LocalPort)
    peer.sendall(b"bye")
    qtbot.waitUntil(lambda: bool(took), timeout=WAIT)
    assert took[0] < 0.5, f"Socket.Close() inside OnClientRead took {took[0]:.2f} s"
    qtbot.waitUntil(lambda: log.count("OnClientDisconnect") == 1 and ss.ActiveThreads == 0,
                    timeout=WAIT)
    qtbot.wait(50)  # nothing further comes
    assert log.names() == (["OnListen"] + FIRST_CONNECTION
                           + ["OnClientRead", "OnClientDisconnect"])
    assert recv_until_eof(peer) == b""
    assert ss.ActiveConnections == 0
    assert hook == []


@pytest.mark.timeout(30)
def test_server_close_while_workers_read_ends_every_thread_before_returning(qtbot, res, hook):
    srv = res.server(stThreadBlocking)
    ss = srv.Socket
    log = EventLog(srv)
    srv.Open()
    port = ss.LocalPort
    peers = []
    for count in (1, 2):  # two idle clients: their default threads wait for data
        peers.append(res.connect(port))
        qtbot.waitUntil(lambda: log.count("OnClientWrite") == count, timeout=WAIT)
    qtbot.wait(20)  # the workers settle into their waits
    mark = len(log.names())
    t0 = time.monotonic()
    srv.Close()
    took = time.monotonic() - t0
    assert took < 1.0, f"Close() took {took:.2f} s"
    assert log.count("OnThreadEnd") == log.count("OnThreadStart") == 2
    assert log.names()[:mark] == ["OnListen"] + FIRST_CONNECTION + FIRST_CONNECTION
    assert sorted(log.names()[mark:]) == sorted(["OnClientDisconnect"] * 2 + ["OnThreadEnd"] * 2)
    assert srv.Active is False and ss.ActiveConnections == 0
    for peer in peers:
        assert recv_until_eof(peer) == b""
    assert hook == []


def test_helpers_compare_records_exactly():
    """check_records itself: a torn record and a missing one are both reported."""
    payloads = {ord("A"): records(ord("A"), 3), GUI: records(GUI, 2)}
    good = b"A00000000\nG00000000\nA00000001\nG00000001\nA00000002\n"
    assert check_records(good, payloads) == []
    assert check_records(good.replace(b"A00000001\n", b""), payloads) != []
    assert check_records(good.replace(b"G00000000\n", b"G0000G000\n"), payloads) != []
