"""ClientSocket against peers sockcomp did not write.

Plain blocking ``socket`` servers in a ``threading.Thread`` (an echo server, a sender that
closes, the half-closing file server of seed 003, a server that resets the connection) and the
real ``socat`` and OpenBSD ``nc`` programs. The client side is asserted with its exact event
order; the peer side reports what it received. Peer threads use socket timeouts, never sleeps.
"""
from __future__ import annotations

import io
import os
import shutil
import socket
import struct
import subprocess
import threading
from typing import Any, Callable, Optional

import pytest

from sockcomp import ClientSocket, ESocketError, eeDisconnect
from tests.util import EventLog, free_port

WAIT = 5000
CONNECTED = ["OnLookup", "OnConnecting", "OnConnect", "OnWrite"]


# -- helpers -----------------------------------------------------------------------------------
class PeerThread(threading.Thread):
    """Runs ``serve(conn)`` for one connection accepted on its own 127.0.0.1 listener.

    ``port`` is known before the client opens; ``result`` is what ``serve`` returned;
    ``error`` any exception it raised (re-raised by :meth:`finish`).
    """

    def __init__(self, serve: Callable[[socket.socket], Any]) -> None:
        super().__init__(daemon=True)
        self._serve = serve
        self.listener = socket.socket()
        self.listener.settimeout(5)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self.done = False
        self.start()

    def run(self) -> None:
        try:
            conn, _ = self.listener.accept()
            with conn:
                conn.settimeout(5)
                self.result = self._serve(conn)
        except BaseException as exc:  # reported by finish()
            self.error = exc
        finally:
            self.listener.close()
            self.done = True

    def finish(self, qtbot) -> Any:
        qtbot.waitUntil(lambda: self.done, timeout=WAIT)
        self.join(5)
        if self.error is not None:
            raise self.error
        return self.result


