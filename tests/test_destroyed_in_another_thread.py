"""A component whose Python object dies in a thread that is not its own.

Python finalizes an object where its last reference goes, and the cyclic collector runs in
whichever thread happens to allocate: a component held in a cycle (a form whose methods are its
handlers, the way ported code is written) is as likely to be collected in a thread-mode worker,
a peer thread or the lookup pool as in the GUI thread. Qt requires a QObject, its timers
above all, to be destroyed in its own thread; before the fix the component's destructor ran in
the collecting thread, stopped nothing ("Timers cannot be stopped from another thread"), closed
its sockets beside the owner's loop, and the owner crashed when a timer of the freed component
came due.

What each test pins: nothing happens in the foreign thread (the peer's connection is still open
when it is done); the owner's next loop turn destroys the component there (its ``destroyed``
signal fires in the owner's thread), closes its sockets and stops its timers; no handler runs;
Qt prints no cross-thread warning; and the loop keeps running past the timers' due times.
"""
from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from PySide6.QtCore import QCoreApplication, QObject, Qt, Slot

from sockcomp import ClientSocket, ServerSocket, ctBlocking, stNonBlocking, stThreadBlocking
from sockcomp._pump import current_pump
from sockcomp._reaping import SPARES_KEPT
from tests.test_lifecycle_faults import (
    PROMPT,
    Ending,
    Resources,
    certs,  # noqa: F401 (a fixture)
    record_names,
    refused,
    res,  # noqa: F401 (a fixture)
    settle,
    tls_client_props,
    wait_for,
)

HOWS = ["unref-in-thread", "collected-in-thread", "parent-collected-in-thread"]
IDLE_MS = 60_000  # an idle timer that is running, due long after the test


class Form:
    """What ported code looks like: a plain object holding the component, whose method is a
    handler (form -> component -> handler -> form: a cycle only the collector frees)."""

    def __init__(self, component: QObject, parent: Optional[QObject]) -> None:
        self.component = component
        self.parent = parent
        self.events: list[str] = []
        component.OnError = self.on_error  # an assigned handler: the cycle

    def on_error(self, *args: Any) -> None:
        self.events.append("OnError")


def in_thread(fn: Callable[[], Any]) -> str:
    """Run ``fn`` in a new thread and wait for it; returns the thread's name."""
    thread = threading.Thread(target=fn, name="foreign")
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    return thread.name


def make(cls: type, how: str) -> tuple[QObject, Optional[QObject]]:
    parent = QObject() if how == "parent-collected-in-thread" else None
    return cls(parent), parent


def drop_in_thread(box: list[Any], how: str) -> None:
    """Give up the component (``box`` holds the only references) in a foreign thread: drop the
    last reference there, or make it cyclic garbage and run the collector there."""
    if how == "unref-in-thread":
        in_thread(box.clear)
        return
    component, parent = box
    box.clear()
    Form(component, parent)  # garbage in a cycle from here on
    if parent is not None:
        parent.cycle = parent  # the parent's wrapper owns the component: collect the parent
    del component, parent
    in_thread(gc.collect)


class Destruction(QObject):
    """The threads in which the component's ``destroyed`` fired. A slot of a QObject, with a
    direct connection: PySide drops a plain Python function connected to a signal when the
    sender's wrapper dies first (as it does when a parent is collected in another thread)."""

    def __init__(self, component: QObject) -> None:
        super().__init__()
        self.threads: list[str] = []
        component.destroyed.connect(self.record, Qt.ConnectionType.DirectConnection)

    @Slot()
    def record(self) -> None:
        self.threads.append(threading.current_thread().name)


def no_thread_warnings(qtlog) -> list[str]:
    return [r.message for r in qtlog.records if "thread" in r.message.lower()]


