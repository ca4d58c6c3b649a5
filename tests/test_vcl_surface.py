"""The rest of the ScktComp surface: ASyncStyles, SetErrorProc, the events of ServerWinSocket
and of every socket object, lookups, the VCL signatures of Open and Listen, the
component writer's override points and the VCL's message texts. Real sockets on loopback.
"""
from __future__ import annotations

import errno
import select
import socket
import struct
import threading
from typing import Any

import pytest

from sockcomp import (
    ClientSocket, ClientWinSocket, ESocketError, ServerClientThread, ServerClientWinSocket,
    ServerSocket, ServerWinSocket, SetErrorProc, Var, WinSocketStream, asAccept, asClose,
    asConnect, asOOB, asRead, asWrite, ctBlocking, ctNonBlocking, eeConnect, eeDisconnect,
    seConnect, seDisconnect, seRead, seWrite, stNonBlocking, stThreadBlocking,
)
from sockcomp.enums import DEFAULT_ASYNC_STYLES
from tests.util import EventLog, free_port

WAIT = 5000
CONNECTED = ["OnLookup", "OnConnecting", "OnConnect", "OnWrite"]


class Keep:
    """Closes what a test opened, newest first."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def __call__(self, item: Any) -> Any:
        self.items.append(item)
        return item

    def close(self) -> None:
        for item in reversed(self.items):
            try:
                item.Close() if hasattr(item, "Close") else item.close()
            except Exception:
                pass


@pytest.fixture
def keep(qtbot):
    cleanup = Keep()
    yield cleanup
    cleanup.close()


@pytest.fixture
def error_proc():
    """This thread's error procedure records codes; the previous one comes back after."""
    codes: list[int] = []
    previous = SetErrorProc(codes.append)
    yield codes
    SetErrorProc(previous)


def raw_listener(keep: Keep) -> tuple[socket.socket, int]:
    lst = keep(socket.socket())
    lst.bind(("127.0.0.1", 0))
    lst.listen(8)
    return lst, lst.getsockname()[1]


def accept(lst: socket.socket) -> socket.socket:
    lst.settimeout(5)
    conn, _ = lst.accept()
    conn.settimeout(5)
    return conn


def client(keep: Keep, qtbot, port: int, **props: Any) -> ClientSocket:
    cli = keep(ClientSocket())
    cli.Address, cli.Port = "127.0.0.1", port
    for name, value in props.items():
        setattr(cli, name, value)
    qtbot.wait(1)  # the creation turn ends: Open acts at once
    return cli


def server(keep: Keep, qtbot, cls: type = ServerSocket, **props: Any) -> ServerSocket:
    srv = keep(cls())
    srv.Address, srv.Port = "127.0.0.1", 0
    for name, value in props.items():
        setattr(srv, name, value)
    qtbot.wait(1)
    srv.Open()
    return srv