def recv_to_eof(conn: socket.socket) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = conn.recv(1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def recv_exactly(conn: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            raise AssertionError(f"EOF after {len(data)} of {count} bytes")
        data += chunk
    return data


def reset(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.fixture
def make_client():
    made: list[ClientSocket] = []

    def make(port: int, **props: Any) -> ClientSocket:
        cli = ClientSocket()
        made.append(cli)
        cli.Address = "127.0.0.1"
        cli.Port = port
        for name, value in props.items():
            setattr(cli, name, value)
        return cli

    yield make
    for cli in made:
        cli.Close()


def assert_closed_state(cli: ClientSocket) -> None:
    assert cli.Active is False
    assert cli.Socket.Connected is False
    assert cli.Socket.SocketHandle == -1
    assert cli.Socket.LocalPort == -1
    assert cli.Socket.RemoteAddress == ""


def assert_reads_then(names: list[str], last: list[str]) -> None:
    """names == CONNECTED + one or more OnRead + last."""
    assert names[:4] == CONNECTED, names
    assert names[len(names) - len(last):] == last, names
    middle = names[4:len(names) - len(last)]
    assert middle and set(middle) == {"OnRead"}, names


# -- plain socket servers -----------------------------------------------------------------------
def test_echo_server(qtbot, make_client):
    def echo(conn: socket.socket) -> int:
        total = 0
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                return total
            conn.sendall(chunk)
            total += len(chunk)

    server = PeerThread(echo)
    cli = make_client(server.port)
    log = EventLog(cli)
    rounds = 50
    state = {"buffer": "", "lines": []}

    def send_next(sock) -> None:
        sock.SendText(f"message {len(state['lines'])} ünïcødé\n")

    def on_read(sender, sock) -> None:
        state["buffer"] += sock.ReceiveText()
        while "\n" in state["buffer"]:
            line, state["buffer"] = state["buffer"].split("\n", 1)
            state["lines"].append(line)
            if len(state["lines"]) < rounds:
                send_next(sock)

    cli.OnConnect.connect(lambda s, sock: send_next(sock))
    cli.OnRead.connect(on_read)
    cli.Open()
    qtbot.waitUntil(lambda: len(state["lines"]) == rounds, timeout=WAIT)
    assert state["lines"] == [f"message {i} ünïcødé" for i in range(rounds)]
    cli.Close()
    assert_reads_then(log.names(), ["OnDisconnect"])
    echoed = server.finish(qtbot)
    assert echoed == sum(len(f"message {i} ünïcødé\n".encode()) for i in range(rounds))
    assert_closed_state(cli)


def test_sender_that_closes(qtbot, make_client):
    payload = os.urandom(1 << 20)

    def send_and_close(conn: socket.socket) -> None:
        conn.sendall(payload)  # then `with conn` closes: FIN (nothing unread on this side)

    server = PeerThread(send_and_close)
    cli = make_client(server.port)
    log = EventLog(cli, snapshot=lambda name, args: (cli.Active, cli.Socket.Connected))
    chunks: list[bytes] = []
    at_disconnect: list[int] = []
    cli.OnRead.connect(lambda s, sock: chunks.append(sock.ReceiveBytes()))
    cli.OnDisconnect.connect(lambda s, sock: at_disconnect.append(sock.ReceiveLength()))
    cli.Open()
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1, timeout=WAIT)
    server.finish(qtbot)
    data = b"".join(chunks)
    assert len(data) == len(payload)
    assert data == payload  # every byte offered through OnRead before OnDisconnect
    assert at_disconnect == [0]
    assert_reads_then(log.names(), ["OnDisconnect"])
    assert log.snapshots[-1] == (False, True)
    qtbot.wait(50)  # a second, wrong OnDisconnect would show up here
    assert log.count("OnDisconnect") == 1
    assert_closed_state(cli)


@pytest.fixture
def sent_file(tmp_path):
    path = tmp_path / "TCPSrv.cpp"
    path.write_bytes(os.urandom(300_000 + 123))  # not a multiple of the 1024-byte chunks
    return path


def file_server(path) -> Callable[[socket.socket], bytes]:
    """Seed 003's server: send the file in 1024-byte chunks, shutdown(SD_SEND), read the
    client's answer, close."""

    def serve(conn: socket.socket) -> bytes:
        with open(path, "rb") as fp:
            while True:
                buf = fp.read(1024)
                conn.sendall(buf)
                if len(buf) < 1024:
                    break
        conn.shutdown(socket.SHUT_WR)
        return recv_to_eof(conn)

    return serve


def test_half_closing_file_server_seed_003(qtbot, make_client, sent_file):
    server = PeerThread(file_server(sent_file))
    cli = make_client(server.port)
    log = EventLog(cli)
    received = bytearray()
    sent: list[int] = []

    def on_read(sender, sock) -> None:
        received.extend(sock.ReceiveBytes())

    def on_disconnect(sender, sock) -> None:
        # the seed's client: recv() returned 0, "Received file data", send "Thank you"
        sent.append(sock.SendBuf(b"Thank you\x00", 10))

    cli.OnRead.connect(on_read)
    cli.OnDisconnect.connect(on_disconnect)
    cli.Open()
    answer = server.finish(qtbot)
    assert answer == b"Thank you\x00"
    assert sent == [10]
    assert bytes(received) == sent_file.read_bytes()
    assert_reads_then(log.names(), ["OnDisconnect"])
    assert_closed_state(cli)


def test_half_closing_file_server_allow_half_close(qtbot, make_client, sent_file):
    server = PeerThread(file_server(sent_file))
    cli = make_client(server.port, AllowHalfClose=True)
    log = EventLog(cli)
    received = bytearray()
    cli.OnRead.connect(lambda s, sock: received.extend(sock.ReceiveBytes()))
    cli.Open()
    qtbot.waitUntil(lambda: log.count("OnHalfClose") == 1, timeout=WAIT)
    assert bytes(received) == sent_file.read_bytes()
    assert cli.Socket.Connected is True
    assert server.done is False  # still waiting for the answer
    # answer later, outside the handler, in two pieces; then close
    assert cli.Socket.SendText("Thank ") == 6
    assert cli.Socket.SendBuf(b"you\x00") == 4
    cli.Close()
    assert_reads_then(log.names(), ["OnHalfClose", "OnDisconnect"])
    assert server.finish(qtbot) == b"Thank you\x00"
    assert_closed_state(cli)


def test_server_resets(qtbot, make_client, hook):
    def serve(conn: socket.socket) -> bytes:
        go = recv_exactly(conn, 2)
        reset(conn)  # `with conn` closes: RST
        return go

    server = PeerThread(serve)
    cli = make_client(server.port)
    log = EventLog(cli)
    errors: list[tuple[Any, int]] = []
    cli.OnError.connect(lambda s, sock, event, code: errors.append((event, code.value)))
    cli.OnWrite.connect(lambda s, sock: sock.SendText("go"))
    cli.Open()
    assert server.finish(qtbot) == b"go"
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1 and len(hook) == 1, timeout=WAIT)
    assert log.names() == CONNECTED + ["OnError", "OnDisconnect"]
    assert errors == [(eeDisconnect, 10054)]
    assert isinstance(hook[0], ESocketError) and hook[0].ErrorCode == 10054
    assert str(hook[0]).startswith("Asynchronous socket error 10054: ")
    qtbot.wait(50)  # a second, wrong OnDisconnect would show up here
    assert log.count("OnDisconnect") == 1
    assert_closed_state(cli)


def test_server_resets_after_data(qtbot, make_client, hook):
    def serve(conn: socket.socket) -> bytes:
        conn.sendall(b"data")
        ack = recv_exactly(conn, 3)  # the client has read the data
        reset(conn)
        return ack

    server = PeerThread(serve)
    cli = make_client(server.port)
    log = EventLog(cli)
    got: list[str] = []

    def on_read(sender, sock) -> None:
        got.append(sock.ReceiveText())
        if "".join(got) == "data":
            sock.SendText("ack")

    cli.OnRead.connect(on_read)
    cli.Open()
    assert server.finish(qtbot) == b"ack"
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1 and len(hook) == 1, timeout=WAIT)
    assert "".join(got) == "data"
    assert_reads_then(log.names(), ["OnError", "OnDisconnect"])
    assert [e.ErrorCode for e in hook] == [10054]
    assert_closed_state(cli)


