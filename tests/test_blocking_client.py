"""ctBlocking ClientSocket and WinSocketStream on a blocking client.

Reference checklist B1–B3 and W1–W4 (reference/scktcomp.md §11) in the fixed form of
/work/api-contract-blocking.md: a blocking Open fires OnLookup → OnConnecting → OnConnect before it
returns; a failure fires OnError then OnDisconnect and raises; no OnRead/OnWrite ever; a
WinSocketStream Read that times out raises ESocketTimeout (not 0), b'' is end of stream.

A blocking client blocks the thread it runs in (here the main thread), so every peer is a plain
``socket`` server running in its own ``threading.Thread``.
"""
from __future__ import annotations

import hashlib
import io
import random
import socket
import threading
import time
from typing import Any, Callable, Optional

import pytest

from sockcomp import (
    ClientSocket, ClientWinSocket, ESocketError, ESocketTimeout, ServerSocket, Var,
    WinSocketStream, ctBlocking, ctNonBlocking, eeConnect, eeLookup, stNonBlocking,
)
from tests.util import EventLog, free_port, recv_exactly, recv_until_eof

WAIT = 5000
PEER_TIMEOUT = 10.0
BLOCKING_REQUIRED = "Socket must be in blocking mode"


def in_main() -> bool:
    return threading.current_thread() is threading.main_thread()


class Peer:
    """A plain-socket server on 127.0.0.1 in a thread: accepts one connection, runs ``script``.

    ``script(conn)``'s return value ends up in ``result``; an exception is re-raised by ``join``.
    """

    def __init__(self, script: Optional[Callable[[socket.socket], Any]] = None) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(PEER_TIMEOUT)
        self.port: int = self.listener.getsockname()[1]
        self.script = script
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._run, name="test-peer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            conn, _ = self.listener.accept()
            with conn:
                conn.settimeout(PEER_TIMEOUT)
                if self.script is not None:
                    self.result = self.script(conn)
        except BaseException as exc:  # reported by join()
            self.error = exc

    def join(self) -> Any:
        self.thread.join(PEER_TIMEOUT + 2)
        assert not self.thread.is_alive(), "peer thread did not finish"
        if self.error is not None:
            raise self.error
        return self.result

    def close(self) -> None:
        self.listener.close()




class Resources:
    def __init__(self, qtbot) -> None:
        self.qtbot = qtbot
        self.components: list[Any] = []
        self.peers: list[Peer] = []
        self.sockets: list[socket.socket] = []

    def client(self, client_type=ctBlocking, address: str = "127.0.0.1", port: int = 0,
               host: str = "") -> ClientSocket:
        cli = ClientSocket()
        self.components.append(cli)
        cli.ClientType = client_type
        cli.Address = address
        cli.Host = host
        cli.Port = port
        return cli

    def peer(self, script=None) -> Peer:
        p = Peer(script)
        self.peers.append(p)
        return p

    def close(self) -> None:
        for comp in reversed(self.components):
            comp.Close()
        for sock in self.sockets:
            sock.close()
        for p in self.peers:
            p.close()
            p.thread.join(PEER_TIMEOUT + 2)


@pytest.fixture
def res(qtbot):
    resources = Resources(qtbot)
    yield resources
    resources.close()


def state_snapshot(cli: ClientSocket):
    return lambda name, args: (in_main(), cli.Active, cli.Socket.Connected)


