"""Fault suite: resets, half-close, non-reading peers, storms, churn, exceptions in handlers.

Each test ends by checking that the process is back where it started: descriptors and threads.
"""
from __future__ import annotations

import gc
import os
import socket
import struct
import threading

import pytest
from PySide6.QtCore import QTimer

from sockcomp import ClientSocket, ServerSocket, fmLine, stNonBlocking, stThreadBlocking
from tests.util import EventLog


def open_fds() -> int:
    gc.collect()  # sockets of earlier tests closing mid-count would skew it
    return len(os.listdir("/proc/self/fd"))


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def server(**props) -> ServerSocket:
    srv = ServerSocket()
    srv.Address, srv.Port = "127.0.0.1", 0
    for name, value in props.items():
        setattr(srv, name, value)
    srv.Open()
    return srv


def test_peer_reset_in_the_middle_of_a_transfer(qtbot, hook) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    cli = ClientSocket()
    cli.Address, cli.Port = "127.0.0.1", listener.getsockname()[1]
    log = EventLog(cli)
    cli.OnConnect.connect(lambda s, sock: sock.SendBuf(b"z" * (16 * 1024 * 1024)))
    cli.Open()
    conn, _ = listener.accept()
    qtbot.waitUntil(lambda: cli.Socket.SendQueueLength > 0, timeout=5000)  # transfer under way
    conn.settimeout(5)
    conn.recv(65536)  # some of it arrived ...
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()      # ... then the peer resets
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1, timeout=5000)
    names = log.names()
    assert names[:3] == ["OnLookup", "OnConnecting", "OnConnect"]
    assert names[-2:] == ["OnError", "OnDisconnect"] and names.count("OnDisconnect") == 1
    assert log.args("OnError")[3].value == 10054
    assert [e.ErrorCode for e in hook] == [10054]
    assert cli.Socket.SendQueueLength == 0 and cli.Socket.SocketHandle == -1
    listener.close()


def test_peer_half_close_then_reply(qtbot) -> None:
    srv = server()
    got = bytearray()
    srv.OnClientRead.connect(lambda s, sock: got.extend(sock.ReceiveBytes()))
    srv.OnClientDisconnect.connect(lambda s, sock: sock.SendText(f"got {len(got)} bytes"))
    replies: list[bytes] = []

    def peer_side() -> None:
        with socket.create_connection(("127.0.0.1", srv.Socket.LocalPort), timeout=10) as peer:
            peer.sendall(b"q" * 300_000)
            peer.shutdown(socket.SHUT_WR)  # the peer is done sending, still reading
            reply = b""
            while chunk := peer.recv(100):
                reply += chunk
            replies.append(reply)

    worker = threading.Thread(target=peer_side)
    worker.start()
    qtbot.waitUntil(lambda: bool(replies), timeout=10000)
    worker.join()
    assert replies == [b"got 300000 bytes"]
    srv.Close()


def test_peer_that_never_reads_keeps_memory_bounded(qtbot) -> None:
    """Trying to push 100 MB at a peer that reads nothing: the queue stops at its limit."""
    listener = socket.create_server(("127.0.0.1", 0))
    cli = ClientSocket()
    cli.Address, cli.Port = "127.0.0.1", listener.getsockname()[1]
    cli.SendQueueLimit = 4 * 1024 * 1024
    cli.Open()
    conn, _ = listener.accept()  # accepted, never read
    qtbot.waitUntil(lambda: cli.Active, timeout=5000)
    before = rss_mb()
    block = b"m" * (1024 * 1024)
    accepted = refused = 0
    for _ in range(100):
        n = cli.Socket.SendBuf(block)
        if n > 0:
            accepted += n
        else:
            refused += 1
        qtbot.wait(1)  # let the loop flush what the kernel will still take
    assert refused > 50  # backpressure: most of the 100 MB was refused, not queued
    assert cli.Socket.SendQueueLength <= 4 * 1024 * 1024
    assert accepted < 40 * 1024 * 1024  # the queue limit plus what the kernel buffers took
    assert rss_mb() - before < 64
    cli.Close()
    conn.close()
    listener.close()


