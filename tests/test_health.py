"""Connection health: keepalive options, idle and connect timeouts, reconnect, limits."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from sockcomp import (
    ClientSocket, ESocketError, ServerSocket, ctBlocking, eeConnect, eeGeneral, stNonBlocking,
    stThreadBlocking,
)
from tests.util import EventLog, free_port, os_socket


def listening_server(**props) -> ServerSocket:
    srv = ServerSocket()
    srv.Address, srv.Port = "127.0.0.1", 0
    for name, value in props.items():
        setattr(srv, name, value)
    srv.Open()
    return srv


def connected_client(qtbot, srv: ServerSocket, **props) -> tuple[ClientSocket, EventLog]:
    """A ClientSocket connected to ``srv`` (``props`` set before Open), and its event log."""
    cli = ClientSocket()
    cli.Address, cli.Port = "127.0.0.1", srv.Socket.LocalPort
    for name, value in props.items():
        setattr(cli, name, value)
    log = EventLog(cli)
    cli.Open()
    qtbot.waitUntil(lambda: cli.Active, timeout=5000)
    return cli, log


def test_keepalive_options_reach_the_os_on_both_sides(qtbot) -> None:
    srv = listening_server(KeepAlive=True, KeepAliveTime=7000, KeepAliveInterval=2000,
                           KeepAliveCount=3)
    cli = ClientSocket()
    cli.Address, cli.Port = "127.0.0.1", srv.Socket.LocalPort
    cli.KeepAlive, cli.KeepAliveTime, cli.KeepAliveInterval, cli.KeepAliveCount = \
        True, 1500, 700, 5
    cli.Open()
    qtbot.waitUntil(lambda: cli.Active and srv.Socket.ActiveConnections == 1, timeout=5000)

    def options(winsock) -> tuple[int, int, int, int]:
        with os_socket(winsock) as sock:
            return (sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                    sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                    sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                    sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT))

    assert options(cli.Socket) == (1, 2, 1, 5)  # ms rounded up to whole seconds
    assert options(srv.Socket.Connections[0]) == (1, 7, 2, 3)
    # the properties read back what the OS was given, and the detection bound follows them
    assert (cli.KeepAliveTime, cli.KeepAliveInterval) == (2000, 1000)
    assert cli.KeepAliveDetectionTime == cli.Socket.KeepAliveDetectionTime == 2000 + 5 * 1000
    assert srv.KeepAliveDetectionTime == 7000 + 3 * 2000
    cli.Close()
    srv.Close()


def test_keepalive_off_by_default(qtbot) -> None:
    srv = listening_server()
    cli = ClientSocket()
    cli.Address, cli.Port = "127.0.0.1", srv.Socket.LocalPort
    cli.Open()
    qtbot.waitUntil(lambda: cli.Active, timeout=5000)
    with os_socket(cli.Socket) as sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
    assert not cli.KeepAlive and cli.KeepAliveTime == 30000
    cli.Close()
    srv.Close()


def test_idle_timeout_closes_a_silent_connection_with_a_distinct_error(qtbot, hook) -> None:
    srv = listening_server(IdleTimeout=300)
    log = EventLog(srv)
    with socket.create_connection(("127.0.0.1", srv.Socket.LocalPort)) as peer:
        peer.sendall(b"some traffic")
        qtbot.waitUntil(lambda: log.count("OnClientDisconnect") == 1, timeout=5000)
        assert peer.recv(100) == b""  # closed by the server
    names = [n for n in log.names() if n.startswith("OnClient")]
    assert names == ["OnClientConnect", "OnClientWrite", "OnClientRead", "OnClientError",
                     "OnClientDisconnect"]
    _, _, event, code = log.args("OnClientError")
    assert (event, code.value) == (eeGeneral, 10060)
    assert "idle" in str(hook[0]) and hook[0].ErrorCode == 10060
    srv.Close()


@pytest.mark.parametrize("server_type", [stNonBlocking, stThreadBlocking],
                         ids=["nonblocking", "thread"])
def test_traffic_keeps_an_idle_timeout_from_firing(qtbot, server_type) -> None:
    srv = listening_server(ServerType=server_type, IdleTimeout=400)
    srv.OnClientRead.connect(lambda s, sock: sock.ReceiveText())
    cli, log = connected_client(qtbot, srv)
    for _ in range(8):  # 8 × 150 ms of chatter: three times the timeout, never idle
        cli.Socket.SendText("tick")
        qtbot.wait(150)
    assert srv.Socket.ActiveConnections == 1 and log.count("OnDisconnect") == 0
    cli.Close()
    srv.Close()


@pytest.mark.parametrize("server_type", [stNonBlocking, stThreadBlocking],
                         ids=["nonblocking", "thread"])
def test_sends_alone_keep_an_idle_timeout_from_firing(qtbot, hook, server_type) -> None:
    """Traffic is either way: a peer that only listens is not idle while the server talks."""
    srv = listening_server(ServerType=server_type, IdleTimeout=400)
    log = EventLog(srv)
    with socket.create_connection(("127.0.0.1", srv.Socket.LocalPort)) as peer:
        qtbot.waitUntil(lambda: srv.Socket.ActiveConnections == 1, timeout=5000)
        conn = srv.Socket.Connections[0]
        for _ in range(8):  # 8 × 150 ms of talk: three times the timeout
            assert conn.SendText("tick") == 4
            qtbot.wait(150)
        assert log.count("OnClientDisconnect") == 0
        silent_since = time.monotonic()
        qtbot.waitUntil(lambda: log.count("OnClientDisconnect") == 1, timeout=5000)
        assert time.monotonic() - silent_since >= 0.25  # the last send counted
        assert peer.recv(100) == b"tick" * 8
    srv.Close()


def test_an_idle_timeout_holds_for_a_blocking_client_opened_in_a_worker(qtbot, qtlog,
                                                                         hook) -> None:
    """A ctBlocking client made in the GUI thread and opened in a worker (where its events
    fire): its idle deadline is watched from the GUI thread all the same (the timer was once
    started from the worker, which Qt refuses, and the deadline never came)."""
    srv = listening_server()
    cli = ClientSocket()
    cli.ClientType, cli.Address, cli.Port = ctBlocking, "127.0.0.1", srv.Socket.LocalPort
    cli.IdleTimeout = 300
    log = EventLog(cli)
    worker = threading.Thread(target=cli.Open, name="worker")
    worker.start()
    worker.join(10)
    assert not worker.is_alive() and cli.Socket.Connected
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1, timeout=5000)
    assert log.names() == ["OnLookup", "OnConnecting", "OnConnect", "OnError", "OnDisconnect"]
    _, _, event, code = log.args("OnError")
    assert (event, code.value) == (eeGeneral, 10060)
    assert [e.ErrorCode for e in hook] == [10060]
    assert [r.message for r in qtlog.records if "thread" in r.message] == []
    srv.Close()


def test_an_idle_timeout_set_on_a_live_connection_counts_from_then(qtbot, hook) -> None:
    """Without a timeout the connection's traffic is not stamped: one set later starts from
    the moment it is set, not from the last stamp (the connection's start)."""
    srv = listening_server()
    cli, log = connected_client(qtbot, srv)
    qtbot.wait(400)  # silent for longer than the timeout about to be set
    set_at = time.monotonic()
    cli.IdleTimeout = 300
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1, timeout=5000)
    assert time.monotonic() - set_at >= 0.29
    srv.Close()