def reset(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


# ---------------------------------------------------------------------------------- ASyncStyles
def test_async_styles_defaults_and_the_mode_they_stand_for(qtbot, keep):
    cli = keep(ClientSocket())
    assert cli.Socket.ASyncStyles == DEFAULT_ASYNC_STYLES == {asRead, asWrite, asConnect,
                                                              asClose}
    cli.ClientType = ctBlocking
    assert cli.Socket.ASyncStyles == frozenset()
    cli.ClientType = ctNonBlocking  # the VCL's ClientType setter: the default set again
    assert cli.Socket.ASyncStyles == DEFAULT_ASYNC_STYLES
    cli.Socket.ASyncStyles = []  # [] makes the socket blocking
    assert cli.ClientType == ctBlocking
    cli.Socket.ASyncStyles = [asRead, asConnect, asClose]
    assert cli.ClientType == ctNonBlocking
    assert cli.Socket.ASyncStyles == {asRead, asConnect, asClose}

    srv = keep(ServerSocket())
    assert srv.Socket.ASyncStyles == {asAccept}
    srv.Socket.ASyncStyles = set()
    assert srv.ServerType == stThreadBlocking
    srv.Socket.ASyncStyles = {asAccept}
    assert srv.ServerType == stNonBlocking


@pytest.mark.parametrize("bad", [[7], ["read"], 3, [None]])
def test_async_styles_refuse_what_is_not_a_style(qtbot, keep, bad):
    cli = keep(ClientSocket())
    with pytest.raises(ESocketError, match="Invalid ASyncStyles"):
        cli.Socket.ASyncStyles = bad
    assert cli.Socket.ASyncStyles == DEFAULT_ASYNC_STYLES


def test_an_open_socket_keeps_its_mode(qtbot, keep):
    lst, port = raw_listener(keep)
    cli = client(keep, qtbot, port)
    cli.Open()
    qtbot.waitUntil(lambda: cli.Active, timeout=WAIT)
    keep(accept(lst))
    with pytest.raises(ESocketError, match="Can't change value while socket is active"):
        cli.Socket.ASyncStyles = []
    assert cli.ClientType == ctNonBlocking
    cli.Socket.ASyncStyles = {asRead, asWrite, asOOB, asConnect, asClose}  # same mode: fine
    assert asOOB in cli.Socket.ASyncStyles


def test_without_asread_no_onread_and_nothing_is_lost(qtbot, keep):
    lst, port = raw_listener(keep)
    cli = client(keep, qtbot, port)
    cli.Socket.ASyncStyles = {asWrite, asConnect, asClose}
    log = EventLog(cli)
    cli.Open()
    peer = keep(accept(lst))
    qtbot.waitUntil(lambda: log.count("OnWrite") == 1, timeout=WAIT)
    peer.sendall(b"first ")
    peer.sendall(b"second")
    qtbot.waitUntil(lambda: cli.Socket.ReceiveLength() == 12, timeout=WAIT)
    assert log.names() == CONNECTED
    assert cli.Socket.ReceiveText() == "first second"

    # asRead back on an open socket: the read event that is due fires (Winsock posts it)
    peer.sendall(b"third")
    qtbot.waitUntil(lambda: cli.Socket.ReceiveLength() == 5, timeout=WAIT)
    cli.Socket.ASyncStyles = DEFAULT_ASYNC_STYLES
    qtbot.waitUntil(lambda: log.count("OnRead") == 1, timeout=WAIT)
    assert cli.Socket.ReceiveText() == "third"
    assert log.names() == CONNECTED + ["OnRead"]


def test_without_aswrite_no_onwrite_then_back(qtbot, keep):
    lst, port = raw_listener(keep)
    cli = client(keep, qtbot, port)
    cli.Socket.ASyncStyles = {asRead, asConnect, asClose}
    log = EventLog(cli)
    cli.Open()
    peer = keep(accept(lst))
    qtbot.waitUntil(lambda: log.count("OnConnect") == 1, timeout=WAIT)
    peer.sendall(b"x")
    qtbot.waitUntil(lambda: log.count("OnRead") == 1, timeout=WAIT)
    assert log.names() == ["OnLookup", "OnConnecting", "OnConnect", "OnRead"]
    cli.Socket.ASyncStyles = DEFAULT_ASYNC_STYLES
    qtbot.waitUntil(lambda: log.count("OnWrite") == 1, timeout=WAIT)
    assert log.names() == ["OnLookup", "OnConnecting", "OnConnect", "OnRead", "OnWrite"]


def test_server_client_without_asread_is_read_by_polling(qtbot, keep):
    srv = server(keep, qtbot)
    srv.OnAccept.connect(lambda Sender, Socket: setattr(
        Socket, "ASyncStyles", {asWrite, asConnect, asClose}))
    log = EventLog(srv)
    peer = keep(socket.create_connection(("127.0.0.1", srv.Socket.LocalPort), timeout=5))
    qtbot.waitUntil(lambda: log.count("OnClientWrite") == 1, timeout=WAIT)
    peer.sendall(b"polled")
    conn = srv.Socket.Connections[0]
    qtbot.waitUntil(lambda: conn.ReceiveLength() == 6, timeout=WAIT)
    assert conn.ReceiveText() == "polled"
    peer.close()
    qtbot.waitUntil(lambda: log.count("OnClientDisconnect") == 1, timeout=WAIT)
    assert "OnClientRead" not in log.names()
    assert conn.ASyncStyles == {asWrite, asConnect, asClose}


def test_thread_mode_clients_and_blocking_clients_have_no_styles(qtbot, keep):
    srv = server(keep, qtbot, ServerType=stThreadBlocking)
    seen: list[Any] = []
    srv.OnClientConnect.connect(lambda Sender, Socket: seen.append(Socket.ASyncStyles))
    peer = keep(socket.create_connection(("127.0.0.1", srv.Socket.LocalPort), timeout=5))
    qtbot.waitUntil(lambda: bool(seen), timeout=WAIT)
    assert seen == [frozenset()]
    with pytest.raises(ESocketError, match="Can't change value while socket is active"):
        srv.Socket.Connections[0].ASyncStyles = DEFAULT_ASYNC_STYLES
    peer.close()


def test_winsocketstream_checks_asyncstyles_as_the_vcl(qtbot, keep):
    cli = keep(ClientSocket())
    with pytest.raises(ESocketError, match="^Socket must be in blocking mode$"):
        WinSocketStream(cli.Socket, 1000)
    cli.Socket.ASyncStyles = []
    assert WinSocketStream(cli.Socket, 1000).TimeOut == 1000


# ---------------------------------------------------------------------------------- SetErrorProc
def test_error_proc_takes_a_listen_failure_instead_of_raising(qtbot, keep, error_proc):
    blocker = keep(socket.socket())
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    srv = keep(ServerSocket())
    srv.Address, srv.Port = "127.0.0.1", blocker.getsockname()[1]
    log = EventLog(srv)
    qtbot.wait(1)
    srv.Open()  # returns: the code went to the procedure
    assert error_proc == [10048]
    assert srv.Active is False and log.names() == []
    assert srv.Socket.LastError.ErrorCode == 10048 and srv.Socket.LastError.API == "bind"
    assert srv.Socket.LastErrorMessage == "Address already in use"
    srv.Port = 0
    srv.Service = "no-such-service-here"
    srv.Open()
    assert error_proc == [10048, 10109]
    assert srv.Active is False


def test_error_proc_takes_a_blocking_connect_failure(qtbot, keep, error_proc, hook):
    cli = client(keep, qtbot, free_port(), ClientType=ctBlocking)
    log = EventLog(cli)
    cli.Open()
    assert error_proc == [10061]
    assert log.names() == ["OnLookup", "OnConnecting", "OnError", "OnDisconnect"]
    assert cli.Active is False and hook == []
    assert cli.Socket.LastError.ErrorCode == 10061 and cli.Socket.LastError.API == "connect"


def test_error_proc_leaves_asynchronous_errors_to_the_hook(qtbot, keep, error_proc, hook):
    cli = client(keep, qtbot, free_port())
    cli.Open()
    qtbot.waitUntil(lambda: len(hook) == 1, timeout=WAIT)
    assert error_proc == []
    assert str(hook[0]).startswith("Asynchronous socket error 10061: ")


def test_error_proc_is_per_thread_and_returns_the_previous_one(qtbot, keep, error_proc):
    other: list[Any] = []

    def elsewhere() -> None:
        other.append(SetErrorProc(None))  # this thread has none
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        try:
            ServerWinSocket().Listen("", "127.0.0.1", "", blocker.getsockname()[1])
        except ESocketError as exc:
            other.append(exc.ErrorCode)
        finally:
            blocker.close()

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join(5)
    assert other == [None, 10048]
    assert error_proc == []

    def mine(code: int) -> None:
        pass
    previous = SetErrorProc(mine)
    assert previous == error_proc.append
    assert SetErrorProc(previous) is mine


def test_error_proc_gets_lookup_failures_and_the_vcl_values_come_back(qtbot, keep,
                                                                      error_proc):
    sock = ClientWinSocket()
    assert sock.LookupName("no-such-host.invalid") == "0.0.0.0"
    assert sock.LookupService("no-such-service-here") == 0
    assert error_proc == [11001, 10109]


def test_error_proc_takes_a_blocking_send_after_shutdown(qtbot, keep, error_proc):
    lst, port = raw_listener(keep)
    cli = client(keep, qtbot, port, ClientType=ctBlocking)
    cli.Open()
    keep(accept(lst))
    cli.Socket.Shutdown(socket.SHUT_WR)
    assert cli.Socket.SendText("late") == -1
    assert error_proc == [10058]


# ------------------------------------------------------------------ ServerWinSocket's events
def test_server_winsocket_events_are_the_components(qtbot, keep):
    srv = server(keep, qtbot)
    sock = srv.Socket
    got: list[tuple[str, Any]] = []
    sock.OnClientConnect.connect(lambda Sender, Socket: got.append(("connect", Sender)))
    sock.OnClientRead = lambda Sender, Socket: got.append(("read", Socket.ReceiveText()))
    srv.OnClientDisconnect = lambda Sender, Socket: got.append(("first", None))
    sock.OnClientDisconnect = lambda Sender, Socket: got.append(("gone", None))  # replaces
    peer = keep(socket.create_connection(("127.0.0.1", sock.LocalPort), timeout=5))
    peer.sendall(b"hi")
    qtbot.waitUntil(lambda: ("read", "hi") in got, timeout=WAIT)
    peer.close()
    qtbot.waitUntil(lambda: ("gone", None) in got, timeout=WAIT)
    assert got == [("connect", sock), ("read", "hi"), ("gone", None)]
    assert sock.OnClientRead == srv.OnClientRead  # one event, read through either


def test_assigning_none_removes_only_the_assigned_handler(qtbot, keep):
    srv = server(keep, qtbot)
    connected: list[str] = []
    srv.OnClientConnect.connect(lambda Sender, Socket: connected.append("connected"))
    srv.Socket.OnClientConnect = lambda Sender, Socket: connected.append("assigned")
    srv.OnClientConnect = None
    keep(socket.create_connection(("127.0.0.1", srv.Socket.LocalPort), timeout=5))
    qtbot.waitUntil(lambda: bool(connected), timeout=WAIT)
    qtbot.wait(20)
    assert connected == ["connected"]


def test_assigning_a_handler_to_a_client_component(qtbot, keep):
    lst, port = raw_listener(keep)
    cli = client(keep, qtbot, port)
    seen: list[str] = []
    cli.OnConnect = lambda Sender, Socket: seen.append("one")
    cli.OnConnect = lambda Sender, Socket: seen.append("two")
    with pytest.raises(TypeError, match="callable"):
        cli.OnConnect = "not a handler"
    cli.Open()
    keep(accept(lst))
    qtbot.waitUntil(lambda: bool(seen), timeout=WAIT)
    qtbot.wait(20)
    assert seen == ["two"]


def test_a_server_winsocket_without_component_says_so(qtbot):
    with pytest.raises(ESocketError, match="no ServerSocket"):
        ServerWinSocket().OnClientRead.connect(print)


def test_thread_events_pass_through_too(qtbot, keep):
    srv = server(keep, qtbot, ServerType=stThreadBlocking)
    events: list[str] = []
    srv.Socket.OnThreadStart = lambda Sender, Thread: events.append("start")
    srv.Socket.OnThreadEnd = lambda Sender, Thread: events.append("end")
    srv.Socket.OnGetThread = lambda Sender, ClientSocket, SocketThread: events.append("get")
    peer = keep(socket.create_connection(("127.0.0.1", srv.Socket.LocalPort), timeout=5))
    qtbot.waitUntil(lambda: "start" in events, timeout=WAIT)
    peer.close()
    srv.Close()
    assert events == ["get", "start", "end"]


# ------------------------------------------------------------ OnSocketEvent / OnErrorEvent
def test_on_socket_event_sees_events_first_and_passes_them_on(qtbot, keep):
    lst, port = raw_listener(keep)
    cli = client(keep, qtbot, port)
    log = EventLog(cli)
    spied: list[tuple[str, int]] = []
    previous = cli.Socket.OnSocketEvent

    def spy(Sender: Any, Socket: Any, SocketEvent: int) -> None:
        assert Sender is Socket is cli.Socket
        spied.append((log.names()[-1] if log.names() else "", SocketEvent))
        previous(Sender, Socket, SocketEvent)
    cli.Socket.OnSocketEvent = spy
    cli.Open()
    peer = keep(accept(lst))
    qtbot.waitUntil(lambda: log.count("OnWrite") == 1, timeout=WAIT)
    peer.sendall(b"x")
    qtbot.waitUntil(lambda: log.count("OnRead") == 1, timeout=WAIT)
    assert [event for _, event in spied][2:] == [seConnect, seWrite, seRead]
    # each event reached the spy before the component: the log was one behind
    assert [before for before, _ in spied][2:] == ["OnConnecting", "OnConnect", "OnWrite"]
    assert log.names() == CONNECTED + ["OnRead"]


def test_on_socket_event_none_silences_the_component(qtbot, keep):
    lst, port = raw_listener(keep)
    cli = client(keep, qtbot, port)
    log = EventLog(cli)
    cli.Open()
    peer = keep(accept(lst))
    qtbot.waitUntil(lambda: cli.Active, timeout=WAIT)
    cli.Socket.OnSocketEvent = None
    peer.sendall(b"x")
    qtbot.waitUntil(lambda: cli.Socket.ReceiveLength() == 1, timeout=WAIT)
    qtbot.wait(20)
    assert log.names() == CONNECTED


def test_on_error_event_can_clear_the_code(qtbot, keep, hook):
    cli = client(keep, qtbot, free_port())
    log = EventLog(cli)
    seen: list[tuple[Any, int]] = []

    def handle(Sender: Any, Socket: Any, ErrorEvent: Any, ErrorCode: Var) -> None:
        seen.append((ErrorEvent, ErrorCode.value))
        ErrorCode.value = 0
    cli.Socket.OnErrorEvent = handle
    cli.Open()
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1, timeout=WAIT)
    qtbot.wait(20)
    assert seen == [(eeConnect, 10061)]
    assert hook == [] and "OnError" not in log.names()