@pytest.mark.parametrize("mode", [stNonBlocking, stThreadBlocking])
def test_server_shutdown_during_a_connection_storm(qtbot, mode) -> None:
    fds, threads = open_fds(), threading.active_count()
    srv = server(ServerType=mode)
    port = srv.Socket.LocalPort
    srv.OnClientConnect.connect(lambda s, sock: sock.SendText("hi"))
    # clients of a storm vanish at any moment: a failed send is routine here
    srv.OnClientError.connect(lambda s, sock, e, code: setattr(code, "value", 0))
    attempts = {"n": 0, "refused": 0}
    lock = threading.Lock()
    stop = threading.Event()

    def storm() -> None:
        while not stop.is_set():
            with lock:
                if attempts["n"] >= 10_000:
                    return
                attempts["n"] += 1
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                    c.recv(10)
            except OSError:
                with lock:
                    attempts["refused"] += 1

    workers = [threading.Thread(target=storm) for _ in range(4)]
    for w in workers:
        w.start()
    qtbot.waitUntil(lambda: attempts["n"] >= 2_000, timeout=30000)
    srv.Close()  # mid-storm
    assert srv.Socket.ActiveConnections == 0 and not srv.Active
    qtbot.waitUntil(lambda: attempts["n"] >= 10_000 or all(not w.is_alive() for w in workers),
                    timeout=60000)
    stop.set()
    for w in workers:
        w.join()
    assert attempts["refused"] > 0  # the later part of the storm found no server
    qtbot.waitUntil(lambda: open_fds() <= fds and threading.active_count() <= threads,
                    timeout=10000)


def test_ten_thousand_connect_disconnect_cycles_leak_nothing(qtbot) -> None:
    srv = server()
    srv.OnClientConnect.connect(lambda s, sock: sock.Close())  # the server closes first
    disconnects = [0]
    srv.OnClientDisconnect.connect(lambda s, sock: disconnects.__setitem__(0, disconnects[0] + 1))
    port = srv.Socket.LocalPort
    qtbot.wait(1)
    fds, threads = open_fds(), threading.active_count()
    done = [0]

    def churn(n: int) -> None:
        for _ in range(n):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                c.recv(10)
            done[0] += 1

    workers = [threading.Thread(target=churn, args=(2_500,)) for _ in range(4)]
    for w in workers:
        w.start()
    qtbot.waitUntil(lambda: disconnects[0] == 10_000, timeout=120000)
    for w in workers:
        w.join()
    assert srv.Socket.ActiveConnections == 0
    qtbot.waitUntil(lambda: open_fds() <= fds and threading.active_count() <= threads,
                    timeout=10000)
    srv.Close()


def test_component_client_churn_leaks_nothing(qtbot) -> None:
    srv = server()
    srv.OnClientRead.connect(lambda s, sock: sock.SendText(sock.ReceiveText()))
    cli = ClientSocket()
    cli.Address, cli.Port = "127.0.0.1", srv.Socket.LocalPort
    rounds = [0]
    cli.OnConnect.connect(lambda s, sock: sock.SendText("ping"))
    cli.OnRead.connect(lambda s, sock: (sock.ReceiveText(), cli.Close()))
    cli.OnDisconnect.connect(lambda s, sock: rounds.__setitem__(0, rounds[0] + 1))
    cli.Open()
    qtbot.waitUntil(lambda: rounds[0] == 1, timeout=5000)
    fds = open_fds()

    def again(sender, sock) -> None:  # each disconnect starts the next round, from the loop
        if rounds[0] < 1_001:
            QTimer.singleShot(0, cli.Open)

    cli.OnDisconnect.connect(again)
    cli.Open()
    qtbot.waitUntil(lambda: rounds[0] == 1_001, timeout=60000)  # 1,000 more rounds
    qtbot.waitUntil(lambda: srv.Socket.ActiveConnections == 0, timeout=5000)
    assert open_fds() <= fds  # a leak can only add descriptors
    srv.Close()


def test_malformed_huge_input_with_framing(qtbot) -> None:
    srv = server(Framing=fmLine, MaxFrameSize=4096)
    errors: list[int] = []
    srv.OnClientError.connect(lambda s, sock, e, code: (errors.append(code.value),
                                                        setattr(code, "value", 0)))
    before = rss_mb()
    sent = [0]

    def flood() -> None:
        with socket.create_connection(("127.0.0.1", srv.Socket.LocalPort), timeout=10) as peer:
            junk = os.urandom(1024 * 1024).replace(b"\n", b"")
            try:
                for _ in range(20):  # 20 MB without a line end
                    peer.sendall(junk)
                    sent[0] += len(junk)
            except OSError:
                pass  # the server hung up on us: that is the point

    worker = threading.Thread(target=flood)
    worker.start()
    qtbot.waitUntil(lambda: errors == [10040], timeout=10000)
    worker.join()
    qtbot.waitUntil(lambda: srv.Socket.ActiveConnections == 0, timeout=5000)
    assert rss_mb() - before < 64
    srv.Close()


