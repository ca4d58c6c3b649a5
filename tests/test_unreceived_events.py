"""A server skips the per-connection events nobody receives, and never one that someone does.

OnGetSocket, OnAccept, OnClientConnect, OnClientWrite and OnClientDisconnect cost an emit per
connection even with no receiver. The server asks Qt which have receivers before a batch of
accepts, keeps the answer until a receiver comes or goes, and skips the rest; a receiver
connected at any moment (from any thread) gets the very next event, an overriding dispatch
method is always called, and a disconnect is noticed at the next accept. The thread-mode
side of the same rule (no Synchronize for such events) is in test_thread_server.py.
"""
from __future__ import annotations

import gc
import socket
import threading
from typing import Any, Callable

import pytest
import shiboken6
from PySide6.QtCore import QObject

from sockcomp import ServerSocket, stNonBlocking
from tests.util import EventLog, Job, recv_exactly, recv_until_eof

WAIT = 5000
ACCEPT_ORDER = ["OnGetSocket", "OnAccept", "OnClientConnect", "OnClientWrite"]


class Servers:
    """Non-blocking servers and plain peers of one test, closed at its end."""

    def __init__(self, qtbot) -> None:
        self.qtbot = qtbot
        self.servers: list[ServerSocket] = []
        self.peers: list[socket.socket] = []

    def make(self, cls: type = ServerSocket) -> ServerSocket:
        srv = cls()
        srv.ServerType, srv.Address, srv.Port = stNonBlocking, "127.0.0.1", 0
        self.servers.append(srv)
        return srv

    def peer(self, srv: ServerSocket) -> socket.socket:
        sock = Job(socket.create_connection, ("127.0.0.1", srv.Socket.LocalPort), 5).wait(
            self.qtbot)
        self.peers.append(sock)
        return sock

    def echo(self, srv: ServerSocket, data: bytes = b"ping") -> None:
        """One connection's whole life in a peer thread: connect, one echo, close; returns
        once the server saw the close."""
        before = srv.Socket.ActiveConnections

        def life() -> bytes:
            with socket.create_connection(("127.0.0.1", srv.Socket.LocalPort),
                                          timeout=5) as peer:
                peer.sendall(data)
                return recv_exactly(peer, len(data))

        assert Job(life).wait(self.qtbot) == data
        self.qtbot.waitUntil(lambda: srv.Socket.ActiveConnections == before, timeout=WAIT)

    def close(self) -> None:
        for srv in self.servers:
            srv.Close()
        for sock in self.peers:
            sock.close()


@pytest.fixture
def servers(qtbot):
    made = Servers(qtbot)
    yield made
    made.close()


def echo_handler(Sender: Any, Socket: Any) -> None:
    Socket.SendBuf(Socket.ReceiveBytes())


def count_client_emits(srv: ServerSocket) -> list[str]:
    """Names of the client events the server fires through their signals from now on (each
    still emitted): the component's emit table is wrapped, so skipping shows as absence."""
    fired: list[str] = []
    real_fire = srv._fire

    def fire(name: str) -> Callable[..., None]:
        emit = real_fire(name)

        def counted(*args: Any) -> None:
            fired.append(name)
            emit(*args)
        return counted

    srv._fire = fire  # type: ignore[method-assign]
    srv._bind_dispatch()
    return fired


def test_connection_events_nobody_receives_are_not_emitted(qtbot, servers, hook):
    """Only OnClientRead has a receiver: three connections fire nothing else (the first one
    too: Qt is asked before the first accept)."""
    srv = servers.make()
    srv.OnClientRead.connect(echo_handler)
    fired = count_client_emits(srv)
    srv.Open()
    for _ in range(3):
        servers.echo(srv)
    assert fired == ["OnClientRead"] * 3
    assert hook == []


def test_every_event_with_a_receiver_is_still_emitted(qtbot, servers, hook):
    srv = servers.make()
    srv.OnClientRead.connect(echo_handler)
    log = EventLog(srv)
    fired = count_client_emits(srv)
    srv.Open()
    servers.echo(srv)
    assert log.names() == ["OnListen"] + ACCEPT_ORDER + ["OnClientRead", "OnClientDisconnect"]
    assert fired == ["OnClientConnect", "OnClientWrite", "OnClientRead", "OnClientDisconnect"]
    assert hook == []


@pytest.mark.parametrize("where", ["this thread", "another thread"])
def test_a_handler_connected_mid_connection_gets_that_connections_disconnect(qtbot, servers,
                                                                             hook, where):
    """The connection's earlier events were skipped; its OnClientDisconnect is not, wherever
    the handler was connected from."""
    srv = servers.make()
    srv.OnClientRead.connect(echo_handler)
    srv.Open()
    peer = servers.peer(srv)
    peer.sendall(b"one")
    assert Job(recv_exactly, peer, 3).wait(qtbot) == b"one"
    client = srv.Socket.Connections[0]
    gone: list[Any] = []

    def on_disconnect(Sender: Any, Socket: Any) -> None:
        gone.append(Socket)

    if where == "this thread":
        srv.OnClientDisconnect.connect(on_disconnect)
    else:
        other = threading.Thread(target=srv.OnClientDisconnect.connect, args=(on_disconnect,))
        other.start()
        other.join(WAIT / 1000)
    peer.close()
    qtbot.waitUntil(lambda: len(gone) == 1, timeout=WAIT)
    assert gone[0] is client
    assert hook == []