@pytest.fixture
def no_gc():
    """The collector runs only where a test runs it (the foreign thread)."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()


def destroyed_in_another_thread(qtbot, qtlog, box: list[Any], how: str, peer: socket.socket,
                                calls: list[str]) -> Destruction:
    """Drop the component (``box``: it and its parent, the only references) in a foreign
    thread, check that nothing happened there, then let the owner's loop destroy it; returns
    where ``destroyed`` fired."""
    destruction = Destruction(box[0])
    ending = Ending(peer)
    mark = len(calls)
    drop_in_thread(box, how)
    assert not ending.poll(), "the component's sockets were closed in the foreign thread"
    if how != "parent-collected-in-thread":
        assert destruction.threads == []  # waits for the owner's loop
    assert wait_for(qtbot, ending.poll, PROMPT)
    assert ending.state == "eof"
    settle(qtbot)
    assert calls[mark:] == []
    assert no_thread_warnings(qtlog) == []
    return destruction


@pytest.mark.timeout(30)
@pytest.mark.parametrize("how", HOWS)
def test_a_connected_client_dropped_in_another_thread_closes_in_its_own(
        qtbot, qtlog, pump_backend, res: Resources, no_gc, how) -> None:  # noqa: F811
    lst = res.listen()
    cli, parent = make(ClientSocket, how)
    cli.Address, cli.Port, cli.IdleTimeout = "127.0.0.1", lst.getsockname()[1], IDLE_MS
    calls: list[str] = []
    record_names(cli, calls)
    cli.Open()
    assert wait_for(qtbot, lambda: "OnWrite" in calls), calls
    peer = res.accept(lst)
    box = [cli, parent]
    del cli, parent
    destruction = destroyed_in_another_thread(qtbot, qtlog, box, how, peer, calls)
    # with a parent collected there, Qt destroys the pair in that thread; only the sockets and
    # timers wait for the owner
    assert destruction.threads == (
        ["foreign"] if how == "parent-collected-in-thread" else ["MainThread"])


@pytest.mark.timeout(30)
@pytest.mark.parametrize("server_type", [stNonBlocking, stThreadBlocking],
                         ids=["stNonBlocking", "stThreadBlocking"])
@pytest.mark.parametrize("how", HOWS)
def test_a_server_dropped_in_another_thread_closes_in_its_own(
        qtbot, qtlog, res: Resources, no_gc, how, server_type) -> None:  # noqa: F811
    srv, parent = make(ServerSocket, how)
    srv.ServerType, srv.Address, srv.Port = server_type, "127.0.0.1", 0
    srv.IdleTimeout = IDLE_MS
    calls: list[str] = []
    record_names(srv, calls)
    srv.Open()
    port = srv.Socket.LocalPort
    peer = res.connect(port)
    assert wait_for(qtbot, lambda: "OnClientWrite" in calls), calls
    box = [srv, parent]
    del srv, parent
    destroyed_in_another_thread(qtbot, qtlog, box, how, peer, calls)
    assert wait_for(qtbot, lambda: refused(port), PROMPT), "the port still accepts connections"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("how", HOWS)
def test_a_client_in_its_tls_handshake_dropped_in_another_thread(
        qtbot, qtlog, certs, res: Resources, no_gc, how) -> None:  # noqa: F811
    lst = res.listen()  # accepts, never speaks TLS: the handshake deadline's timer runs
    cli, parent = make(ClientSocket, how)
    cli.Address, cli.Port = "127.0.0.1", lst.getsockname()[1]
    for name, value in tls_client_props(certs).items():
        setattr(cli, name, value)
    calls: list[str] = []
    record_names(cli, calls)
    cli.Open()
    box = [cli, parent]
    del cli, parent
    assert wait_for(qtbot, lambda: box[0].Socket.Phase.name == "HANDSHAKING"), box
    peer = res.accept(lst)
    destroyed_in_another_thread(qtbot, qtlog, box, how, peer, calls)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("how", HOWS)
def test_a_reconnecting_client_dropped_in_another_thread_stops_reconnecting(
        qtbot, qtlog, res: Resources, no_gc, how) -> None:  # noqa: F811
    lst = res.listen()
    port = lst.getsockname()[1]
    cli, parent = make(ClientSocket, how)
    cli.Address, cli.Port = "127.0.0.1", port
    cli.AutoReconnect, cli.ReconnectInterval = True, 200
    calls: list[str] = []
    record_names(cli, calls)
    cli.Open()
    assert wait_for(qtbot, lambda: "OnWrite" in calls), calls
    res.accept(lst).close()  # the server drops it: the reconnect timer runs
    box = [cli, parent]
    del cli, parent
    assert wait_for(qtbot, lambda: box[0].Reconnecting), calls
    destruction = Destruction(box[0])
    mark = len(calls)
    drop_in_thread(box, how)
    qtbot.wait(600)  # past the reconnect interval (and its backoff's first step)
    lst.settimeout(0)
    with pytest.raises(BlockingIOError):
        lst.accept()  # no reconnect attempt reached the listener
    assert calls[mark:] == []
    assert destruction.threads == (
        ["foreign"] if how == "parent-collected-in-thread" else ["MainThread"])
    assert no_thread_warnings(qtlog) == []


SCENARIO = r"""
import gc, socket, sys, threading, time
from PySide6.QtCore import QCoreApplication, QEventLoop
from sockcomp import ClientSocket

early = ClientSocket() if sys.argv[1:] == ["before-app"] else None
app = QCoreApplication([])
lst = socket.socket()
lst.bind(("127.0.0.1", 0))
lst.listen(8)


class Form:
    def __init__(self):
        self.client = early or ClientSocket()
        self.client.Address, self.client.Port = "127.0.0.1", lst.getsockname()[1]
        self.client.IdleTimeout = 200
        self.client.OnConnect = self.on_connect
        self.connected = False

    def on_connect(self, sender, socket):
        self.connected = True