def test_exceptions_in_every_handler_leave_components_consistent(qtbot) -> None:
    srv = ServerSocket()
    srv.Address, srv.Port = "127.0.0.1", 0
    cli = ClientSocket()
    for comp in (srv, cli):
        for name in dir(type(comp)):
            if name.startswith("On") and name not in ("OnGetSocket", "OnGetThread"):
                getattr(comp, name).connect(lambda *a, n=name: (_ for _ in ()).throw(
                    RuntimeError(f"handler {n} failed")))
    slog, clog = EventLog(srv), EventLog(cli)
    received: list[str] = []
    srv.OnClientRead.connect(lambda s, sock: received.append(sock.ReceiveText()))
    with qtbot.capture_exceptions() as raised:
        srv.Open()
        cli.Address, cli.Port = "127.0.0.1", srv.Socket.LocalPort
        cli.Open()
        qtbot.waitUntil(lambda: cli.Active and srv.Socket.ActiveConnections == 1, timeout=5000)
        cli.Socket.SendText("still works")
        qtbot.waitUntil(lambda: received == ["still works"], timeout=5000)
        cli.Close()
        qtbot.waitUntil(lambda: slog.count("OnClientDisconnect") == 1, timeout=5000)
        srv.Close()
    assert clog.names() == ["OnLookup", "OnConnecting", "OnConnect", "OnWrite", "OnDisconnect"]
    assert [n for n in slog.names() if n != "OnClientRead"] == [
        "OnListen", "OnGetSocket", "OnAccept", "OnClientConnect", "OnClientWrite",
        "OnClientDisconnect"]
    failed = {str(exc) for _, exc, _ in raised}
    assert "handler OnConnect failed" in failed and "handler OnClientRead failed" in failed
    assert srv.Socket.ActiveConnections == 0 and cli.Socket.SocketHandle == -1


def test_forced_close_drops_the_queue_and_resets_the_peer(qtbot) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    cli = ClientSocket()
    cli.Address, cli.Port = "127.0.0.1", listener.getsockname()[1]
    log = EventLog(cli)
    cli.Open()
    conn, _ = listener.accept()
    qtbot.waitUntil(lambda: cli.Active, timeout=5000)
    cli.Socket.SendBuf(b"f" * (32 * 1024 * 1024))  # far more than the kernel takes at once
    assert cli.Socket.SendQueueLength > 0
    cli.Socket.Close(True)  # ForceClosed
    assert log.names()[-1] == "OnDisconnect" and log.count("OnDisconnect") == 1
    conn.settimeout(5)
    got = 0
    with pytest.raises(ConnectionResetError):
        while data := conn.recv(1 << 20):
            got += len(data)
    assert got < 32 * 1024 * 1024  # the rest of the queue was dropped, not delivered
    conn.close()
    listener.close()


def test_thread_mode_handlers_may_use_the_socket_during_disconnect(qtbot) -> None:
    """A worker never holds the socket's lock while its event runs in the component thread:
    reading leftovers inside OnClientDisconnect (a common pattern) must not deadlock."""
    srv = server(ServerType=stThreadBlocking)
    got: list[str] = []
    srv.OnClientRead.connect(lambda s, sock: None)  # does not read: bytes stay pending
    srv.OnClientDisconnect.connect(lambda s, sock: got.append(sock.ReceiveText()))
    with socket.create_connection(("127.0.0.1", srv.Socket.LocalPort)) as c:
        c.sendall(b"last words")
    qtbot.waitUntil(lambda: bool(got), timeout=5000)
    assert got == ["last words"]
    srv.Close()


def test_thread_mode_errors_reach_the_hook_in_the_component_thread(qtbot, hook) -> None:
    srv = server(ServerType=stThreadBlocking)
    hook_threads: list[bool] = []
    import sockcomp
    previous = sockcomp.SetExceptionHook(lambda exc: (
        hook.append(exc), hook_threads.append(threading.current_thread() is
                                              threading.main_thread())))
    try:
        with socket.create_connection(("127.0.0.1", srv.Socket.LocalPort)) as c:
            qtbot.waitUntil(lambda: srv.Socket.ActiveThreads == 1, timeout=5000)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        qtbot.waitUntil(lambda: bool(hook_threads), timeout=5000)  # the reset, reported
        assert hook_threads == [True] and hook[0].ErrorCode == 10054
    finally:
        sockcomp.SetExceptionHook(previous)
        srv.Close()