def test_a_disconnected_handler_is_skipped_again_from_the_next_accept(qtbot, servers, hook):
    srv = servers.make()
    srv.OnClientRead.connect(echo_handler)
    seen: list[str] = []

    def on_connect(Sender: Any, Socket: Any) -> None:
        seen.append("OnClientConnect")

    srv.OnClientConnect.connect(on_connect)
    fired = count_client_emits(srv)
    srv.Open()
    servers.echo(srv)
    servers.echo(srv)  # the second client is served from the kept answer
    srv.OnClientConnect.disconnect(on_connect)
    servers.echo(srv)
    assert seen == ["OnClientConnect"] * 2
    assert fired == ["OnClientConnect", "OnClientRead"] * 2 + ["OnClientRead"]
    assert hook == []


def test_accept_events_connected_between_clients_fire_for_the_next(qtbot, servers, hook):
    srv = servers.make()
    srv.OnClientRead.connect(echo_handler)
    srv.Open()
    servers.echo(srv)
    seen: list[str] = []
    srv.OnGetSocket.connect(lambda Sender, Socket, ClientSocket: seen.append("OnGetSocket"))
    srv.OnAccept.connect(lambda Sender, Socket: seen.append("OnAccept"))
    servers.echo(srv)
    assert seen == ["OnGetSocket", "OnAccept"]
    assert hook == []


def test_overridden_dispatch_methods_are_called_without_receivers(qtbot, servers, hook):
    """A subclass handling the events as methods has no signal receivers, yet every method
    is called: only events that would go to nobody are skipped."""
    calls: list[str] = []

    class Echo(ServerSocket):
        def ClientConnect(self, Socket):
            calls.append("ClientConnect")

        def ClientWrite(self, Socket):
            calls.append("ClientWrite")

        def ClientRead(self, Socket):
            calls.append("ClientRead")
            Socket.SendBuf(Socket.ReceiveBytes())

        def ClientDisconnect(self, Socket):
            calls.append("ClientDisconnect")

    srv = servers.make(Echo)
    srv.Open()
    servers.echo(srv)
    servers.echo(srv)
    assert calls == ["ClientConnect", "ClientWrite", "ClientRead", "ClientDisconnect"] * 2
    assert hook == []


def test_assigned_handlers_are_called_and_the_rest_skipped(qtbot, servers, hook):
    """Handlers assigned the Delphi way count as receivers."""
    srv = servers.make()
    seen: list[str] = []
    srv.OnClientRead = echo_handler
    srv.OnClientConnect = lambda Sender, Socket: seen.append("OnClientConnect")
    srv.OnClientDisconnect = lambda Sender, Socket: seen.append("OnClientDisconnect")
    srv.Open()
    servers.echo(srv)
    servers.echo(srv)
    assert seen == ["OnClientConnect", "OnClientDisconnect"] * 2
    assert hook == []


def test_an_idle_timeout_still_starts_without_an_onclientconnect_receiver(qtbot, servers, hook):
    """seConnect's emit is skipped, not the idle watch that starts with it."""
    srv = servers.make()
    srv.Socket.IdleTimeout = 200
    srv.Open()
    peer = servers.peer(srv)
    assert Job(recv_until_eof, peer).wait(qtbot) == b""  # the server closed the silent one
    qtbot.waitUntil(lambda: srv.Socket.ActiveConnections == 0, timeout=WAIT)
    assert [getattr(e, "ErrorCode", None) for e in hook] == [10060]  # unhandled OnClientError


def test_asking_qt_leaves_the_class_meta_object_usable_after_the_parent_goes(qtbot, servers,
                                                                            hook):
    """The accept asks Qt about receivers; doing so through the instance's ``metaObject()``
    broke ``ServerSocket.staticMetaObject`` for good once the server's parent was deleted
    (PySide6 6.11/6.12), and the QML and widget wrappers read it."""
    class Server(ServerSocket):  # a class Qt has not been asked about yet
        pass

    parent = QObject()
    srv = Server(parent)
    srv.ServerType, srv.Address, srv.Port = stNonBlocking, "127.0.0.1", 0
    srv.OnClientRead.connect(echo_handler)
    srv.Open()
    servers.echo(srv)
    srv.Close()
    del srv
    shiboken6.delete(parent)
    gc.collect()
    assert Server.staticMetaObject.indexOfSignal("OnClientRead(PyObject,PyObject)") >= 0
    assert hook == []


def test_an_unassigned_handlers_object_is_freed_without_waiting_for_an_accept(qtbot, servers,
                                                                             hook):
    """What the skipping remembers about the dispatch table keeps no handler alive."""
    import weakref

    class Session:
        def on_read(self, Sender: Any, Socket: Any) -> None:
            Socket.SendBuf(Socket.ReceiveBytes())

    session = Session()
    alive = weakref.ref(session)
    srv = servers.make()
    srv.OnClientRead = session.on_read
    srv.Open()
    servers.echo(srv)  # an accept: the table in use is trimmed, and remembered
    srv.OnClientRead = None
    del session
    qtbot.waitUntil(lambda: alive() is None, timeout=WAIT)
    assert hook == []