def test_server_client_on_socket_event_in_thread_mode_runs_in_the_worker(qtbot, keep):
    srv = server(keep, qtbot, ServerType=stThreadBlocking)
    threads: list[str] = []

    def accepted(Sender: Any, Socket: Any) -> None:
        previous = Socket.OnSocketEvent

        def spy(S: Any, Sk: Any, SocketEvent: int) -> None:
            threads.append(threading.current_thread().name)
            previous(S, Sk, SocketEvent)
        Socket.OnSocketEvent = spy
    srv.OnAccept.connect(accepted)
    log = EventLog(srv)
    peer = keep(socket.create_connection(("127.0.0.1", srv.Socket.LocalPort), timeout=5))
    qtbot.waitUntil(lambda: log.count("OnClientConnect") == 1, timeout=WAIT)
    peer.close()
    qtbot.waitUntil(lambda: log.count("OnClientDisconnect") == 1, timeout=WAIT)
    assert threads and all(name.startswith("sockcomp-client-") for name in threads)


# ------------------------------------------------------------------------------ lookups
def test_lookup_name_and_service(qtbot):
    sock = ClientWinSocket()
    assert sock.LookupName("127.0.0.1") == "127.0.0.1"
    assert sock.LookupName("localhost") in ("127.0.0.1", "::1")
    assert sock.LookupService("http") == 80
    assert sock.LookupService("8080") == 8080
    with pytest.raises(ESocketError) as info:
        sock.LookupName("no-such-host.invalid")
    assert (info.value.ErrorCode, info.value.API) == (11001, "getaddrinfo")
    with pytest.raises(ESocketError) as info:
        sock.LookupService("no-such-service-here")
    assert (info.value.ErrorCode, info.value.API) == (10109, "getservbyname")


