"""Assigned handlers (``comp.OnX = handler``): the direct call that replaces the Qt emit while
the handler is its event's only receiver must be invisible, whatever else connects, disconnects
or blocks signals, in whichever order and from whichever thread.

The reference model is Qt's own: every receiver connected to the signal, in connection order,
called once per event, nothing while signals are blocked.
"""
from __future__ import annotations

import socket
import sys
import threading
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PySide6.QtCore import QCoreApplication
from PySide6.QtTest import QSignalSpy

from sockcomp import ClientSocket, ServerSocket, seRead

WAIT = 5000


def flush() -> None:
    """Run what the component posted to a later event-loop turn (the refresh of its fires)."""
    QCoreApplication.processEvents()
    QCoreApplication.processEvents()


def direct(comp: Any, name: str) -> bool:
    """White box: the event is delivered by a direct call, not a Qt emit (the fast path)."""
    return name in (comp.__dict__.get("_fires") or {})


def fire_client_read(server: ServerSocket, client: Any) -> None:
    server.ClientRead(client)  # the VCL dynamic method: fires OnClientRead as an event does


@pytest.fixture
def server(qtbot):
    srv = ServerSocket()
    srv.Loaded()
    srv.Address, srv.Port = "127.0.0.1", 0
    yield srv
    srv.Close()
    srv.deleteLater()


def test_the_only_receiver_is_called_directly_and_others_switch_back_to_emit(qtbot, server):
    calls: list[str] = []
    server.OnClientRead = lambda Sender, Socket: calls.append("assigned")
    assert direct(server, "OnClientRead")
    spy = QSignalSpy(server.OnClientRead)
    assert not direct(server, "OnClientRead")      # at once, inside connect
    fire_client_read(server, server.Socket)
    assert calls == ["assigned"] and spy.count() == 1
    del spy
    flush()
    assert direct(server, "OnClientRead")            # the spy is gone: direct again
    fire_client_read(server, server.Socket)
    assert calls == ["assigned", "assigned"]


def test_a_real_read_reaches_the_handler_and_a_spy_connected_midway(qtbot, server):
    got: list[bytes] = []
    server.OnClientRead = lambda Sender, Socket: got.append(Socket.ReceiveBytes())
    server.Open()
    peer = socket.create_connection(("127.0.0.1", server.Socket.LocalPort), timeout=5)
    with peer:
        peer.sendall(b"one")
        qtbot.waitUntil(lambda: got == [b"one"], timeout=WAIT)
        assert direct(server, "OnClientRead")
        with qtbot.waitSignal(server.OnClientRead, timeout=WAIT):
            peer.sendall(b"two")
        qtbot.waitUntil(lambda: got == [b"one", b"two"], timeout=WAIT)


def test_client_component_assigned_read_is_direct_and_ordered(qtbot, server):
    server.OnClientConnect = lambda Sender, Socket: Socket.SendText("hello")
    server.Open()
    client = ClientSocket()
    client.Loaded()
    client.Address, client.Port = "127.0.0.1", server.Socket.LocalPort
    order: list[str] = []
    client.OnRead.connect(lambda Sender, Socket: order.append("connected first"))
    client.OnRead = lambda Sender, Socket: order.append("assigned " + Socket.ReceiveText())
    assert not direct(client, "OnRead")             # two receivers: Qt calls both, in order
    client.Open()
    qtbot.waitUntil(lambda: len(order) == 2, timeout=WAIT)
    assert order == ["connected first", "assigned hello"]
    client.Close()
    client.deleteLater()


def test_blocked_signals_block_the_direct_call_too(qtbot, server):
    calls: list[str] = []
    server.OnClientRead = lambda Sender, Socket: calls.append("assigned")
    assert direct(server, "OnClientRead")
    server.blockSignals(True)
    fire_client_read(server, server.Socket)
    server.blockSignals(False)
    fire_client_read(server, server.Socket)
    assert calls == ["assigned"]


def test_an_exception_in_a_direct_call_goes_where_a_slots_would(qtbot, server, monkeypatch):
    seen: list[BaseException] = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, exc, tb: seen.append(exc))

    def boom(Sender, Socket):
        raise ValueError("from the handler")

    server.OnClientRead = boom
    assert direct(server, "OnClientRead")
    fire_client_read(server, server.Socket)
    server.OnClientRead.connect(lambda Sender, Socket: None)
    fire_client_read(server, server.Socket)         # emitted: PySide reports it the same way
    assert [str(e) for e in seen] == ["from the handler", "from the handler"]


@pytest.mark.parametrize("name, args", [("OnClientRead", ("sender", "socket")),
                                        ("OnClientLineReceived", ("sender", "socket", "line"))],
                         ids=["two-arguments", "three-arguments"])
def test_a_direct_call_of_any_arity_passes_the_arguments_and_keeps_the_rules(
        qtbot, server, monkeypatch, name, args):
    """Two-argument events have a direct call of their own (no ``*args``); both kinds pass
    every argument, skip while signals are blocked, and report an exception as a slot's."""
    seen: list[BaseException] = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, exc, tb: seen.append(exc))
    calls: list[tuple[Any, ...]] = []

    def handler(*got: Any) -> None:
        calls.append(got)
        if len(calls) == 2:
            raise ValueError("second call")

    setattr(server, name, handler)
    assert direct(server, name)
    fire = server._fire(name)
    fire(*args)
    server.blockSignals(True)
    fire(*args)
    server.blockSignals(False)
    fire(*args)
    assert calls == [args, args]
    assert [str(e) for e in seen] == ["second call"]


