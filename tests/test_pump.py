"""The readiness pump: deferred calls, cross-thread posting, and both backends end to end."""
from __future__ import annotations

import hashlib
import os
import socket
import threading

import pytest

from sockcomp import ClientSocket, ServerSocket, _pump
from tests.util import EventLog, kept


def _make_pump(kind: str) -> _pump.Pump:
    if kind == "notifier":
        return kept(_pump.NotifierPump())
    if kind == "promoting":  # the default: all in the epoll, busy sockets move to notifiers
        return kept(_pump.EpollPump())
    # "epoll": every socket in the epoll; "hybrid": two direct watches from the start, the rest
    # in the epoll; "direct": a test's few sockets all get notifiers of their own at once
    return kept(_pump.EpollPump(
        direct_slots={"epoll": 0, "hybrid": 2}.get(kind, _pump.DIRECT_SLOTS), promote_after=0))


@pytest.fixture(params=["promoting", "direct", "hybrid", "epoll", "notifier"])
def pump(request, qapp):
    """Make the chosen backend this thread's pump for the duration of the test."""
    previous = getattr(_pump._local, "pump", None)
    fresh = _make_pump(request.param)
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


def test_direct_watches_are_recycled_and_the_epoll_takes_the_overflow(qtbot, qapp) -> None:
    """Two direct slots, five sockets: each socket's handler sees only its own readiness, the
    overflow goes to the epoll, and a released slot (re-pointed notifiers) serves the next."""
    pump = kept(_pump.EpollPump(direct_slots=2, promote_after=0))
    pairs = [socket.socketpair() for _ in range(5)]
    hits: dict[int, list[int]] = {i: [] for i in range(5)}

    def handler(i: int, a: socket.socket):
        def on_ready(events: int) -> None:
            if events & _pump.READ:
                try:
                    a.recv(100)
                except BlockingIOError:
                    return
                hits[i].append(events)
        return on_ready

    for i, (a, _b) in enumerate(pairs):
        a.setblocking(False)
        pump.register(a.fileno(), handler(i, a), _pump.READ)
    assert len(pump._direct) == 2 and len(pump._handlers) == 3
    for _a, b in pairs:
        b.send(b"x")
    qtbot.waitUntil(lambda: all(len(v) == 1 for v in hits.values()), timeout=2000)

    # free a direct slot; a new socket takes it over (same notifier objects, new descriptor)
    a0, b0 = pairs[0]
    pump.unregister(a0.fileno())
    spare = pump._spare[-1]
    c, d = socket.socketpair()
    c.setblocking(False)
    pump.register(c.fileno(), handler(0, c), _pump.READ | _pump.WRITE)
    assert pump._direct[c.fileno()] is spare
    b0.send(b"old")  # the released socket's readiness reaches nobody
    d.send(b"y")
    qtbot.waitUntil(lambda: len(hits[0]) == 2, timeout=2000)
    assert hits[0][1] == _pump.READ  # a direct watch reports each direction on its own
    assert a0.recv(100) == b"old"  # nobody read the released socket
    # WRITE interest switched off again: the write notifier is disabled
    pump.modify(c.fileno(), _pump.READ)
    watch = pump._direct[c.fileno()]
    assert watch.mask == _pump.READ and watch.writer is not None
    assert not watch.writer.isEnabled() and watch.reader.isEnabled()
    for a, _b in pairs[1:]:
        pump.unregister(a.fileno())
    pump.unregister(c.fileno())
    assert not pump._direct and not pump._handlers and len(pump._spare) == 2
    for a, b in pairs + [(c, d)]:
        a.close()
        b.close()
    pump.deleteLater()


def test_a_busy_socket_moves_to_a_direct_watch_and_loses_nothing_on_the_way(qtbot,
                                                                            qapp) -> None:
    """Ready in ``promote_after`` wakes while a slot is free: the socket leaves the epoll for
    notifiers of its own, and what it had not read yet is reported again from there. A socket
    ready in fewer wakes stays in the epoll."""
    pump = kept(_pump.EpollPump(direct_slots=2, promote_after=3))
    busy, busy_peer = socket.socketpair()
    short, short_peer = socket.socketpair()
    got: dict[str, bytearray] = {"busy": bytearray(), "short": bytearray()}
    events_seen: list[int] = []

    def reader(name: str, sock: socket.socket):
        def on_ready(events: int) -> None:
            events_seen.append(events)
            try:
                got[name] += sock.recv(1)  # one byte per report: the rest stays pending
            except BlockingIOError:
                pass
        return on_ready

    for sock, name in ((busy, "busy"), (short, "short")):
        sock.setblocking(False)
        pump.register(sock.fileno(), reader(name, sock), _pump.READ | _pump.ERRORS)
    for round_no in range(2):  # two wakes each: not yet
        busy_peer.send(b"ab"[round_no:round_no + 1])
        short_peer.send(b"xy"[round_no:round_no + 1])
        qtbot.waitUntil(lambda: len(got["busy"]) == round_no + 1 == len(got["short"]),
                        timeout=2000)
    assert not pump._direct and set(pump._handlers) == {busy.fileno(), short.fileno()}

    busy_peer.send(b"cdef")  # the third wake promotes it with three bytes still unread
    qtbot.waitUntil(lambda: busy.fileno() in pump._direct, timeout=2000)
    assert busy.fileno() not in pump._handlers
    qtbot.waitUntil(lambda: bytes(got["busy"]) == b"abcdef", timeout=2000)
    assert bytes(got["short"]) == b"xy" and short.fileno() in pump._handlers
    assert set(events_seen) == {_pump.READ}

    pump.unregister(busy.fileno())
    pump.unregister(short.fileno())
    assert not pump._direct and not pump._handlers and not pump._wakes
    for sock in (busy, busy_peer, short, short_peer):
        sock.close()
    pump.deleteLater()