# ------------------------------------------------------------------ VCL signatures
def test_open_with_the_vcl_signature_blocks_by_default(qtbot, keep):
    lst, port = raw_listener(keep)
    cli = keep(ClientSocket())
    log = EventLog(cli)
    cli.Socket.Open("", "127.0.0.1", "", port)  # Block defaults to True, as in the VCL
    assert cli.Socket.Connected and cli.ClientType == ctBlocking
    assert log.names() == ["OnLookup", "OnConnecting", "OnConnect"]
    keep(accept(lst))
    cli.Socket.Close()
    cli.Socket.Open(Name="localhost", Address="", Service=str(port), Port=0, Block=False)
    assert cli.ClientType == ctNonBlocking
    qtbot.waitUntil(lambda: cli.Socket.Connected, timeout=WAIT)
    keep(accept(lst))
    with pytest.raises(ESocketError, match="^Socket already open$"):
        cli.Socket.Open("", "127.0.0.1", "", port)


def test_listen_with_the_vcl_signature(qtbot, keep):
    srv = keep(ServerSocket())
    log = EventLog(srv)
    qtbot.wait(1)
    srv.Socket.Listen("localhost", "", "", 0, 5, True)
    assert srv.ServerType == stThreadBlocking
    assert srv.Active and log.names() == ["OnListen"]
    assert srv.Socket.LocalAddress in ("127.0.0.1", "::1")
    with pytest.raises(ESocketError, match="^Can't listen on an open socket$"):
        srv.Socket.Listen("", "127.0.0.1", "", 0)
    srv.Close()
    srv.Socket.Listen("", "127.0.0.1", "", 0, Block=False)
    assert srv.ServerType == stNonBlocking and srv.Active


