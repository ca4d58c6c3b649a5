"""Dispatch methods: the VCL's overridable event methods, beside the signals.

Every event a component delivers passes through one method before it becomes a signal:
``ClientSocket.Event`` / ``Error`` / ``LineReceived`` / ``PacketReceived`` and
``ServerSocket.ClientConnect`` … ``ClientPacketReceived``. By default each fires its signal. A
subclass that overrides one takes that event as a plain method call (no signal unless it calls
``super()``), and the component's own bookkeeping (``Active``, ``Connections``, AutoReconnect,
the thread-mode synchronization) is unchanged. An exception from an override goes to the
application exception hook and leaves the component consistent.
"""
from __future__ import annotations

import select
import socket
import threading
from typing import Any

import pytest

from sockcomp import (
    ClientSocket, ESocketError, ServerSocket, eeConnect, eeDisconnect, fmLine, fmPacket,
    seConnect, seConnecting, seDisconnect, seHalfClose, seLookup, seRead, seWrite,
    stThreadBlocking,
)
from tests.test_thread_server import EchoThread, Job, echo_once, spy_synchronizer
from tests.util import EventLog, free_port

WAIT = 5000
CLIENT_LIFE = ["OnGetSocket", "OnAccept", "OnClientConnect", "OnClientWrite"]


def in_main() -> bool:
    return threading.current_thread() is threading.main_thread()


class Cleanup:
    def __init__(self) -> None:
        self.items: list[Any] = []

    def __call__(self, item: Any) -> Any:
        self.items.append(item)
        return item

    def close(self) -> None:
        for item in reversed(self.items):
            item.Close() if hasattr(item, "Close") else item.close()


@pytest.fixture
def keep(qtbot):
    cleanup = Cleanup()
    yield cleanup
    cleanup.close()


def listen(server: ServerSocket, qtbot) -> int:
    server.Address, server.Port = "127.0.0.1", 0
    qtbot.wait(1)  # end the creation turn
    server.Open()
    return server.Socket.LocalPort


def peer(keep: Cleanup, port: int) -> socket.socket:
    sock = keep(socket.create_connection(("127.0.0.1", port), timeout=5))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def exchange(qtbot, conn: socket.socket, message: bytes) -> bytes:
    """Send ``message`` and collect as many bytes back while the Qt loop runs."""
    conn.sendall(message)
    got = bytearray()

    def arrived() -> bool:
        if select.select([conn], [], [], 0)[0]:
            got.extend(conn.recv(65536))
        return len(got) >= len(message)

    qtbot.waitUntil(arrived, timeout=WAIT)
    return bytes(got)