# -- socat and nc -----------------------------------------------------------------------------
def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        reason = f"{tool} is not installed (CI installs it: apt-get install socat netcat-openbsd)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


class Program:
    """A peer program whose stderr is read in a thread until it says it is listening."""

    def __init__(self, argv: list[str], ready_text: str, stdin: Any = subprocess.DEVNULL):
        self.proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.ready = False
        self.stderr: list[str] = []
        self._ready_text = ready_text
        self._stdout: list[bytes] = []
        self._readers = [threading.Thread(target=self._read_stderr, daemon=True),
                         threading.Thread(target=self._read_stdout, daemon=True)]
        for t in self._readers:
            t.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace")
            self.stderr.append(line)
            if self._ready_text in line:
                self.ready = True

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        while True:
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            if not chunk:
                break
            self._stdout.append(chunk)

    @property
    def stdout(self) -> bytes:
        return b"".join(self._stdout)

    def wait_ready(self, qtbot) -> None:
        qtbot.waitUntil(lambda: self.ready or self.proc.poll() is not None, timeout=WAIT)
        assert self.ready, "".join(self.stderr)

    def wait_exit(self, qtbot) -> int:
        qtbot.waitUntil(lambda: self.proc.poll() is not None, timeout=WAIT)
        for t in self._readers:
            t.join(5)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def programs():
    started: list[Program] = []

    def start(*args: Any, **kwargs: Any) -> Program:
        prog = Program(*args, **kwargs)
        started.append(prog)
        return prog

    yield start
    for prog in started:
        prog.kill()