def test_writing_the_same_idle_timeout_again_does_not_restart_it(qtbot, hook) -> None:
    """A binding or a settings reload may write IdleTimeout over and over: a silent connection
    must still time out, counting from its last traffic (found in review)."""
    srv = listening_server()
    cli, log = connected_client(qtbot, srv, IdleTimeout=300)
    for _ in range(15):  # 1.5 s of rewriting the same value, five times the timeout
        if log.count("OnDisconnect"):
            break
        cli.IdleTimeout = 300
        qtbot.wait(100)
    assert log.count("OnDisconnect") == 1
    srv.Close()


def test_an_idle_timeout_set_past_the_setters_still_counts_traffic(qtbot, hook) -> None:
    """``Socket.settings.IdleTimeout`` written directly skips the setter that turns stamping
    on; the idle watch turns it on when it first looks, so a busy connection is never taken
    for an idle one."""
    srv = listening_server()
    srv.OnClientRead.connect(lambda s, sock: sock.ReceiveText())
    cli, log = connected_client(qtbot, srv)
    cli.Socket.settings.IdleTimeout = 300
    cli.KeepAlive = cli.KeepAlive  # any setting written through the component arms the watch
    for _ in range(8):  # 8 × 100 ms of chatter
        cli.Socket.SendText("tick")
        qtbot.wait(100)
    assert log.count("OnDisconnect") == 0
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1, timeout=5000)  # then silence
    srv.Close()