# ------------------------------------------------------------ the component writer's hooks
class TaggedClient(ServerClientWinSocket):
    tag = "mine"


class OwnServerWinSocket(ServerWinSocket):
    made: list[str] = []

    def GetClientSocket(self, Socket: int) -> ServerClientWinSocket:
        self.made.append("GetClientSocket")
        return TaggedClient(Socket, self)

    def DoCreateThread(self, ClientSocket: ServerClientWinSocket) -> ServerClientThread:
        self.made.append("DoCreateThread")
        return RecordingThread(False, ClientSocket)


class OwnServer(ServerSocket):
    SocketClass = OwnServerWinSocket


class RecordingThread(ServerClientThread):
    """Overrides every hook of TServerClientThread and records the calls in order."""

    calls: list[str] = []

    def StartConnect(self) -> bool:
        result = super().StartConnect()
        self.calls.append(f"StartConnect:{result}")
        return result

    def EndConnect(self) -> bool:
        result = super().EndConnect()
        self.calls.append(f"EndConnect:{result}")
        return result

    def Event(self, SocketEvent: int) -> None:
        self.calls.append(f"Event:{int(SocketEvent)}:{threading.current_thread() is self}")
        super().Event(SocketEvent)

    def Error(self, ErrorEvent: Any, ErrorCode: Var) -> None:
        self.calls.append(f"Error:{int(ErrorEvent)}:{ErrorCode.value}")
        ErrorCode.value = 0

    def DoTerminate(self) -> None:
        self.calls.append("DoTerminate")
        super().DoTerminate()