def hanging_listener() -> tuple[socket.socket, list[socket.socket]]:
    """A loopback listener whose accept queue is full: a further connect hangs (SYN dropped)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    return listener, fillers


# --- B1: Open ------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["address", "host"])
def test_open_fires_lookup_connecting_connect_before_returning(res, how):
    hold = threading.Event()
    peer = res.peer(lambda conn: hold.wait(PEER_TIMEOUT))
    if how == "address":
        cli = res.client(address="127.0.0.1", port=peer.port)
    else:
        cli = res.client(address="", host="localhost", port=peer.port)
    sock = cli.Socket
    log = EventLog(cli, snapshot=state_snapshot(cli))

    cli.Open()

    assert log.names() == ["OnLookup", "OnConnecting", "OnConnect"]
    for name, args in log.events:
        assert len(args) == 2 and args[0] is cli and args[1] is sock, name
    # every handler ran in the main thread; Active and Connected are True inside OnConnect
    assert log.snapshots[0][0] and log.snapshots[1][0] and log.snapshots[2][0]
    assert log.snapshots[2][1:] == (True, True)
    assert log.snapshots[0][1:] == (False, False)  # OnLookup: nothing connected yet
    assert cli.Active is True
    assert sock.Connected is True
    assert isinstance(sock, ClientWinSocket)
    assert sock.RemotePort == peer.port
    assert sock.RemoteAddress == "127.0.0.1"
    assert sock.SocketHandle >= 0

    cli.Close()  # local close: exactly one OnDisconnect, synchronous
    assert log.names() == ["OnLookup", "OnConnecting", "OnConnect", "OnDisconnect"]
    assert log.snapshots[3] == (True, False, True)  # Active already False, Connected still True
    assert cli.Active is False and sock.Connected is False and sock.SocketHandle == -1
    hold.set()
    peer.join()


def test_open_again_after_close_reconnects(res):
    peer1 = res.peer(recv_until_eof)
    peer2 = res.peer(recv_until_eof)
    cli = res.client(port=peer1.port)
    cli.Open()
    assert cli.Socket.SendText("first") == 5
    cli.Close()
    assert peer1.join() == b"first"
    cli.Port = peer2.port  # allowed again once closed
    cli.Open()
    assert cli.Active and cli.Socket.Connected
    assert cli.Socket.SendText("second") == 6
    cli.Close()
    assert peer2.join() == b"second"


# --- B2: refused, unknown host ------------------------------------------------------------------

def test_refused_fires_onerror_ondisconnect_then_raises_10061(res):
    port = free_port()
    cli = res.client(port=port)
    log = EventLog(cli, snapshot=state_snapshot(cli))

    with pytest.raises(ESocketError) as info:
        cli.Open()

    err = info.value
    assert err.ErrorCode == 10061
    assert err.API == "connect"
    assert "(10061), on API 'connect'" in str(err)
    assert str(err).startswith("Windows socket error: ")
    assert log.names() == ["OnLookup", "OnConnecting", "OnError", "OnDisconnect"]
    sender, sock, event, code = log.args("OnError")
    assert sender is cli and sock is cli.Socket
    assert event == eeConnect
    assert isinstance(code, Var) and code.value == 10061
    assert all(s[0] for s in log.snapshots)  # main thread
    assert cli.Active is False and cli.Socket.Connected is False
    assert cli.Socket.SocketHandle == -1


def test_refused_with_errorcode_zeroed_returns_normally(res):
    cli = res.client(port=free_port())
    log = EventLog(cli)
    cli.OnError.connect(lambda Sender, Socket, ErrorEvent, ErrorCode:
                        setattr(ErrorCode, "value", 0))

    cli.Open()  # must not raise

    assert log.names() == ["OnLookup", "OnConnecting", "OnError", "OnDisconnect"]
    assert log.args("OnError")[2] == eeConnect
    assert cli.Active is False and cli.Socket.Connected is False


def test_unknown_host_fires_lookup_error_and_raises_11001(res):
    cli = res.client(address="", host="no-such-host.invalid", port=80)
    log = EventLog(cli, snapshot=state_snapshot(cli))

    with pytest.raises(ESocketError) as info:
        cli.Open()

    assert info.value.ErrorCode == 11001
    assert log.names() == ["OnLookup", "OnError", "OnDisconnect"]
    sender, sock, event, code = log.args("OnError")
    assert sender is cli and sock is cli.Socket and event == eeLookup and code.value == 11001
    assert all(s[0] for s in log.snapshots)
    assert cli.Active is False and cli.Socket.Connected is False


# --- ConnectTimeout -----------------------------------------------------------------------------

def test_connect_timeout_blocking_raises_10060(res):
    listener, fillers = hanging_listener()
    try:
        cli = res.client(port=listener.getsockname()[1])
        assert cli.ConnectTimeout == 0
        cli.ConnectTimeout = 300
        assert cli.ConnectTimeout == 300
        log = EventLog(cli, snapshot=state_snapshot(cli))
        t0 = time.monotonic()
        with pytest.raises(ESocketError) as info:
            cli.Open()
        elapsed = time.monotonic() - t0
        assert info.value.ErrorCode == 10060
        assert info.value.API == "connect"
        assert log.names() == ["OnLookup", "OnConnecting", "OnError", "OnDisconnect"]
        assert log.args("OnError")[2] == eeConnect
        assert log.args("OnError")[3].value == 10060
        assert all(s[0] for s in log.snapshots)
        assert cli.Active is False and cli.Socket.Connected is False
        assert elapsed < 3.0  # upper-bound sanity: the timeout did cut the connect short
    finally:
        for s in fillers:
            s.close()
        listener.close()


@pytest.mark.parametrize("suppress", [False, True])
def test_connect_timeout_nonblocking_fires_onerror_10060_then_ondisconnect(qtbot, res, hook,
                                                                           suppress):
    listener, fillers = hanging_listener()
    try:
        cli = res.client(client_type=ctNonBlocking, port=listener.getsockname()[1])
        cli.ConnectTimeout = 300
        log = EventLog(cli, snapshot=state_snapshot(cli))
        if suppress:
            cli.OnError.connect(lambda Sender, Socket, ErrorEvent, ErrorCode:
                                setattr(ErrorCode, "value", 0))
        t0 = time.monotonic()
        cli.Open()  # non-blocking: returns at once
        assert log.names() == ["OnLookup", "OnConnecting"]
        qtbot.waitUntil(lambda: log.count("OnDisconnect") >= 1, timeout=WAIT)
        qtbot.wait(20)  # let any stray follow-up event show up
        assert time.monotonic() - t0 < 4.0
        assert log.names() == ["OnLookup", "OnConnecting", "OnError", "OnDisconnect"]
        sender, sock, event, code = log.args("OnError")
        assert sender is cli and sock is cli.Socket and event == eeConnect
        assert all(s[0] for s in log.snapshots)
        assert cli.Active is False and cli.Socket.Connected is False
        if suppress:
            assert hook == []
        else:
            assert code.value == 10060
            assert len(hook) == 1
            assert isinstance(hook[0], ESocketError)
            assert hook[0].ErrorCode == 10060 and hook[0].API == "connect"
    finally:
        for s in fillers:
            s.close()
        listener.close()


def test_connect_timeout_rejects_bad_values(qtbot):
    cli = ClientSocket()
    for bad in (-1, "100", 1.5):
        with pytest.raises(ESocketError):
            cli.ConnectTimeout = bad
    assert cli.ConnectTimeout == 0


# --- B3: no OnRead/OnWrite; blocking send/receive -----------------------------------------------

def test_no_onread_or_onwrite_in_blocking_mode(qtbot, res):
    def script(conn):
        conn.sendall(b"data for a blocking client")
        assert recv_exactly(conn, 3) == b"ack"

    peer = res.peer(script)
    cli = res.client(port=peer.port)
    log = EventLog(cli)
    cli.Open()
    qtbot.waitUntil(lambda: cli.Socket.ReceiveLength() == 26, timeout=WAIT)
    qtbot.wait(50)  # the event loop runs: still no OnRead / OnWrite may come
    assert cli.Socket.ReceiveText() == "data for a blocking client"
    assert cli.Socket.SendText("ack") == 3
    peer.join()
    qtbot.wait(50)
    assert log.names() == ["OnLookup", "OnConnecting", "OnConnect"]


def test_sendbuf_and_sendtext_send_everything_before_returning(res):
    payload = random.Random(7).randbytes(4 * 1024 * 1024 + 123)
    peer = res.peer(recv_until_eof)
    cli = res.client(port=peer.port)
    cli.Open()
    sock = cli.Socket

    assert sock.SendBuf(payload) == len(payload)
    assert sock.SendQueueLength == 0  # nothing left queued: it was all handed to the OS
    assert sock.SendBuf(bytearray(b"0123456789"), 4) == 4
    assert sock.SendText("héllo") == 6
    assert sock.SendQueueLength == 0
    sock.Shutdown(socket.SHUT_WR)
    got = peer.join()
    expected = payload + b"0123" + "héllo".encode()
    assert len(got) == len(expected)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(expected).hexdigest()


def test_receivebuf_blocks_until_data_and_returns_0_at_eof(res):
    def script(conn):
        assert recv_exactly(conn, 4) == b"ping"
        threading.Event().wait(0.15)  # a slow peer: the reply comes late
        conn.sendall(b"pong")
        assert recv_exactly(conn, 3) == b"bye"
        # closing the connection (end of script) is the EOF the client must see

    peer = res.peer(script)
    cli = res.client(port=peer.port)
    cli.Open()
    sock = cli.Socket
    assert sock.SendText("ping") == 4
    buf = bytearray(16)
    n = sock.ReceiveBuf(buf)  # blocks until at least one byte arrived
    assert n >= 1
    got = bytes(buf[:n])
    while len(got) < 4:
        n = sock.ReceiveBuf(buf)
        assert n >= 1
        got += bytes(buf[:n])
    assert got == b"pong"
    assert sock.SendText("bye") == 3
    assert sock.ReceiveBuf(buf) == 0  # end of stream
    assert sock.ReceiveBuf(buf) == 0
    peer.join()


def test_receivetext_never_blocks_and_receivelength_tells_what_is_there(qtbot, res):
    go = threading.Event()
    text = "héllo wörld ✓"
    raw = text.encode("utf-8")

    def script(conn):
        assert go.wait(PEER_TIMEOUT)
        conn.sendall(raw)
        assert recv_exactly(conn, 4) == b"done"

    peer = res.peer(script)
    cli = res.client(port=peer.port)
    cli.Open()
    sock = cli.Socket
    t0 = time.monotonic()
    assert sock.ReceiveText() == ""  # nothing there: returns at once
    assert sock.ReceiveLength() == 0
    assert time.monotonic() - t0 < 1.0
    go.set()
    qtbot.waitUntil(lambda: sock.ReceiveLength() == len(raw), timeout=WAIT)
    assert sock.ReceiveText() == text
    assert sock.ReceiveLength() == 0
    assert sock.ReceiveText() == ""
    sock.SendText("done")
    peer.join()


# --- WinSocketStream on a blocking client (W1–W4) -----------------------------------------------

def test_stream_waitfordata_false_after_timeout_true_with_data_and_at_eof(res):
    step = threading.Event()

    def script(conn):
        assert step.wait(PEER_TIMEOUT)
        conn.sendall(b"x")
        assert recv_exactly(conn, 4) == b"more"
        # then close: EOF

    peer = res.peer(script)
    cli = res.client(port=peer.port)
    cli.Open()
    stream = WinSocketStream(cli.Socket, 5000)
    assert stream.TimeOut == 5000
    assert isinstance(stream, io.RawIOBase)
    stream.tag = "app data"  # an application's own attribute, as on any io object
    assert stream.tag == "app data"

    t0 = time.monotonic()
    assert stream.WaitForData(150) is False
    assert time.monotonic() - t0 >= 0.12

    step.set()
    t0 = time.monotonic()
    assert stream.WaitForData(5000) is True
    assert time.monotonic() - t0 < 4.0
    assert stream.WaitForData(0) is True  # still pending: it was not consumed
    assert stream.Read(10) == b"x"
    assert stream.WaitForData(0) is False

    assert stream.Write(b"more") == 4
    assert stream.WaitForData(5000) is True  # end of stream counts as readable
    assert stream.Read(10) == b""
    peer.join()


def test_stream_read_timeout_raises_esockettimeout_then_stream_still_works(res):
    def script(conn):
        assert recv_exactly(conn, 2) == b"go"
        conn.sendall(b"late data")
        assert recv_until_eof(conn) == b""

    peer = res.peer(script)
    cli = res.client(port=peer.port)
    cli.Open()
    stream = WinSocketStream(cli.Socket, 150)

    t0 = time.monotonic()
    with pytest.raises(ESocketTimeout) as info:
        stream.Read(100)
    elapsed = time.monotonic() - t0
    err = info.value
    assert isinstance(err, ESocketError) and isinstance(err, TimeoutError)
    assert err.ErrorCode == 10060
    assert 0.12 <= elapsed < 3.0
    assert issubclass(ESocketTimeout, ESocketError) and issubclass(ESocketTimeout, TimeoutError)

    # a timeout is not end of stream, and nothing that arrives later is lost
    assert stream.Write(b"go") == 2
    stream.TimeOut = 5000
    got = b""
    while len(got) < 9:
        chunk = stream.Read(100)
        assert chunk, "b'' before the peer closed"
        got += chunk
    assert got == b"late data"
    cli.Close()
    peer.join()


def test_stream_read_returns_at_most_count_and_empty_bytes_at_eof(qtbot, res):
    def script(conn):
        conn.sendall(b"0123456789")
        assert recv_exactly(conn, 2) == b"ok"

    peer = res.peer(script)
    cli = res.client(port=peer.port)
    cli.Open()
    stream = WinSocketStream(cli.Socket, 5000)
    qtbot.waitUntil(lambda: cli.Socket.ReceiveLength() == 10, timeout=WAIT)
    first = stream.Read(4)
    assert first == b"0123"
    rest = b""
    while len(rest) < 6:
        chunk = stream.Read(100)
        assert 1 <= len(chunk) <= 100
        rest += chunk
    assert rest == b"456789"
    assert stream.Read(0) == b""
    assert stream.Write(b"ok") == 2
    assert stream.Read(100) == b""  # the peer closed: end of stream, not a timeout
    assert stream.Read(100) == b""
    peer.join()


def test_stream_write_returns_bytes_written_and_seek_is_always_0(res):
    payload = random.Random(3).randbytes(1024 * 1024)
    peer = res.peer(recv_until_eof)
    cli = res.client(port=peer.port)
    cli.Open()
    stream = WinSocketStream(cli.Socket, 5000)
    assert stream.Seek(0) == 0
    assert stream.Write(payload) == len(payload)
    assert stream.Write(memoryview(b"tail")) == 4
    assert stream.Seek(100, 0) == 0
    assert stream.Seek(-5, 2) == 0
    cli.Close()
    assert peer.join() == payload + b"tail"


def test_stream_readline_through_io_bufferedreader(res):
    def script(conn):
        conn.sendall(b"line one\nline t")
        assert recv_exactly(conn, 1) == b"+"
        conn.sendall(b"wo\nlast line without newline")
        # close: EOF

    peer = res.peer(script)
    cli = res.client(port=peer.port)
    cli.Open()
    stream = WinSocketStream(cli.Socket, 5000)
    reader = io.BufferedReader(stream)
    assert reader.readline() == b"line one\n"
    cli.Socket.SendText("+")
    assert reader.readline() == b"line two\n"
    assert reader.readline() == b"last line without newline"
    assert reader.readline() == b""
    peer.join()


def test_stream_refuses_a_nonblocking_client_socket(qtbot, res):
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        cli = res.client(client_type=ctNonBlocking, port=listener.getsockname()[1])
        with qtbot.waitSignal(cli.OnConnect, timeout=WAIT):
            cli.Open()
        assert cli.Socket.Connected
        with pytest.raises(ESocketError) as info:
            WinSocketStream(cli.Socket, 1000)
        assert BLOCKING_REQUIRED in str(info.value)
        cli.Close()  # before the listener goes (its un-accepted connection would be reset)
    finally:
        listener.close()


def test_stream_refuses_a_nonblocking_server_client_socket(qtbot, res):
    srv = ServerSocket()
    res.components.append(srv)
    srv.ServerType = stNonBlocking
    srv.Address = "127.0.0.1"
    srv.Port = 0
    srv.Open()
    outcome: list[Any] = []

    def on_connect(Sender, Socket):
        try:
            WinSocketStream(Socket, 1000)
            outcome.append("accepted")
        except ESocketError as exc:
            outcome.append(exc)

    srv.OnClientConnect.connect(on_connect)
    s = socket.create_connection(("127.0.0.1", srv.Socket.LocalPort), timeout=5)
    res.sockets.append(s)
    qtbot.waitUntil(lambda: len(outcome) == 1, timeout=WAIT)
    assert isinstance(outcome[0], ESocketError)
    assert BLOCKING_REQUIRED in str(outcome[0])


def test_stream_accepted_on_blocking_client_after_open(res):
    peer = res.peer(recv_until_eof)
    cli = res.client(port=peer.port)
    cli.Open()
    stream = WinSocketStream(cli.Socket, 1000)
    assert stream.Socket is cli.Socket
    assert stream.readable() and stream.writable()
    cli.Close()
    assert peer.join() == b""