# ---------------------------------------------------------------------------- server
class EchoServer(ServerSocket):
    """Echoes in an overridden ClientRead; the signal OnClientRead never fires."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[Any] = []

    def ClientRead(self, Socket):
        self.reads.append(Socket)
        Socket.SendBuf(Socket.ReceiveBytes())


def test_overridden_clientread_replaces_the_signal_and_other_events_still_fire(qtbot, keep):
    srv = keep(EchoServer())
    log = EventLog(srv)
    port = listen(srv, qtbot)
    conn = peer(keep, port)
    qtbot.waitUntil(lambda: log.count("OnClientWrite") == 1, timeout=WAIT)
    for message in (b"one", b"two"):
        assert exchange(qtbot, conn, message) == message
    client = srv.Socket.Connections[0]
    assert srv.reads and all(s is client for s in srv.reads)
    conn.close()
    qtbot.waitUntil(lambda: srv.Socket.ActiveConnections == 0, timeout=WAIT)
    assert log.names() == ["OnListen"] + CLIENT_LIFE + ["OnClientDisconnect"]
    assert log.args("OnClientDisconnect") == (srv.Socket, client)


class RecordingServer(ServerSocket):
    """Every client dispatch method records its call, then fires the signal via super()."""

    def __init__(self, order: list[str]) -> None:
        super().__init__()
        self.order = order

    def ClientConnect(self, Socket):
        self.order.append("ClientConnect")
        super().ClientConnect(Socket)

    def ClientRead(self, Socket):
        self.order.append("ClientRead")
        super().ClientRead(Socket)

    def ClientWrite(self, Socket):
        self.order.append("ClientWrite")
        super().ClientWrite(Socket)

    def ClientHalfClose(self, Socket):
        self.order.append("ClientHalfClose")
        super().ClientHalfClose(Socket)

    def ClientDisconnect(self, Socket):
        self.order.append("ClientDisconnect")
        super().ClientDisconnect(Socket)


def test_each_server_dispatch_method_comes_just_before_its_signal(qtbot, keep):
    order: list[str] = []
    srv = keep(RecordingServer(order))
    srv.AllowHalfClose = True
    for name in ("OnClientConnect", "OnClientRead", "OnClientWrite", "OnClientHalfClose",
                 "OnClientDisconnect"):
        getattr(srv, name).connect(lambda *args, name=name: order.append(name))
    srv.OnClientRead.connect(lambda Sender, Socket: Socket.SendText(Socket.ReceiveText()))
    srv.OnClientHalfClose.connect(lambda Sender, Socket: Socket.Close())
    port = listen(srv, qtbot)
    conn = peer(keep, port)
    assert exchange(qtbot, conn, b"x") == b"x"
    conn.shutdown(socket.SHUT_WR)
    qtbot.waitUntil(lambda: srv.Socket.ActiveConnections == 0, timeout=WAIT)
    assert order == ["ClientConnect", "OnClientConnect", "ClientWrite", "OnClientWrite",
                     "ClientRead", "OnClientRead", "ClientHalfClose", "OnClientHalfClose",
                     "ClientDisconnect", "OnClientDisconnect"]


class SilentServer(ServerSocket):
    def __init__(self) -> None:
        super().__init__()
        self.errors: list[tuple[Any, int]] = []

    def ClientErrorEvent(self, Socket, ErrorEvent, ErrorCode):
        self.errors.append((ErrorEvent, ErrorCode.value))
        ErrorCode.value = 0


def test_overridden_clienterrorevent_suppresses_a_reset_like_a_handler(qtbot, keep, hook):
    srv = keep(SilentServer())
    log = EventLog(srv)
    port = listen(srv, qtbot)
    conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    qtbot.waitUntil(lambda: srv.Socket.ActiveConnections == 1, timeout=WAIT)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    conn.close()  # RST
    qtbot.waitUntil(lambda: srv.Socket.ActiveConnections == 0, timeout=WAIT)
    assert srv.errors == [(eeDisconnect, 10054)]
    assert "OnClientError" not in log.names() and log.count("OnClientDisconnect") == 1
    assert hook == []


class FailingServer(ServerSocket):
    """ClientRead and ClientDisconnect raise after doing their work."""

    def ClientRead(self, Socket):
        Socket.SendBuf(Socket.ReceiveBytes())
        raise ValueError("read handler failed")

    def ClientDisconnect(self, Socket):
        raise KeyError("disconnect handler failed")


def test_exceptions_from_overrides_go_to_the_hook_and_the_server_stays_consistent(
        qtbot, keep, hook):
    srv = keep(FailingServer())
    port = listen(srv, qtbot)
    conn = peer(keep, port)
    for message in (b"first", b"second"):  # the connection survives the raising handler
        assert exchange(qtbot, conn, message) == message
    qtbot.waitUntil(lambda: len(hook) == 2, timeout=WAIT)
    conn.close()
    qtbot.waitUntil(lambda: len(hook) == 3, timeout=WAIT)
    assert [type(e) for e in hook] == [ValueError, ValueError, KeyError]
    assert srv.Socket.ActiveConnections == 0 and srv.Socket.Connections == []
    conn2 = peer(keep, port)  # and the server still serves
    assert exchange(qtbot, conn2, b"third") == b"third"
    srv.Close()  # disconnects conn2: the raising ClientDisconnect once more
    assert [type(e) for e in hook[3:]] == [ValueError, KeyError]
    assert srv.Socket.Connections == [] and not srv.Active


class LineServer(ServerSocket):
    def ClientLineReceived(self, Socket, Line):
        Socket.SendLine(Line.upper())


class PacketServer(ServerSocket):
    def ClientPacketReceived(self, Socket, Packet):
        Socket.SendPacket(Packet[::-1])


class LineClient(ClientSocket):
    def __init__(self) -> None:
        super().__init__()
        self.got: list[Any] = []

    def LineReceived(self, Socket, Line):
        self.got.append(Line)


class PacketClient(LineClient):
    def PacketReceived(self, Socket, Packet):
        self.got.append(Packet)


@pytest.mark.parametrize("mode", [fmLine, fmPacket])
def test_frame_dispatch_methods_on_both_components(qtbot, keep, mode):
    srv = keep(LineServer() if mode == fmLine else PacketServer())
    srv.Framing = mode
    srv_log = EventLog(srv)
    port = listen(srv, qtbot)
    cli = keep(LineClient() if mode == fmLine else PacketClient())
    cli.Framing = mode
    cli_log = EventLog(cli)
    cli.Address, cli.Port = "127.0.0.1", port
    cli.Open()
    qtbot.waitUntil(lambda: cli.Socket.Connected, timeout=WAIT)
    if mode == fmLine:
        for line in ("hello", "wörld"):
            cli.Socket.SendLine(line)
        expected: list[Any] = ["HELLO", "WÖRLD"]
    else:
        for packet in (b"abc", b"", bytes(range(256))):
            cli.Socket.SendPacket(packet)
        expected = [b"cba", b"", bytes(range(256))[::-1]]
    qtbot.waitUntil(lambda: len(cli.got) == len(expected), timeout=WAIT)
    assert cli.got == expected
    received = {"OnLineReceived", "OnPacketReceived"}
    assert not received & set(cli_log.names())
    assert not {"OnClient" + name[2:] for name in received} & set(srv_log.names())


class RaisingLineServer(ServerSocket):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def ClientLineReceived(self, Socket, Line):
        self.lines.append(Line)
        raise ValueError(Line)


def test_a_raising_frame_override_loses_none_of_the_lines_of_that_read(qtbot, keep, hook):
    srv = keep(RaisingLineServer())
    srv.Framing = fmLine
    port = listen(srv, qtbot)
    conn = peer(keep, port)
    conn.sendall(b"a\nb\nc\n")  # one segment, one read: three lines
    qtbot.waitUntil(lambda: len(srv.lines) == 3, timeout=WAIT)
    assert srv.lines == ["a", "b", "c"]
    assert [(type(e), e.args) for e in hook] == [(ValueError, (line,)) for line in "abc"]
    assert srv.Socket.ActiveConnections == 1


def test_a_dispatch_method_replaced_on_an_instance_is_honoured(qtbot, keep):
    srv = keep(ServerSocket())
    log = EventLog(srv)
    seen: list[Any] = []
    srv.ClientConnect = seen.append  # after construction, on this instance only
    srv.ClientRead = lambda Socket: Socket.SendBuf(Socket.ReceiveBytes())
    port = listen(srv, qtbot)
    conn = peer(keep, port)
    assert exchange(qtbot, conn, b"echo") == b"echo"
    assert seen == [srv.Socket.Connections[0]]
    assert "OnClientConnect" not in log.names() and "OnClientRead" not in log.names()
    assert log.names() == ["OnListen", "OnGetSocket", "OnAccept", "OnClientWrite"]


# ---------------------------------------------------------------------------- client
class RecordingClient(ClientSocket):
    """Event records (SocketEvent, Active) and fires the signal for everything but seRead."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[int, bool]] = []

    def Event(self, Socket, SocketEvent):
        self.events.append((SocketEvent, self.Active))
        if SocketEvent == seRead:
            Socket.ReceiveText()
            return
        super().Event(Socket, SocketEvent)