def test_server_hooks_make_the_sockets_and_threads(qtbot, keep, hook):
    OwnServerWinSocket.made = []
    RecordingThread.calls = []
    srv = server(keep, qtbot, OwnServer, ServerType=stThreadBlocking, ThreadCacheSize=0)
    log = EventLog(srv)
    peer = keep(socket.create_connection(("127.0.0.1", srv.Socket.LocalPort), timeout=5))
    qtbot.waitUntil(lambda: log.count("OnClientConnect") == 1, timeout=WAIT)
    client_sock = log.args("OnClientConnect")[1]
    assert isinstance(client_sock, TaggedClient)
    reset(peer)
    qtbot.waitUntil(lambda: "DoTerminate" in RecordingThread.calls, timeout=WAIT)
    assert OwnServerWinSocket.made == ["GetClientSocket", "DoCreateThread"]
    assert RecordingThread.calls == [
        "StartConnect:True", f"Event:{seConnect}:True", f"Event:{seWrite}:True",
        f"Error:{eeDisconnect}:10054",
        f"Event:{seDisconnect}:True", "EndConnect:True", "DoTerminate"]
    assert hook == []  # Error cleared the code
    assert "OnClientError" not in log.names()  # the override did not pass it on
    assert log.names()[-1] == "OnThreadEnd"


