"""ServerSocket (stNonBlocking) events: reference checklist S1–S6 in the fixed form of the contract.

Fixed order per client: OnGetSocket → OnAccept → OnClientConnect → OnClientWrite → OnClientRead*.
Senders: OnListen/OnAccept get the component, OnGetSocket/OnClient* get ``srv.Socket``.
Resets close the socket (OnClientError then OnClientDisconnect), server Close() disconnects every
client, and the port is free again at once.
"""
from __future__ import annotations

import gc
import os
import re
import socket
import struct
from typing import Any

import pytest
from PySide6.QtCore import QTimer

from sockcomp import (
    ESocketError, ServerClientWinSocket, ServerSocket, ServerWinSocket, Var, eeDisconnect,
    stNonBlocking, stThreadBlocking,
)
from tests.util import EventLog, free_port

WAIT = 5000
ACCEPT_ORDER = ["OnGetSocket", "OnAccept", "OnClientConnect", "OnClientWrite"]
CANT_CHANGE = re.escape("Can't change value while socket is active")


class Resources:
    """Components and plain sockets of one test; components are closed first, then sockets."""

    def __init__(self, qtbot) -> None:
        self.qtbot = qtbot
        self.components: list[Any] = []
        self.sockets: list[socket.socket] = []

    def server(self, address: str = "127.0.0.1", port: int = 0, open: bool = True) -> ServerSocket:
        """A ServerSocket set up the way a GUI does it: created, then opened on a later turn.

        (Opening in the creation turn is covered by the OnListen test.)
        """
        srv = ServerSocket()
        self.components.append(srv)
        srv.Address = address
        srv.Port = port
        self.qtbot.wait(1)  # end the creation turn (the .ui loading phase)
        if open:
            srv.Open()
        return srv

    def connect(self, port: int, host: str = "127.0.0.1") -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        self.sockets.append(sock)
        sock.settimeout(5)
        sock.connect((host, port))
        return sock

    def close(self) -> None:
        for comp in reversed(self.components):
            comp.Close()
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def res(qtbot):
    resources = Resources(qtbot)
    yield resources
    resources.close()


def same(a: list[Any], b: list[Any]) -> bool:
    """Same objects (identity), same order."""
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


def contains(items: list[Any], obj: Any) -> bool:
    return any(x is obj for x in items)


