"""ScktComp names whose behaviour no other test pinned, found while building the surface list
(``docs/scktcomp-surface.toml``, checked by ``tests/test_surface.py``): ``RemoteHost``,
``LocalHost``, ``LookupState``, ``Data``, ``ClientSocket.Close`` during a lookup, a client's
``DoActivate``, a ``ServerClientThread`` created suspended, and ``eeSend``. Real sockets on
loopback.
"""
from __future__ import annotations

import socket
import struct
from typing import Any

import pytest

from sockcomp import (
    ClientSocket, ESocketError, ServerClientThread, ServerSocket, WinSocketStream, ctBlocking,
    eeSend, lsIdle, lsLookupAddress, stThreadBlocking,
)
from tests.util import EventLog

WAIT = 5000


@pytest.fixture
def opened(qtbot):
    """Closes the components and sockets a test made, newest first."""
    items: list[Any] = []
    yield items.append
    for item in reversed(items):
        try:
            item.Close() if hasattr(item, "Close") else item.close()
        except Exception:
            pass


def listening_server(qtbot, opened, **props: Any) -> ServerSocket:
    srv = ServerSocket()
    opened(srv)
    srv.Address, srv.Port = "127.0.0.1", 0
    for name, value in props.items():
        setattr(srv, name, value)
    qtbot.wait(1)  # the creation turn ends
    srv.Open()
    return srv


def client_of(qtbot, opened, port: int, **props: Any) -> ClientSocket:
    cli = ClientSocket()
    opened(cli)
    cli.Address, cli.Port = "127.0.0.1", port
    for name, value in props.items():
        setattr(cli, name, value)
    qtbot.wait(1)
    return cli


def test_remote_host_and_local_host_name_the_machines(qtbot, opened):
    srv = listening_server(qtbot, opened)
    cli = client_of(qtbot, opened, srv.Socket.LocalPort)
    assert (cli.Socket.RemoteHost, cli.Socket.LocalHost) == ("", "")  # no connection yet
    seen: dict[str, str] = {}

    def on_connect(Sender, Socket):
        seen.update(remote=Socket.RemoteHost, local=Socket.LocalHost)

    cli.OnConnect.connect(on_connect)
    cli.Open()
    qtbot.waitUntil(lambda: "remote" in seen, timeout=WAIT)
    try:
        expected = socket.gethostbyaddr("127.0.0.1")[0]
    except OSError:
        expected = ""  # no name for the address: '' as in the VCL
    assert seen == {"remote": expected, "local": socket.gethostname()}
    cli.Close()
    assert (cli.Socket.RemoteHost, cli.Socket.LocalHost) == ("", "")


def test_lookup_state_follows_a_host_lookup_and_close_cancels_it(qtbot, opened):
    srv = listening_server(qtbot, opened)
    cli = client_of(qtbot, opened, srv.Socket.LocalPort, Host="localhost")
    log = EventLog(cli)
    assert cli.Socket.LookupState == lsIdle
    cli.Open()
    assert cli.Socket.LookupState == lsLookupAddress  # the lookup runs off this thread
    cli.Close()  # cancels it: the VCL's Close was a no-op while connecting
    assert log.names() == ["OnLookup", "OnDisconnect"]
    assert cli.Socket.LookupState == lsIdle and cli.Socket.SocketHandle == -1
    qtbot.wait(100)
    assert log.names() == ["OnLookup", "OnDisconnect"]  # nothing after the end
    assert cli.Active is False and srv.Socket.ActiveConnections == 0

    cli.Open()
    qtbot.waitUntil(lambda: log.count("OnConnect") == 1, timeout=WAIT)
    assert cli.Socket.LookupState == lsIdle


def test_data_is_the_applications_and_per_socket(qtbot, opened):
    srv = listening_server(qtbot, opened)
    read: list[Any] = []
    srv.OnClientConnect.connect(lambda Sender, Socket: setattr(Socket, "Data", Socket.RemotePort))
    srv.OnClientRead.connect(lambda Sender, Socket: read.append(
        (Socket.Data == Socket.RemotePort, Socket.ReceiveText())))
    clients = [client_of(qtbot, opened, srv.Socket.LocalPort) for _ in range(2)]
    assert [c.Socket.Data for c in clients] == [None, None]  # never touched by the library
    for cli in clients:
        cli.OnConnect.connect(lambda Sender, Socket: Socket.SendText("hi"))
        cli.Open()
    qtbot.waitUntil(lambda: len(read) == 2, timeout=WAIT)
    assert read == [(True, "hi"), (True, "hi")]
    assert len({sock.Data for sock in srv.Socket.Connections}) == 2


def test_do_activate_of_a_client_sees_open_close_and_active(qtbot, opened):
    calls: list[bool] = []

    class Watched(ClientSocket):
        def DoActivate(self, Value: bool) -> None:
            calls.append(Value)
            super().DoActivate(Value)

    srv = listening_server(qtbot, opened)
    cli = Watched()
    opened(cli)
    cli.Address, cli.Port = "127.0.0.1", srv.Socket.LocalPort
    qtbot.wait(1)
    cli.Open()
    qtbot.waitUntil(lambda: cli.Active, timeout=WAIT)
    cli.Active = False
    cli.Active = True
    qtbot.waitUntil(lambda: cli.Active, timeout=WAIT)
    cli.Close()
    assert calls == [True, False, True, False]


class SuspendedEcho(ServerClientThread):
    def ClientExecute(self) -> None:
        sock: Any = self.ClientSocket
        stream = WinSocketStream(sock, 5000)
        while not self.Terminated and sock.Connected:
            if stream.WaitForData(5000):
                data = stream.Read(4096)
                if not data:
                    sock.Close()
                else:
                    stream.Write(data)


def test_a_thread_created_suspended_is_started_by_the_server(qtbot, opened):
    srv = listening_server(qtbot, opened, ServerType=stThreadBlocking)
    made: list[ServerClientThread] = []
    idents: list[Any] = []

    def on_get_thread(Sender, ClientSocket, SocketThread):
        SocketThread.value = SuspendedEcho(True, ClientSocket)  # CreateSuspended
        made.append(SocketThread.value)
        idents.append(SocketThread.value.ident)  # None: not started yet

    srv.OnGetThread.connect(on_get_thread)
    got = bytearray()

    def echoed() -> bool:
        try:
            got.extend(peer.recv(16))
        except BlockingIOError:
            pass
        return bytes(got) == b"ping"

    with socket.create_connection(("127.0.0.1", srv.Socket.LocalPort), timeout=5) as peer:
        peer.sendall(b"ping")
        peer.setblocking(False)  # the server runs on this thread's event loop
        qtbot.waitUntil(echoed, timeout=WAIT)  # the server resumed the thread: it serves
    assert idents == [None] and len(made) == 1 and made[0].ident is not None


def test_a_send_that_fails_is_oneerror_eesend(qtbot, opened):
    lst = socket.create_server(("127.0.0.1", 0))
    opened(lst)
    cli = client_of(qtbot, opened, lst.getsockname()[1], ClientType=ctBlocking)
    log = EventLog(cli)
    cli.Open()
    conn, _ = lst.accept()
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()  # the peer resets
    with pytest.raises(ESocketError) as info:
        for _ in range(1000):  # the reset reaches this side within a send or two
            cli.Socket.SendBuf(b"x" * 65536)
            qtbot.wait(1)
    assert info.value.API == "send"
    assert log.names()[-2:] == ["OnError", "OnDisconnect"]
    assert log.args("OnError")[2] == eeSend