def test_get_server_thread_can_be_overridden(qtbot, keep):
    class Counting(ServerWinSocket):
        asked = 0

        def GetServerThread(self, ClientSocket: ServerClientWinSocket) -> ServerClientThread:
            Counting.asked += 1
            return super().GetServerThread(ClientSocket)

    class Srv(ServerSocket):
        SocketClass = Counting

    srv = server(keep, qtbot, Srv, ServerType=stThreadBlocking)
    log = EventLog(srv)
    for _ in range(2):
        peer = socket.create_connection(("127.0.0.1", srv.Socket.LocalPort), timeout=5)
        qtbot.waitUntil(lambda: log.count("OnClientConnect") == 1, timeout=WAIT)
        peer.close()
        qtbot.waitUntil(lambda: log.count("OnClientDisconnect") == 1, timeout=WAIT)
        qtbot.waitUntil(lambda: srv.Socket.IdleThreads == 1, timeout=WAIT)
        log.events.clear()
    assert Counting.asked == 2
    assert srv.Socket.IdleThreads == 1  # the second connection reused the cached thread


def test_do_activate_sees_every_activation(qtbot, keep):
    class Watched(ServerSocket):
        def DoActivate(self, Value: bool) -> None:
            calls.append(Value)
            super().DoActivate(Value)

    calls: list[bool] = []
    srv = keep(Watched())
    srv.Address, srv.Port = "127.0.0.1", 0
    srv.Active = True  # still loading: only recorded
    assert calls == []
    qtbot.waitUntil(lambda: srv.Socket.Connected, timeout=WAIT)  # Loaded opens it
    srv.Active = False
    srv.Open()
    srv.Close()
    assert calls == [True, False, True, False]
    assert srv.Active is False


# -------------------------------------------------------------------------- messages
def test_winsocketstream_read_and_write_errors_read_as_the_vcl(qtbot, keep):
    lst, port = raw_listener(keep)
    cli = client(keep, qtbot, port, ClientType=ctBlocking)
    cli.OnError.connect(lambda *args: None)
    cli.Open()
    reset(accept(lst))
    stream = WinSocketStream(cli.Socket, 2000)
    with pytest.raises(ESocketError) as info:
        stream.Read(10)
    assert str(info.value) == f"Read error 10054, {errno_text(errno.ECONNRESET)}"
    assert (info.value.ErrorCode, info.value.API) == (10054, "recv")

    lst2, port2 = raw_listener(keep)
    cli2 = client(keep, qtbot, port2, ClientType=ctBlocking)
    cli2.OnError.connect(lambda *args: None)
    cli2.Open()
    conn = accept(lst2)
    reset(conn)
    stream2 = WinSocketStream(cli2.Socket, 2000)
    with pytest.raises(ESocketError) as info:
        while True:  # the reset reaches this side within a write or two
            select.select([], [], [], 0.01)
            stream2.Write(b"x" * 65536)
    assert str(info.value).startswith("Write error 10054, ")
    assert info.value.API == "send"


def errno_text(code: int) -> str:
    import os
    return os.strerror(code)