def turn_loop(seconds, until=lambda: False):
    end = time.monotonic() + seconds
    while time.monotonic() < end and not until():
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)


gc.disable()
form = Form()
early = None
form.client.Open()
turn_loop(5, lambda: form.connected)
peer, _ = lst.accept()
del form
worker = threading.Thread(target=gc.collect)
worker.start()
worker.join()
turn_loop(1)  # the idle timer (200 ms) of the collected component would be due meanwhile
peer.settimeout(2)
print("peer", peer.recv(10) == b"" and "eof")
"""


@pytest.mark.parametrize("made", ["after-app", "before-app"])
def test_the_reported_crash_a_form_collected_in_a_worker_thread(made) -> None:
    """The reported input, in a process of its own (a crash must not take the suite with it): a
    form-held client with a running idle timer, collected in another thread, then the loop;
    also with the client made before the QCoreApplication (no pump yet: its timers are its
    own children)."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", SCENARIO, made], cwd=root, env=env,
                         timeout=60, capture_output=True, text=True)
    assert (out.returncode, out.stdout, out.stderr) == (0, "peer eof\n", "")


@pytest.mark.timeout(30)
def test_blocking_clients_of_a_worker_without_a_loop_close_when_collected_elsewhere(
        qtbot, res: Resources, no_gc) -> None:  # noqa: F811
    """ctBlocking clients belong to a worker thread that never runs an event loop (as the
    README advises); held in cycles, they are collected in the GUI thread while the worker
    lives on. Nothing could ever run in the worker's loop, so they end where they are
    collected: every peer sees EOF and no component is left."""
    lst = res.listen(backlog=16)
    port = lst.getsockname()[1]
    made, stop = threading.Event(), threading.Event()

    def worker() -> None:
        for _ in range(10):
            cli = ClientSocket()
            cli.ClientType, cli.Address, cli.Port = ctBlocking, "127.0.0.1", port
            cli.Open()
            Form(cli, None)  # garbage in a cycle
            del cli
        made.set()
        stop.wait(10)

    thread = threading.Thread(target=worker, name="blocking-worker")
    thread.start()
    try:
        assert made.wait(10)
        peers = [Ending(res.accept(lst)) for _ in range(10)]
        gc.collect()
        assert wait_for(qtbot, lambda: all(p.poll() for p in peers), PROMPT)
        assert [p.state for p in peers] == ["eof"] * 10
        assert [o for o in gc.get_objects() if isinstance(o, ClientSocket)] == []
    finally:
        stop.set()
        thread.join(10)


def test_ended_components_leave_a_bounded_number_of_objects_in_the_pump(qapp) -> None:
    """Each component's reaper and timers are kept for reuse, up to a bound, in a loop driven
    by ``processEvents()`` alone too (where ``deleteLater`` never runs)."""
    pump = current_pump()

    def turn() -> None:
        for _ in range(5):
            QCoreApplication.processEvents()

    turn()
    baseline = len(pump.children())
    for _ in range(3):
        components = [ClientSocket() for _ in range(2 * SPARES_KEPT)] + \
            [ServerSocket() for _ in range(SPARES_KEPT)]
        del components
        gc.collect()
        turn()
    assert len(pump.children()) <= baseline + 2 * SPARES_KEPT


@pytest.mark.timeout(30)
def test_connect_timeouts_leave_no_timer_behind(qapp, res: Resources) -> None:  # noqa: F811
    """A client's ConnectTimeout timer belongs to the pump (which lives as long as its
    thread); it is deleted when the attempt ends, not kept for the life of the thread."""
    pump = current_pump()
    lst = res.listen(backlog=128)

    def turn(until: Callable[[], bool] = lambda: False) -> None:
        deadline = time.monotonic() + 5
        while True:
            QCoreApplication.processEvents()
            if until() or time.monotonic() > deadline:
                return

    def round_of(count: int, **props: Any) -> None:
        clients = [ClientSocket() for _ in range(count)]
        for cli in clients:
            cli.Address, cli.Port = "127.0.0.1", lst.getsockname()[1]
            for name, value in props.items():
                setattr(cli, name, value)
            cli.Open()
        sockets = [cli.Socket for cli in clients]
        turn(lambda: all(sock.Connected for sock in sockets))
        assert all(sock.Connected for sock in sockets)
        for _ in range(count):
            lst.accept()[0].close()
        for cli in clients:
            cli.Close()
        clients.clear()
        sockets.clear()
        gc.collect()
        turn()

    round_of(2 * SPARES_KEPT)  # the spares fill up
    baseline = len(pump.children())
    round_of(100, ConnectTimeout=5000)
    assert len(pump.children()) == baseline