def test_overridden_event_sees_every_client_event_with_state_already_set(qtbot, keep):
    listener = keep(socket.create_server(("127.0.0.1", 0)))
    cli = keep(RecordingClient())
    log = EventLog(cli)
    cli.Address, cli.Port = "127.0.0.1", listener.getsockname()[1]
    cli.Open()
    qtbot.waitUntil(lambda: cli.Socket.Connected, timeout=WAIT)
    conn, _ = listener.accept()
    keep(conn)
    conn.sendall(b"data")
    qtbot.waitUntil(lambda: (seRead, True) in cli.events, timeout=WAIT)
    conn.close()
    qtbot.waitUntil(lambda: not cli.Active, timeout=WAIT)
    assert cli.events == [(seLookup, False), (seConnecting, False), (seConnect, True),
                          (seWrite, True), (seRead, True), (seDisconnect, False)]
    assert log.names() == ["OnLookup", "OnConnecting", "OnConnect", "OnWrite", "OnDisconnect"]


class QuietClient(ClientSocket):
    """Error suppresses every error and fires no signal; Event fires none either."""

    def __init__(self, suppress: bool) -> None:
        super().__init__()
        self.suppress = suppress
        self.errors: list[tuple[Any, int]] = []
        self.events: list[int] = []

    def Event(self, Socket, SocketEvent):
        self.events.append(SocketEvent)

    def Error(self, Socket, ErrorEvent, ErrorCode):
        self.errors.append((ErrorEvent, ErrorCode.value))
        if self.suppress:
            ErrorCode.value = 0