def test_connect_timeout_without_a_thread(qtbot, hook) -> None:
    # A listener with a full backlog that never accepts: the SYN goes unanswered.
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(0)
    fillers = []
    port = blocker.getsockname()[1]
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    threads_before = threading.active_count()
    cli = ClientSocket()
    cli.Address, cli.Port, cli.ConnectTimeout = "127.0.0.1", port, 300
    log = EventLog(cli)
    cli.Open()
    assert threading.active_count() == threads_before
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1, timeout=5000)
    assert log.names() == ["OnLookup", "OnConnecting", "OnError", "OnDisconnect"]
    _, _, event, code = log.args("OnError")
    assert (event, code.value) == (eeConnect, 10060)
    assert hook[0].ErrorCode == 10060 and "'connect'" in str(hook[0])
    for s in fillers:
        s.close()
    blocker.close()


def test_max_connections_is_never_exceeded_in_a_storm(qtbot) -> None:
    srv = listening_server(MaxConnections=5, BannerTooBusy="busy, try later\n")
    peak = []
    srv.OnClientConnect.connect(lambda s, sock: peak.append(srv.Socket.ActiveConnections))
    results: list[bytes] = []
    lock = threading.Lock()

    def storm() -> None:
        conns = []
        for _ in range(40):
            c = socket.create_connection(("127.0.0.1", srv.Socket.LocalPort), timeout=10)
            conns.append(c)
        for c in conns:
            c.settimeout(0.5)
            try:
                data = c.recv(100)
            except TimeoutError:
                data = b"(kept)"
            with lock:
                results.append(data)
            c.close()

    workers = [threading.Thread(target=storm) for _ in range(3)]
    for w in workers:
        w.start()
    qtbot.waitUntil(lambda: len(results) == 120, timeout=20000)
    for w in workers:
        w.join()
    assert max(peak) <= 5
    assert results.count(b"(kept)") == 5 or results.count(b"(kept)") <= 5
    assert results.count(b"busy, try later\n") >= 115
    assert srv.Socket.RefusedConnections >= 115
    srv.Close()


def test_send_queue_limit_and_low_water_backpressure(qtbot) -> None:
    """A slow reader: SendBuf accepts only what fits; OnWrite says when to go on."""
    listener = socket.create_server(("127.0.0.1", 0))
    cli = ClientSocket()
    cli.Address, cli.Port = "127.0.0.1", listener.getsockname()[1]
    cli.SendQueueLimit, cli.SendQueueLowWater = 256 * 1024, 64 * 1024
    total = 24 * 1024 * 1024
    chunk = b"x" * 65536
    state = {"sent": 0, "writes": 0, "max_queue": 0, "refused": 0}

    def pump_data(sender=None, sock=None) -> None:
        state["writes"] += 1
        s = cli.Socket
        while state["sent"] < total:
            n = s.SendBuf(chunk[: min(len(chunk), total - state["sent"])])
            state["max_queue"] = max(state["max_queue"], s.SendQueueLength)
            if n <= 0:
                state["refused"] += 1
                return
            state["sent"] += n

    cli.OnWrite.connect(pump_data)
    cli.Open()
    conn, _ = listener.accept()
    received = [0]

    def reader() -> None:
        while received[0] < total:
            data = conn.recv(8192)
            if not data:
                return
            received[0] += len(data)

    # the reader starts once the queue is full: with a reader from the start, a fast one could
    # keep the kernel's buffers from ever filling, and nothing would be refused
    qtbot.waitUntil(lambda: state["refused"] > 0, timeout=10000)
    worker = threading.Thread(target=reader)
    worker.start()
    qtbot.waitUntil(lambda: received[0] == total, timeout=60000)
    worker.join()
    assert state["max_queue"] <= 256 * 1024  # memory stays bounded
    assert state["refused"] > 0 and state["writes"] > 1  # backpressure really happened
    cli.Close()
    conn.close()
    listener.close()