def test_a_manual_emit_still_reaches_the_assigned_handler(qtbot, server):
    calls: list[Any] = []
    server.OnClientRead = lambda Sender, Socket: calls.append(Socket)
    server.OnClientRead.emit(server.Socket, "x")
    assert calls == ["x"]


def test_assigning_from_another_thread_takes_effect_once(qtbot, server):
    calls: list[str] = []
    worker = threading.Thread(
        target=lambda: setattr(server, "OnClientRead",
                               lambda Sender, Socket: calls.append("assigned")))
    worker.start()
    worker.join()
    flush()
    assert direct(server, "OnClientRead")
    fire_client_read(server, server.Socket)
    assert calls == ["assigned"]


def test_a_connect_from_another_thread_switches_to_emit_at_once(qtbot, server):
    calls: list[str] = []
    server.OnClientRead = lambda Sender, Socket: calls.append("assigned")
    assert direct(server, "OnClientRead")
    worker = threading.Thread(
        target=lambda: server.OnClientRead.connect(lambda S, s: calls.append("other")))
    worker.start()
    worker.join()
    assert not direct(server, "OnClientRead")
    fire_client_read(server, server.Socket)
    assert sorted(calls) == ["assigned", "other"]


# ------------------------------------------------------------------------------------------
# any sequence of assignments, connects, disconnects and blocking: Qt's model holds

OPS = st.lists(st.one_of(
    st.tuples(st.just("assign"), st.integers(0, 2)),
    st.just(("assign none",)),
    st.tuples(st.just("connect"), st.integers(0, 2)),
    st.tuples(st.just("disconnect"), st.integers(0, 2)),
    st.just(("disconnect all",)),
    st.just(("block",)),
    st.just(("unblock",)),
    st.just(("turn",)),
    st.just(("fire",)),
), max_size=25)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_any_sequence_calls_exactly_the_connected_receivers_in_order(qtbot, ops):
    server = ServerSocket()
    server.Loaded()
    calls: list[str] = []
    receivers: list[str] = []          # the model: Qt's receivers, in connection order
    slots: dict[str, Callable[..., None]] = {}
    blocked = False

    def slot(label: str) -> Callable[..., None]:
        if label not in slots:
            slots[label] = lambda Sender, Socket: calls.append(label)
        return slots[label]

    def fire() -> None:
        calls.clear()
        fire_client_read(server, server.Socket)
        assert calls == ([] if blocked else receivers)

    try:
        for op in ops + [("fire",), ("turn",), ("fire",)]:
            kind = op[0]
            if kind == "assign":
                receivers[:] = [r for r in receivers if not r.startswith("assigned")]
                label = f"assigned {op[1]}"
                server.OnClientRead = lambda Sender, Socket, label=label: calls.append(label)
                receivers.append(label)
            elif kind == "assign none":
                receivers[:] = [r for r in receivers if not r.startswith("assigned")]
                server.OnClientRead = None
            elif kind == "connect":
                label = f"slot {op[1]}"
                if label not in receivers:   # (PySide's own rules for a slot connected twice
                    server.OnClientRead.connect(slot(label))   # are not what this tests)
                    receivers.append(label)
            elif kind == "disconnect":
                label = f"slot {op[1]}"
                if label in receivers:
                    server.OnClientRead.disconnect(slots[label])
                    receivers.remove(label)
            elif kind == "disconnect all":
                if receivers:                # (with none, PySide warns and does nothing)
                    server.OnClientRead.disconnect()
                    receivers.clear()
            elif kind == "block":
                server.blockSignals(True)
                blocked = True
            elif kind == "unblock":
                server.blockSignals(False)
                blocked = False
            elif kind == "turn":
                flush()
            else:
                fire()
    finally:
        server.deleteLater()
        flush()


def test_no_receiver_left_means_no_call_even_after_a_turn(qtbot, server):
    calls: list[str] = []
    server.OnClientRead = lambda Sender, Socket: calls.append("assigned")
    server.OnClientRead.disconnect()               # Qt's disconnect-all takes it too
    server.OnClientRead.connect(lambda Sender, Socket: calls.append("later"))
    flush()
    fire_client_read(server, server.Socket)
    assert calls == ["later"]
    assert seRead  # the event the dispatch method stands for


def test_a_handler_object_dying_while_its_dispatch_entry_is_replaced_does_not_hang(qtbot,
                                                                                   server):
    """The component replaces its dispatch tables under a lock; the old table may hold the last
    reference to an assigned handler's object. When that object dies there, PySide disconnects
    its other connections at once and ``disconnectNotify`` comes back to the same lock in the
    same thread: the loop must carry on (it hung with a plain lock)."""
    freed: list[bool] = []

    class Session:
        def __init__(self, srv: ServerSocket) -> None:
            srv.OnClientRead = self.on_read              # assigned: called directly
            srv.OnClientDisconnect.connect(self.on_gone)  # and a connected bound method

        def on_read(self, Sender: Any, Socket: Any) -> None:
            pass

        def on_gone(self, Sender: Any, Socket: Any) -> None:
            pass

        def __del__(self) -> None:
            freed.append(True)

    Session(server)
    flush()
    assert direct(server, "OnClientRead")
    unassign = threading.Thread(target=setattr, args=(server, "OnClientRead", None))
    unassign.start()
    unassign.join(WAIT / 1000)
    qtbot.waitUntil(lambda: freed == [True], timeout=WAIT)  # freed in the posted refresh
    assert not direct(server, "OnClientRead")
    assert server.receivers("2OnClientDisconnect(PyObject,PyObject)") == 0