@pytest.mark.parametrize("suppress", [True, False])
def test_overridden_error_decides_like_a_handler(qtbot, keep, hook, suppress):
    cli = keep(QuietClient(suppress))
    log = EventLog(cli)
    cli.Address, cli.Port = "127.0.0.1", free_port()
    cli.Open()
    qtbot.waitUntil(lambda: seDisconnect in cli.events, timeout=WAIT)
    assert cli.errors == [(eeConnect, 10061)]
    assert cli.events == [seLookup, seConnecting, seDisconnect]
    assert log.names() == []
    if suppress:
        assert hook == []
    else:
        qtbot.waitUntil(lambda: len(hook) == 1, timeout=WAIT)
        assert isinstance(hook[0], ESocketError) and hook[0].ErrorCode == 10061


class RaisingErrorClient(ClientSocket):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[int] = []

    def Event(self, Socket, SocketEvent):
        self.events.append(SocketEvent)

    def Error(self, Socket, ErrorEvent, ErrorCode):
        raise RuntimeError("error handler failed")


def test_a_raising_error_override_leaves_the_error_unsuppressed(qtbot, keep, hook):
    """The connection still ends once; the hook gets the override's exception, then the
    ESocketError that the untouched ErrorCode asks for."""
    cli = keep(RaisingErrorClient())
    cli.Address, cli.Port = "127.0.0.1", free_port()
    cli.Open()
    qtbot.waitUntil(lambda: len(hook) == 2, timeout=WAIT)
    assert cli.events == [seLookup, seConnecting, seDisconnect]
    assert isinstance(hook[0], RuntimeError)
    assert isinstance(hook[1], ESocketError) and hook[1].ErrorCode == 10061
    assert not cli.Active


class ReconnectingClient(ClientSocket):
    """Takes every event itself (no super): AutoReconnect must not depend on the signals."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[int] = []

    def Event(self, Socket, SocketEvent):
        self.events.append(SocketEvent)
        if SocketEvent in (seConnect, seDisconnect):
            raise RuntimeError(f"handler of event {int(SocketEvent)} failed")

    def Error(self, Socket, ErrorEvent, ErrorCode):
        ErrorCode.value = 0


def test_autoreconnect_and_active_survive_an_override_that_raises(qtbot, keep, hook):
    listener = keep(socket.create_server(("127.0.0.1", 0)))
    cli = keep(ReconnectingClient())
    cli.Address, cli.Port = "127.0.0.1", listener.getsockname()[1]
    cli.AutoReconnect, cli.ReconnectInterval = True, 10
    cli.Open()
    qtbot.waitUntil(lambda: cli.Active, timeout=WAIT)
    conn, _ = listener.accept()
    conn.close()
    qtbot.waitUntil(lambda: cli.events.count(seConnect) == 2, timeout=WAIT)
    assert cli.Active and cli.ReconnectAttempt == 0
    keep(listener.accept()[0])
    cli.Close()
    assert [e.args[0] for e in hook] == [
        f"handler of event {int(event)} failed"
        for event in (seConnect, seDisconnect, seConnect, seDisconnect)]
    assert cli.events[:5] == [seLookup, seConnecting, seConnect, seWrite, seDisconnect]
    assert not cli.Active and not cli.Reconnecting


# ---------------------------------------------------------------------------- thread mode
class ThreadModeServer(ServerSocket):
    """stThreadBlocking with echo threads, handling its client events only as overrides."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, bool]] = []
        self.ServerType = stThreadBlocking
        self.OnGetThread.connect(
            lambda Sender, ClientSocket, SocketThread:
            setattr(SocketThread, "value", EchoThread(False, ClientSocket)))

    def ClientConnect(self, Socket):
        self.seen.append((seConnect, in_main()))

    def ClientWrite(self, Socket):
        self.seen.append((seWrite, in_main()))

    def ClientDisconnect(self, Socket):
        self.seen.append((seDisconnect, in_main()))