def test_socat_echo(qtbot, make_client, programs):
    socat = need("socat")
    port = free_port()
    peer = programs([socat, "-d", "-d", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr", "PIPE"],
                    "listening on")
    peer.wait_ready(qtbot)
    cli = make_client(port)
    log = EventLog(cli)
    received: list[str] = []
    cli.OnConnect.connect(lambda s, sock: sock.SendText("hello socat ✓"))
    cli.OnRead.connect(lambda s, sock: received.append(sock.ReceiveText()))
    cli.Open()
    qtbot.waitUntil(lambda: "".join(received) == "hello socat ✓", timeout=WAIT)
    cli.Close()
    assert_reads_then(log.names(), ["OnDisconnect"])
    assert peer.wait_exit(qtbot) == 0  # socat saw a clean EOF
    assert_closed_state(cli)


def test_socat_sends_file_and_closes(qtbot, make_client, programs, tmp_path):
    socat = need("socat")
    payload = os.urandom(500_000)
    path = tmp_path / "payload.bin"
    path.write_bytes(payload)
    port = free_port()
    peer = programs([socat, "-d", "-d", "-u", f"OPEN:{path}",
                     f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr"], "listening on")
    peer.wait_ready(qtbot)
    cli = make_client(port)
    log = EventLog(cli)
    received = bytearray()
    cli.OnRead.connect(lambda s, sock: received.extend(sock.ReceiveBytes()))
    cli.Open()
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1, timeout=WAIT)
    assert bytes(received) == payload
    assert_reads_then(log.names(), ["OnDisconnect"])
    assert peer.wait_exit(qtbot) == 0
    assert_closed_state(cli)


def test_nc_half_close_and_reply(qtbot, make_client, programs):
    nc = need("nc")
    port = free_port()
    # OpenBSD nc: -N shuts the connection down (FIN) when its stdin ends.
    peer = programs([nc, "-v", "-N", "-l", "127.0.0.1", str(port)], "Listening",
                    stdin=subprocess.PIPE)
    peer.wait_ready(qtbot)
    cli = make_client(port)
    log = EventLog(cli)
    received: list[str] = []
    cli.OnRead.connect(lambda s, sock: received.append(sock.ReceiveText()))
    cli.OnConnect.connect(lambda s, sock: sock.SendText("hello nc\n"))
    cli.OnDisconnect.connect(lambda s, sock: sock.SendText("bye nc\n"))
    cli.Open()
    qtbot.waitUntil(lambda: log.count("OnWrite") == 1, timeout=WAIT)
    qtbot.waitUntil(lambda: b"hello nc\n" in peer.stdout, timeout=WAIT)
    assert peer.proc.stdin is not None
    peer.proc.stdin.write("from nc ✓\n".encode())
    peer.proc.stdin.close()  # nc sends FIN after this line
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1, timeout=WAIT)
    assert "".join(received) == "from nc ✓\n"
    assert_reads_then(log.names(), ["OnDisconnect"])
    assert peer.wait_exit(qtbot) == 0
    assert peer.stdout == b"hello nc\nbye nc\n"  # the reply from OnDisconnect arrived
    assert_closed_state(cli)


def test_nc_sink_stream_then_drop(qtbot, make_client, programs):
    nc = need("nc")
    port = free_port()
    peer = programs([nc, "-v", "-d", "-l", "127.0.0.1", str(port)], "Listening")
    peer.wait_ready(qtbot)
    cli = make_client(port)
    log = EventLog(cli)
    cli.Open()
    qtbot.waitUntil(lambda: log.count("OnWrite") == 1, timeout=WAIT)
    payload = os.urandom(1 << 20)
    assert cli.Socket.SendStreamThenDrop(io.BytesIO(payload)) is True
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1, timeout=WAIT)
    assert log.names() == CONNECTED + ["OnDisconnect"]
    assert peer.wait_exit(qtbot) == 0
    assert peer.stdout == payload
    assert_closed_state(cli)