def test_auto_reconnect_after_server_restart_keeps_messages_once(qtbot) -> None:
    port = free_port()
    srv = ServerSocket()
    srv.Address, srv.Port = "127.0.0.1", port
    lines: list[str] = []

    def collect(sender, sock) -> None:
        lines.extend(t for t in sock.ReceiveText().split("\n") if t)

    srv.OnClientRead.connect(collect)
    srv.Open()
    cli = ClientSocket()
    cli.Address, cli.Port = "127.0.0.1", port
    cli.AutoReconnect, cli.ReconnectInterval, cli.ReconnectMaxInterval = True, 50, 400
    cli.OnError.connect(lambda s, sock, e, code: setattr(code, "value", 0))
    log = EventLog(cli)
    cli.Open()
    qtbot.waitUntil(lambda: cli.Active, timeout=5000)
    cli.Socket.SendText("before\n")
    qtbot.waitUntil(lambda: lines == ["before"], timeout=5000)

    srv.Close()  # the server goes away
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1, timeout=5000)
    assert cli.Socket.SendText("during 1\n") == 9   # kept for the next connection
    assert cli.Socket.SendText("during 2\n") == 9
    qtbot.waitUntil(lambda: log.count("OnReconnect") >= 3, timeout=5000)  # refused, retrying
    connected_at: list[float] = []
    cli.OnConnect.connect(lambda s, sock: connected_at.append(time.monotonic()))
    back_at = time.monotonic()
    srv.Open()  # back on the same port
    qtbot.waitUntil(lambda: lines == ["before", "during 1", "during 2"], timeout=5000)
    assert cli.Active and cli.ReconnectAttempt == 0
    # back within the backoff bound: the next attempt comes at most ReconnectMaxInterval later
    assert connected_at[0] - back_at <= 0.400 + 0.5
    cli.Socket.SendText("after\n")
    qtbot.waitUntil(lambda: lines[-1:] == ["after"], timeout=5000)
    assert lines == ["before", "during 1", "during 2", "after"]  # none lost, none twice
    names = log.names()
    assert names.count("OnConnect") == 2
    # every attempt announced; the delays grew (50, 100, 200, 400, 400, ...) — bounded by cap
    assert names.count("OnReconnect") >= 3
    cli.Close()
    assert cli.Socket.SendText("closed\n") == 0  # Close() stops the reconnecting and keeping
    srv.Close()


def test_close_stops_auto_reconnect(qtbot) -> None:
    port = free_port()
    cli = ClientSocket()
    cli.Address, cli.Port = "127.0.0.1", port
    cli.AutoReconnect, cli.ReconnectInterval = True, 20
    cli.OnError.connect(lambda s, sock, e, code: setattr(code, "value", 0))
    log = EventLog(cli)
    cli.Open()
    qtbot.waitUntil(lambda: log.count("OnReconnect") >= 2, timeout=5000)
    cli.Close()
    count = log.count("OnReconnect")
    qtbot.wait(200)  # ten intervals: no attempt may follow
    assert log.count("OnReconnect") == count


def test_bad_health_values_are_refused() -> None:
    cli = ClientSocket()
    for name, value in [("KeepAliveTime", 0), ("KeepAliveCount", -1), ("IdleTimeout", -5),
                        ("SendQueueLimit", "big")]:
        with pytest.raises(ESocketError):
            setattr(cli, name, value)
    srv = ServerSocket()
    with pytest.raises(ESocketError):
        srv.MaxConnections = -1


def test_connect_timeout_ends_with_the_attempt(qtbot) -> None:
    """Once connected, the connect timeout is stopped: nothing fires when it would have expired."""
    srv = listening_server()
    cli = ClientSocket()
    cli.Address, cli.Port, cli.ConnectTimeout = "127.0.0.1", srv.Socket.LocalPort, 150
    log = EventLog(cli)
    cli.Open()
    qtbot.waitUntil(lambda: cli.Active, timeout=5000)
    assert cli.Socket._connect_timer is None  # stopped, and released with the attempt
    qtbot.wait(300)  # twice the timeout: no error, still connected
    assert log.names() == ["OnLookup", "OnConnecting", "OnConnect", "OnWrite"] and cli.Active
    cli.Close()
    srv.Close()