def test_thread_mode_overrides_count_as_handlers_and_run_in_the_main_thread(qtbot, keep, hook):
    """No signal of these events has a receiver, but the overrides must still be called
    (synchronized into the component's thread), on every connection."""
    srv = keep(ThreadModeServer())
    port = listen(srv, qtbot)
    for connection in (1, 2):
        assert Job(echo_once, port).wait(qtbot) == b"ping"
        qtbot.waitUntil(lambda: len(srv.seen) == 3 * connection, timeout=WAIT)
    assert srv.seen == [(seConnect, True), (seWrite, True), (seDisconnect, True)] * 2
    assert hook == []


def test_dispatch_methods_are_the_signals_by_default(qtbot, keep):
    """A plain component routes every event through its dispatch methods to the signals, with
    the VCL's senders (a server's client events come from ``srv.Socket``)."""
    srv = keep(ServerSocket())
    got: list[tuple[str, Any]] = []
    srv.OnClientRead.connect(lambda Sender, Socket: got.append(("read", Sender)))
    srv.OnClientHalfClose.connect(lambda Sender, Socket: got.append(("half", Sender)))
    srv.ClientRead(srv.Socket)
    srv.ClientHalfClose(srv.Socket)
    cli = keep(ClientSocket())
    cli.OnWrite.connect(lambda Sender, Socket: got.append(("write", Sender)))
    cli.OnHalfClose.connect(lambda Sender, Socket: got.append(("cli-half", Sender)))
    cli.Event(cli.Socket, seWrite)
    cli.Event(cli.Socket, seHalfClose)
    assert got == [("read", srv.Socket), ("half", srv.Socket), ("write", cli), ("cli-half", cli)]


class SyncReadServer(ServerSocket):
    """stThreadBlocking with the default ClientExecute: ClientRead overridden, no signals."""

    def __init__(self) -> None:
        super().__init__()
        self.ServerType = stThreadBlocking
        self.threads: list[bool] = []

    def ClientRead(self, Socket):
        self.threads.append(in_main())
        Socket.SendText(Socket.ReceiveText().upper())


def test_thread_mode_default_thread_delivers_reads_to_an_overridden_clientread(qtbot, keep,
                                                                               hook):
    srv = keep(SyncReadServer())
    port = listen(srv, qtbot)

    def upper(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"ping")
            got = b""
            while len(got) < 4:
                chunk = conn.recv(4 - len(got))
                if not chunk:
                    break
                got += chunk
            return got

    assert Job(upper, port).wait(qtbot) == b"PING"
    assert srv.threads and all(srv.threads)
    assert hook == []


class DisconnectOnlyServer(ServerSocket):
    """Thread mode, overriding ClientDisconnect only: connect and write stay unsynchronized."""

    def __init__(self) -> None:
        super().__init__()
        self.ServerType = stThreadBlocking
        self.gone: list[bool] = []
        self.OnGetThread.connect(
            lambda Sender, ClientSocket, SocketThread:
            setattr(SocketThread, "value", EchoThread(False, ClientSocket)))

    def ClientDisconnect(self, Socket):
        self.gone.append(in_main())


def test_thread_mode_synchronizes_only_the_overridden_events(qtbot, keep, hook):
    srv = keep(DisconnectOnlyServer())
    port = listen(srv, qtbot)
    calls = spy_synchronizer(srv)
    for connection in (1, 2):
        assert Job(echo_once, port).wait(qtbot) == b"ping"
        qtbot.waitUntil(lambda: len(srv.gone) == connection, timeout=WAIT)
    assert srv.gone == [True, True]
    assert calls == ["_client_event", "_client_event"]  # the two seDisconnects, nothing else
    assert hook == []