def test_cannot_create_a_socket_reads_as_the_vcl(tmp_path):
    """Out of descriptors (in a child process): Listen raises ``Can't create new socket``;
    a connect attempt reports it through OnError and the hook."""
    import json
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "nofd.py"
    script.write_text(textwrap.dedent('''
        import errno, json, os, resource, socket
        from PySide6.QtCore import QCoreApplication
        import sockcomp
        app = QCoreApplication([])
        hooked, errors = [], []
        sockcomp.SetExceptionHook(hooked.append)
        srv = sockcomp.ServerSocket(); srv.Address = "127.0.0.1"; srv.Loaded()
        cli = sockcomp.ClientSocket(); cli.Address, cli.Port = "127.0.0.1", 9; cli.Loaded()
        cli.OnError.connect(lambda s, sock, e, code: errors.append(code.value))
        sockcomp._pump.current_pump()
        socket.getaddrinfo("127.0.0.1", 0)  # the resolver's modules, loaded while files open
        "x".encode("idna")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 40, hard))
        dummies = []
        while True:
            try:
                dummies.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                break
        try:
            srv.Open()
            listen = None
        except sockcomp.ESocketError as exc:
            listen = [str(exc), exc.ErrorCode, exc.API]
        cli.Open()
        for _ in range(50):
            app.processEvents()
            if hooked:
                break
        for fd in dummies:
            os.close(fd)
        print(json.dumps({"listen": listen, "errors": errors,
                          "hooked": [str(h) for h in hooked]}))
    '''))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=60, env={**__import__("os").environ,
                                          "QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    message, code, api = result["listen"]
    assert message == ("Windows socket error: Can't create new socket: Too many open files "
                       "(10024), on API 'socket'")
    assert (code, api) == (10024, "socket")
    assert result["errors"] == [10024]
    assert result["hooked"] == ["Asynchronous socket error 10024: Can't create new socket: "
                                "Too many open files, on API 'connect'"]


def test_thread_start_and_end_run_in_the_worker(qtbot, keep):
    class PerThread(ServerWinSocket):
        def ThreadStart(self, Thread: ServerClientThread) -> None:
            Thread.Data = f"resource of {threading.current_thread().name}"
            calls.append(("start", threading.current_thread() is Thread))
            super().ThreadStart(Thread)

        def ThreadEnd(self, Thread: ServerClientThread) -> None:
            calls.append(("end", threading.current_thread() is Thread, Thread.Data))
            super().ThreadEnd(Thread)

    class Srv(ServerSocket):
        SocketClass = PerThread

    calls: list[tuple[Any, ...]] = []
    srv = server(keep, qtbot, Srv, ServerType=stThreadBlocking)
    log = EventLog(srv)
    peer = keep(socket.create_connection(("127.0.0.1", srv.Socket.LocalPort), timeout=5))
    qtbot.waitUntil(lambda: log.count("OnClientConnect") == 1, timeout=WAIT)
    peer.close()
    srv.Close()
    thread = log.args("OnThreadStart")[1]
    assert calls == [("start", True), ("end", True, f"resource of {thread.name}")]
    names = log.names()
    assert names.index("OnThreadStart") < names.index("OnClientConnect")
    assert names[-1] == "OnThreadEnd"


@pytest.mark.parametrize("how", ["component Service", "Open Port", "Open Service",
                                 "Listen Port", "Listen Service", "LookupService"])
def test_a_port_beyond_65535_is_refused_not_wrapped(qtbot, keep, error_proc, how):
    cli, srv = keep(ClientSocket()), keep(ServerSocket())
    with pytest.raises(ESocketError, match="^Invalid port number '?70000'?: must be 0..65535$"):
        if how == "component Service":
            srv.Service = "70000"
        elif how == "Open Port":
            cli.Socket.Open("", "127.0.0.1", "", 70000, Block=False)
        elif how == "Open Service":
            cli.Socket.Open("", "127.0.0.1", "70000", 0, Block=False)
        elif how == "Listen Port":
            srv.Socket.Listen("", "127.0.0.1", "", 70000)
        elif how == "Listen Service":
            srv.Socket.Listen("", "127.0.0.1", "70000", 0)
        else:
            srv.Socket.LookupService("70000")
    assert error_proc == []  # an invalid argument is not a failed call: always raised
    assert cli.Socket.Phase.name == "CLOSED" and srv.Active is False
