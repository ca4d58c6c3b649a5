"""The readiness pump: deferred calls, cross-thread posting, and both backends end to end."""
from __future__ import annotations

import hashlib
import os
import socket
import threading

import pytest

from sockcomp import ClientSocket, ServerSocket, _pump
from tests.util import EventLog


@pytest.fixture(params=["epoll", "notifier"])
def pump(request, qapp):
    """Make the chosen backend this thread's pump for the duration of the test."""
    previous = getattr(_pump._local, "pump", None)
    fresh = _pump.EpollPump() if request.param == "epoll" else _pump.NotifierPump()
    _pump._local.pump = fresh
    yield fresh
    _pump._local.pump = previous


def test_call_soon_runs_later_in_order_never_inside_the_caller(qtbot, pump) -> None:
    ran: list[int] = []
    pump.call_soon(ran.append, 1)
    pump.call_soon(ran.append, 2)
    assert ran == []
    qtbot.waitUntil(lambda: ran == [1, 2], timeout=2000)


def test_call_soon_threadsafe_runs_in_the_pump_thread(qtbot, pump) -> None:
    seen: list[int] = []
    main = threading.get_ident()
    worker = threading.Thread(
        target=lambda: [pump.call_soon_threadsafe(lambda: seen.append(threading.get_ident()))
                        for _ in range(100)])
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: len(seen) == 100, timeout=2000)
    assert set(seen) == {main}


def test_an_exception_in_a_deferred_call_goes_to_the_hook(qtbot, pump, hook) -> None:
    ran: list[str] = []

    def boom() -> None:
        raise ValueError("boom")

    pump.call_soon(boom)
    pump.call_soon(ran.append, "after")
    qtbot.waitUntil(lambda: ran == ["after"], timeout=2000)
    assert [str(e) for e in hook] == ["boom"]


def test_echo_and_bulk_transfer_on_each_backend(qtbot, pump) -> None:
    """Connect, echo 8 MB through a sockcomp server, peer close: exact order, no loss."""
    srv = ServerSocket()
    srv.Port = 0
    srv.Address = "127.0.0.1"
    srv.Open()
    srv.OnClientRead.connect(lambda s, sock: sock.SendBuf(sock.ReceiveBytes()))
    cli = ClientSocket()
    cli.Address = "127.0.0.1"
    cli.Port = srv.Socket.LocalPort
    log = EventLog(cli)
    got = bytearray()
    cli.OnRead.connect(lambda s, sock: got.extend(sock.ReceiveBytes()))
    payload = os.urandom(8 * 1024 * 1024)
    cli.OnConnect.connect(lambda s, sock: sock.SendBuf(payload))
    cli.Open()
    qtbot.waitUntil(lambda: len(got) == len(payload), timeout=20000)
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
    srv.Close()
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1, timeout=5000)
    names = log.names()
    assert names[:3] == ["OnLookup", "OnConnecting", "OnConnect"]
    assert names[-1] == "OnDisconnect"
    assert set(names[3:-1]) <= {"OnWrite", "OnRead"} and "OnWrite" in names
    assert cli.Socket.SocketHandle == -1


def test_pump_requires_an_application_only_at_open_time() -> None:
    # Creating a pump in a thread without an event dispatcher is not attempted at import time:
    # importing sockcomp touches no Qt object.
    import subprocess
    import sys
    code = "import sockcomp, sockcomp._pump as p; assert getattr(p._local, 'pump', None) is None"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_readiness_for_a_closed_descriptor_is_ignored(qtbot, pump) -> None:
    a, b = socket.socketpair()
    hits: list[int] = []
    pump.register(a.fileno(), hits.append, _pump.READ)
    pump.unregister(a.fileno())
    b.send(b"x")
    ran: list[bool] = []
    pump.call_soon(ran.append, True)
    qtbot.waitUntil(lambda: ran == [True], timeout=2000)
    assert hits == []
    a.close()
    b.close()