def reset(sock: socket.socket) -> None:
    """Close abortively: SO_LINGER 0 makes close() send RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# --- S1: OnListen, bind failure -------------------------------------------------------------

def test_defaults(qapp):
    srv = ServerSocket()
    assert srv.Active is False
    assert srv.Port == 0
    assert srv.Service == ""
    assert srv.Address == ""
    assert srv.ServerType == stNonBlocking
    assert srv.ThreadCacheSize == 10
    assert srv.AllowHalfClose is False
    assert isinstance(srv.Socket, ServerWinSocket)
    assert srv.Socket.ActiveConnections == 0
    assert list(srv.Socket.Connections) == []


@pytest.mark.parametrize("phase", ["creation-turn", "later-turn"])
def test_open_fires_onlisten_synchronously_active_true_connected_false(qtbot, res, phase):
    srv = ServerSocket()
    res.components.append(srv)
    srv.Address = "127.0.0.1"
    if phase == "later-turn":
        qtbot.wait(1)
    log = EventLog(srv, snapshot=lambda name, args: (srv.Active, srv.Socket.Connected))
    srv.Open()
    assert log.names() == ["OnListen"]
    sender, sock = log.args("OnListen")
    assert sender is srv
    assert sock is srv.Socket
    assert log.snapshots == [(True, False)]
    assert srv.Active is True
    assert srv.Socket.Connected is True
    port = srv.Socket.LocalPort
    assert 0 < port < 65536
    assert srv.Socket.ActiveConnections == 0
    # It really listens (the kernel completes the handshake without the event loop).
    res.connect(port)


@pytest.mark.parametrize("address", ["127.0.0.1", ""])
def test_port_in_use_raises_bind_error_and_no_onlisten(res, address):
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    res.sockets.append(blocker)
    blocker.bind(("0.0.0.0", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    srv = res.server(address=address, port=port, open=False)
    log = EventLog(srv)
    with pytest.raises(ESocketError) as info:
        srv.Open()
    err = info.value
    assert err.ErrorCode == 10048
    assert err.API == "bind"
    assert str(err).startswith("Windows socket error: ")
    assert str(err).endswith("(10048), on API 'bind'")
    assert "OnListen" not in log.names()
    assert srv.Active is False
    assert srv.Socket.Connected is False
    # Nothing is stuck: once the port is free, the same component opens on it.
    blocker.close()
    srv.Open()
    assert log.count("OnListen") == 1
    assert srv.Active is True
    assert srv.Socket.LocalPort == port


# --- S2/S4: per-client order, senders, identity, OnGetSocket subclass ------------------------

def test_client_events_order_senders_and_socket_identity(qtbot, res):
    srv = res.server()
    ss = srv.Socket
    port = ss.LocalPort
    log = EventLog(srv, snapshot=lambda name, args: (ss.ActiveConnections, list(ss.Connections)))
    texts: list[str] = []
    srv.OnClientRead.connect(lambda sender, sock: texts.append(sock.ReceiveText()))

    peer = res.connect(port)
    peer.sendall(b"hello")  # at once: read readiness may coincide with the accept
    qtbot.waitUntil(lambda: "".join(texts) == "hello", timeout=WAIT)

    assert log.names() == ACCEPT_ORDER + ["OnClientRead"]
    sender, handle, cell = log.args("OnGetSocket")
    assert sender is ss
    assert isinstance(handle, int) and handle >= 0
    assert isinstance(cell, Var)
    acc_sender, client = log.args("OnAccept")
    assert acc_sender is srv
    assert isinstance(client, ServerClientWinSocket)
    for name in ("OnClientConnect", "OnClientWrite", "OnClientRead"):
        ev_sender, ev_sock = log.args(name)
        assert ev_sender is ss, name
        assert ev_sock is client, name
    assert client.ServerWinSocket is ss
    assert client.SocketHandle == handle
    assert client.Connected is True
    assert client.RemoteAddress == "127.0.0.1"
    assert client.RemotePort == peer.getsockname()[1]
    assert client.LocalPort == port
    # ActiveConnections/Connections: nothing yet at OnGetSocket, the client from OnAccept on.
    counts = [(name, snap[0]) for (name, _), snap in zip(log.events, log.snapshots)]
    assert counts == [("OnGetSocket", 0), ("OnAccept", 1), ("OnClientConnect", 1),
                      ("OnClientWrite", 1), ("OnClientRead", 1)]
    for (name, _), (_, conns) in zip(log.events[1:], log.snapshots[1:]):
        assert same(conns, [client]), name


class TaggedSocket(ServerClientWinSocket):
    """What an OnGetSocket handler supplies."""

    def __init__(self, handle: int, server: ServerWinSocket) -> None:
        super().__init__(handle, server)
        self.tag = "mine"


def test_ongetsocket_subclass_is_the_socket_of_every_later_event(qtbot, res):
    srv = res.server()
    ss = srv.Socket
    log = EventLog(srv)  # connected first: records OnGetSocket before the handler below runs
    made: list[TaggedSocket] = []
    seen_by_later_handler: list[Any] = []

    def on_get_socket(sender, handle, cell):
        cell.value = TaggedSocket(handle, sender)
        made.append(cell.value)

    srv.OnGetSocket.connect(on_get_socket)
    srv.OnGetSocket.connect(lambda sender, handle, cell: seen_by_later_handler.append(cell.value))

    peer = res.connect(ss.LocalPort)
    peer.sendall(b"x")
    qtbot.waitUntil(lambda: log.count("OnClientRead") == 1, timeout=WAIT)

    # The handler creating the socket must not pull OnClientConnect in front of OnAccept.
    assert log.names() == ACCEPT_ORDER + ["OnClientRead"]
    assert len(made) == 1
    mine = made[0]
    assert same(seen_by_later_handler, [mine])  # one Var cell, shared in connection order
    for name, args in log.events[1:]:
        assert args[1] is mine, name
    assert mine.tag == "mine"
    assert mine.ServerWinSocket is ss
    assert same(list(ss.Connections), [mine])
    assert ss.ActiveConnections == 1
    assert mine.ReceiveText() == "x"


# --- S3: ActiveConnections / Connections -----------------------------------------------------

def test_connections_listed_inside_onclientdisconnect_and_gone_right_after(qtbot, res):
    srv = res.server()
    ss = srv.Socket
    accepted: list[Any] = []
    srv.OnAccept.connect(lambda sender, sock: accepted.append(sock))
    peers = [res.connect(ss.LocalPort) for _ in range(4)]
    qtbot.waitUntil(lambda: ss.ActiveConnections == 4, timeout=WAIT)
    assert len(accepted) == 4
    assert len(ss.Connections) == 4
    assert all(contains(list(ss.Connections), sock) for sock in accepted)
    by_port = {sock.RemotePort: sock for sock in accepted}
    served = [by_port[peer.getsockname()[1]] for peer in peers]

    inside: list[tuple[Any, ...]] = []
    after: list[tuple[Any, ...]] = []

    def on_disconnect(sender, sock):
        conns = list(ss.Connections)
        inside.append((sock, contains(conns, sock), ss.ActiveConnections, len(conns),
                       sock.Connected, [s for s in served if contains(conns, s)]))
        QTimer.singleShot(0, lambda: after.append(
            (sock, contains(list(ss.Connections), sock), sock.Connected, sock.SocketHandle)))

    srv.OnClientDisconnect.connect(on_disconnect)
    # Two peers close at once: both FINs are ready in the same event-loop turn, so the second
    # handler runs right after the first returned and must no longer see the first socket.
    peers[1].close()
    peers[2].close()
    qtbot.waitUntil(lambda: len(after) == 2, timeout=WAIT)
    first, second = inside
    assert {id(first[0]), id(second[0])} == {id(served[1]), id(served[2])}
    assert first[1:5] == (True, 4, 4, True)
    assert second[1:5] == (True, 3, 3, True)
    assert not contains(second[5], first[0])
    assert [a[1:] for a in after] == [(False, False, -1), (False, False, -1)]
    assert ss.ActiveConnections == 2

    # Server-side Close: OnClientDisconnect inside the call, gone as soon as Close returns.
    served[3].Close()
    assert len(inside) == 3
    assert inside[2][0] is served[3]
    assert inside[2][1:5] == (True, 2, 2, True)
    assert not contains(list(ss.Connections), served[3])
    assert ss.ActiveConnections == 1
    assert served[3].Connected is False
    assert same(list(ss.Connections), [served[0]])
    assert served[0].Connected is True
    assert peers[3].recv(1) == b""  # the peer sees the close


# --- S5: client reset ------------------------------------------------------------------------

@pytest.mark.parametrize("suppress", [False, True], ids=["hooked", "suppressed"])
def test_client_reset_fires_onclienterror_then_onclientdisconnect_once(qtbot, res, hook, suppress):
    srv = res.server()
    ss = srv.Socket
    log = EventLog(srv, snapshot=lambda name, args: (
        args[3].value if name == "OnClientError" else None))
    if suppress:
        srv.OnClientError.connect(lambda sender, sock, event, code: setattr(code, "value", 0))
    peer = res.connect(ss.LocalPort)
    qtbot.waitUntil(lambda: log.count("OnClientWrite") == 1, timeout=WAIT)
    client = ss.Connections[0]

    reset(peer)
    qtbot.waitUntil(lambda: log.count("OnClientDisconnect") >= 1, timeout=WAIT)
    qtbot.wait(50)  # room for a duplicate event to show up

    assert log.names() == ACCEPT_ORDER + ["OnClientError", "OnClientDisconnect"]
    sender, sock, event, _code = log.args("OnClientError")
    assert sender is ss
    assert sock is client
    assert event == eeDisconnect
    assert log.snapshots[4] == 10054
    dsender, dsock = log.args("OnClientDisconnect")
    assert dsender is ss and dsock is client
    assert ss.ActiveConnections == 0
    assert list(ss.Connections) == []
    assert client.Connected is False
    if suppress:
        assert hook == []
    else:
        assert len(hook) == 1
        err = hook[0]
        assert isinstance(err, ESocketError)
        assert err.ErrorCode == 10054
        assert str(err).startswith("Asynchronous socket error 10054: ")


# --- S6: server Close ------------------------------------------------------------------------

def test_server_close_disconnects_every_client_and_frees_the_port(qtbot, res):
    srv = res.server()
    ss = srv.Socket
    port = ss.LocalPort
    log = EventLog(srv)
    peers = [res.connect(port) for _ in range(3)]
    qtbot.waitUntil(lambda: log.count("OnClientWrite") == 3, timeout=WAIT)
    accepted = [args[1] for name, args in log.events if name == "OnAccept"]
    inside: list[tuple[Any, bool]] = []
    srv.OnClientDisconnect.connect(lambda sender, sock: inside.append((sock, sock.Connected)))

    srv.Close()

    disconnected = [args[1] for name, args in log.events if name == "OnClientDisconnect"]
    assert len(disconnected) == 3
    assert all(contains(disconnected, s) for s in accepted)
    assert all(connected for _, connected in inside)
    assert all(args[0] is ss for name, args in log.events if name == "OnClientDisconnect")
    assert srv.Active is False
    assert list(ss.Connections) == []
    assert ss.ActiveConnections == 0
    assert all(s.Connected is False for s in accepted)
    for peer in peers:  # the clients see the disconnect
        assert peer.recv(1) == b""

    # The port is free at once (SO_REUSEADDR) although the closed connections are in TIME_WAIT.
    srv2 = res.server(port=port)
    assert srv2.Active is True
    assert srv2.Socket.LocalPort == port
    res.connect(port)
    qtbot.waitUntil(lambda: srv2.Socket.ActiveConnections == 1, timeout=WAIT)
    assert log.count("OnClientDisconnect") == 3
    assert log.count("OnAccept") == 3


# --- dual stack, Service, property checks ----------------------------------------------------

def test_dual_stack_listener_accepts_ipv4_and_ipv6_clients(qtbot, res):
    srv = res.server(address="")
    ss = srv.Socket
    port = ss.LocalPort
    remotes: list[tuple[str, int]] = []
    srv.OnAccept.connect(lambda sender, sock: remotes.append((sock.RemoteAddress, sock.RemotePort)))
    p4 = res.connect(port, "127.0.0.1")
    p6 = res.connect(port, "::1")
    qtbot.waitUntil(lambda: len(remotes) == 2, timeout=WAIT)
    assert sorted(remotes) == sorted([("127.0.0.1", p4.getsockname()[1]),
                                      ("::1", p6.getsockname()[1])])
    assert ss.ActiveConnections == 2


def free_service() -> tuple[str, int]:
    """A service name from the services database whose TCP port is free on 127.0.0.1."""
    for name in ("http-alt", "postgresql", "ircd", "x11", "mysql", "nntp"):
        try:
            number = socket.getservbyname(name, "tcp")
        except OSError:
            continue
        with socket.socket() as probe:
            # SO_REUSEADDR as the server uses it: TIME_WAIT left by an earlier run is no conflict
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", number))
            except OSError:
                continue
        return name, number
    raise AssertionError("no free well-known service port to test with")


def test_service_wins_over_port(qtbot, res):
    name, number = free_service()
    srv = res.server(port=free_port(), open=False)
    srv.Service = name
    assert srv.Service == name
    srv.Open()
    qtbot.waitUntil(lambda: srv.Active, timeout=WAIT)
    assert srv.Socket.LocalPort == number
    res.connect(number)
    qtbot.waitUntil(lambda: srv.Socket.ActiveConnections == 1, timeout=WAIT)


@pytest.mark.parametrize("value", [-1, 65536, 70000])
def test_port_outside_range_is_rejected(qapp, value):
    srv = ServerSocket()
    with pytest.raises(ESocketError) as info:
        srv.Port = value
    assert str(info.value) == f"Invalid port number {value}: must be 0..65535"
    assert srv.Port == 0


@pytest.mark.parametrize("value", ["80", 80.0, None])
def test_port_not_an_int_is_rejected(qapp, value):
    srv = ServerSocket()
    with pytest.raises(ESocketError):
        srv.Port = value
    assert srv.Port == 0


def test_port_bounds_are_accepted(qapp):
    srv = ServerSocket()
    srv.Port = 65535
    assert srv.Port == 65535
    srv.Port = 0
    assert srv.Port == 0


def test_changing_properties_while_listening_raises(res):
    srv = res.server()
    port = srv.Socket.LocalPort
    for attr, value in [("Port", port), ("Service", "http"), ("Address", "::1"),
                        ("ServerType", stThreadBlocking)]:
        with pytest.raises(ESocketError, match=CANT_CHANGE):
            setattr(srv, attr, value)
    # The same values are no change, so no error.
    srv.Port = 0
    srv.Service = ""
    srv.Address = "127.0.0.1"
    srv.ServerType = stNonBlocking
    assert srv.Active is True
    assert srv.Socket.LocalPort == port
    assert (srv.Port, srv.Service, srv.Address, srv.ServerType) == (
        0, "", "127.0.0.1", stNonBlocking)
    srv.Close()
    srv.Port = port  # allowed again once closed
    assert srv.Port == port


# --- resources -------------------------------------------------------------------------------

def test_no_fd_leak_after_2000_connect_close_cycles(qtbot, res):
    srv = res.server()
    ss = srv.Socket
    port = ss.LocalPort
    counts = {"connect": 0, "disconnect": 0}
    srv.OnClientConnect.connect(lambda sender, sock: counts.__setitem__(
        "connect", counts["connect"] + 1))
    srv.OnClientDisconnect.connect(lambda sender, sock: counts.__setitem__(
        "disconnect", counts["disconnect"] + 1))

    def cycles(n: int) -> None:
        for _ in range(n):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                s.connect(("127.0.0.1", port))

    def settled(total: int) -> bool:
        return counts["disconnect"] == total and ss.ActiveConnections == 0

    cycles(20)  # warm-up: lazily created descriptors (notifiers, epoll) exist from here on
    qtbot.waitUntil(lambda: settled(20), timeout=WAIT)
    gc.collect()  # sockets left by earlier tests must not close in the middle of the count
    before = len(os.listdir("/proc/self/fd"))
    done = 20
    for _ in range(20):
        cycles(100)
        done += 100
        qtbot.waitUntil(lambda: settled(done), timeout=WAIT)
    gc.collect()
    after = len(os.listdir("/proc/self/fd"))
    assert counts == {"connect": 2020, "disconnect": 2020}
    assert list(ss.Connections) == []
    assert after <= before  # a leak can only add descriptors