def test_a_socket_closed_by_another_thread_as_it_would_move_stays_put(qtbot, qapp,
                                                                      hook) -> None:
    """Another thread closes the socket (its unregister posted) in the very wake that would
    promote it: no error escapes the dispatch, the deferred calls of that turn still run, and
    the posted unregister removes the socket cleanly."""
    pump = kept(_pump.EpollPump(promote_after=3))
    a, peer = socket.socketpair()
    a.setblocking(False)
    fd = a.fileno()
    wakes: list[int] = []

    class Owner:  # what a transport is to the pump: the handler's object
        def on_ready(self, events: int) -> None:
            wakes.append(events)
            try:
                a.recv(100)
            except OSError:
                pass
            if len(wakes) == 3:
                def close_elsewhere() -> None:
                    pump.call_soon_threadsafe(pump.unregister, fd, owner)
                    a.close()
                other = threading.Thread(target=close_elsewhere)
                other.start()
                other.join()
                pump.call_soon(ran.append, "this turn")

    owner = Owner()
    ran: list[str] = []
    pump.register(fd, owner.on_ready, _pump.READ | _pump.ERRORS)
    for count in range(1, 4):
        peer.send(b"x")
        qtbot.waitUntil(lambda: len(wakes) == count, timeout=2000)
    qtbot.waitUntil(lambda: ran == ["this turn"], timeout=2000)
    qtbot.waitUntil(lambda: fd not in pump._handlers, timeout=2000)
    assert not pump._direct and not pump._masks and not pump._wakes
    assert hook == []
    peer.close()
    pump.deleteLater()


@pytest.mark.parametrize("kind", ["direct", "epoll", "notifier"])
def test_a_posted_unregister_spares_a_new_socket_with_the_same_number(qtbot, qapp, kind) -> None:
    """A socket closed from another thread posts its unregister; if the number is reused by a
    new socket before that runs, the new one stays watched."""
    pump = _make_pump(kind)
    seen: list[str] = []

    class Owner:
        def __init__(self, name: str) -> None:
            self.name = name

        def on_ready(self, events: int) -> None:
            seen.append(self.name)
            self.sock.recv(100)

    old, new = Owner("old"), Owner("new")
    old.sock, old_peer = socket.socketpair()
    fd = old.sock.fileno()
    pump.register(fd, old.on_ready, _pump.READ)
    old.sock.close()  # the number is free; the unregister is still to come
    new.sock, new_peer = socket.socketpair()
    if new.sock.fileno() != fd:  # make the reuse certain
        os.dup2(new.sock.fileno(), fd)
        new.sock.close()
        new.sock = socket.socket(fileno=fd)
    new.sock.setblocking(False)
    pump.register(fd, new.on_ready, _pump.READ)
    pump.unregister(fd, old)  # what the old socket's posted unregister does, late
    new_peer.send(b"x")
    qtbot.waitUntil(lambda: seen == ["new"], timeout=2000)
    pump.unregister(fd, new)
    for sock in (new.sock, old_peer, new_peer):
        sock.close()
    pump.deleteLater()


def test_write_readiness_on_a_direct_watch(qtbot, qapp) -> None:
    pump = kept(_pump.EpollPump(promote_after=0))
    a, b = socket.socketpair()
    seen: list[int] = []

    def on_ready(events: int) -> None:
        seen.append(events)
        pump.modify(a.fileno(), 0)  # one report is enough

    pump.register(a.fileno(), on_ready, _pump.WRITE)
    qtbot.waitUntil(lambda: seen == [_pump.WRITE], timeout=2000)
    pump.unregister(a.fileno())
    a.close()
    b.close()
    pump.deleteLater()


def test_the_fallback_pump_recycles_its_notifiers_and_can_go_away_at_once(qtbot, qapp) -> None:
    """Unregistering never schedules a deferred deletion, so a pump collected right after its
    sockets closed leaves nothing behind that could fire on a deleted object."""
    import gc

    pump = _pump.NotifierPump()
    pairs = [socket.socketpair() for _ in range(3)]
    for a, _ in pairs:
        pump.register(a.fileno(), lambda events: None, _pump.READ | _pump.ERRORS)
    for a, _ in pairs:
        pump.unregister(a.fileno())
    assert len(pump._spare) == 3 and not pump._watches
    a, b = pairs[0]
    pump.register(a.fileno(), lambda events: None, _pump.READ)
    assert len(pump._spare) == 2  # a spare watch was reused, not a new one made
    pump.unregister(a.fileno())
    del pump
    gc.collect()
    qtbot.wait(20)  # a deferred deletion would run (and crash) here
    for a, b in pairs:
        a.close()
        b.close()
