"""TLS: sockcomp with itself, with Python's ssl on plain sockets, and with openssl s_server."""
from __future__ import annotations

import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import threading

import pytest
import trustme

from sockcomp import (
    SD_SEND, ClientSocket, ESocketError, ServerSocket, ctBlocking, eeConnect, fmLine,
    stThreadBlocking,
)
from sockcomp.errors import TLS_CERTIFICATE_INVALID, TLS_HANDSHAKE_FAILED
from tests.util import EventLog, SendInterleaver


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A throw-away CA and a server certificate for localhost / 127.0.0.1 / ::1."""
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1", "::1")
    folder = tmp_path_factory.mktemp("certs")
    paths = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "key.pem"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    return {name: str(path) for name, path in paths.items()} | {"trustme": (ca, cert)}


def tls_server(certs, **props) -> ServerSocket:
    srv = ServerSocket()
    srv.Address, srv.Port, srv.UseTLS = "127.0.0.1", 0, True
    srv.TLSCertFile, srv.TLSKeyFile = certs["cert"], certs["key"]
    for name, value in props.items():
        setattr(srv, name, value)
    return srv


def tls_client(certs, port: int, **props) -> ClientSocket:
    cli = ClientSocket()
    cli.Host, cli.Port, cli.UseTLS, cli.TLSCAFile = "localhost", port, True, certs["ca"]
    for name, value in props.items():
        setattr(cli, name, value)
    return cli


def test_events_are_those_of_plain_tcp_after_the_handshake(qtbot, certs) -> None:
    srv = tls_server(certs)
    srv.OnClientRead.connect(lambda s, sock: sock.SendText(sock.ReceiveText().upper()))
    slog = EventLog(srv)
    srv.Open()
    cli = tls_client(certs, srv.Socket.LocalPort)
    clog = EventLog(cli, snapshot=lambda name, args: cli.Socket.TLSActive)
    got: list[str] = []
    cli.OnConnect.connect(lambda s, sock: sock.SendText("encrypted hello"))
    cli.OnRead.connect(lambda s, sock: got.append(sock.ReceiveText()))
    cli.Open()
    qtbot.waitUntil(lambda: "".join(got) == "ENCRYPTED HELLO", timeout=5000)
    assert clog.names()[:4] == ["OnLookup", "OnConnecting", "OnConnect", "OnWrite"]
    assert clog.snapshots[2] is True  # OnConnect: already encrypted
    assert slog.names()[:5] == ["OnListen", "OnGetSocket", "OnAccept", "OnClientConnect",
                                "OnClientWrite"]
    assert srv.Socket.Connections[0].TLSActive
    cli.Close()
    qtbot.waitUntil(lambda: slog.count("OnClientDisconnect") == 1, timeout=5000)
    srv.Close()


def test_bulk_transfer_and_half_close_over_tls(qtbot, certs) -> None:
    srv = tls_server(certs)
    received = bytearray()
    srv.OnClientRead.connect(lambda s, sock: received.extend(sock.ReceiveBytes()))

    def reply(sender, sock) -> None:  # the peer finished sending: answer, then close
        sock.SendText(hashlib.sha256(received).hexdigest())

    srv.OnClientDisconnect.connect(reply)
    srv.Open()
    cli = tls_client(certs, srv.Socket.LocalPort)
    answer: list[str] = []
    cli.OnRead.connect(lambda s, sock: answer.append(sock.ReceiveText()))
    done: list[bool] = []
    cli.OnDisconnect.connect(lambda s, sock: done.append(True))
    payload = os.urandom(4 * 1024 * 1024)

    def send_all(sender, sock) -> None:
        sock.SendBuf(payload)
        sock.Shutdown(SD_SEND)

    cli.OnConnect.connect(send_all)
    cli.Open()
    qtbot.waitUntil(lambda: bool(done), timeout=20000)
    assert "".join(answer) == hashlib.sha256(payload).hexdigest()
    srv.Close()


def test_a_send_from_another_thread_during_a_partial_tls_send_follows_all_of_it(qtbot,
                                                                               certs) -> None:
    """As over plain TCP (test_data.py): the TLS layer takes a send in parts, and another
    thread's SendBuf in the middle of it goes after all of it."""
    first = os.urandom(4 << 20)
    second = b"<from another thread>"
    srv = tls_server(certs)
    srv.Open()
    cli = tls_client(certs, srv.Socket.LocalPort)
    rx = bytearray()
    cli.OnRead.connect(lambda s, sock: rx.extend(sock.ReceiveBytes()))
    cli.Open()
    qtbot.waitUntil(lambda: cli.Active and srv.Socket.ActiveConnections == 1, timeout=5000)
    sender = srv.Socket.Connections[0]
    qtbot.waitUntil(lambda: sender.TLSActive, timeout=5000)
    results: list[int] = []

    def other_thread_sends() -> None:
        job = threading.Thread(target=lambda: results.append(sender.SendBuf(second)))
        job.start()
        job.join(5)
        assert not job.is_alive(), "another thread's SendBuf waited for the component's thread"

    transport = sender.transport
    transport.stream = interleaver = SendInterleaver(transport.stream, other_thread_sends)
    try:
        assert sender.SendBuf(first) == len(first)
        assert interleaver.fired and results == [len(second)]
        qtbot.waitUntil(lambda: len(rx) >= len(first) + len(second), timeout=10000)
        assert bytes(rx) == first + second
    finally:
        cli.Close()
        srv.Close()


def test_untrusted_certificate_is_an_error_with_a_clear_message(qtbot, certs, hook) -> None:
    srv = tls_server(certs)
    srv.OnClientError.connect(lambda s, sock, e, code: setattr(code, "value", 0))
    srv.Open()
    cli = tls_client(certs, srv.Socket.LocalPort, TLSCAFile="")  # system store: not our CA
    log = EventLog(cli, snapshot=lambda name, args: cli.Socket.LastErrorMessage)
    cli.Open()
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1, timeout=5000)
    assert log.names() == ["OnLookup", "OnConnecting", "OnError", "OnDisconnect"]
    _, _, event, code = log.args("OnError")
    assert event == eeConnect and code.value == TLS_CERTIFICATE_INVALID
    assert "certificate" in log.snapshots[2] and "verify" in log.snapshots[2]
    assert len(hook) == 1 and hook[0].ErrorCode == TLS_CERTIFICATE_INVALID
    assert "TLS certificate rejected" in str(hook[0]) and "SSL_do_handshake" in str(hook[0])
    srv.Close()


def test_wrong_server_name_is_rejected(qtbot, certs, hook) -> None:
    srv = tls_server(certs)
    srv.OnClientError.connect(lambda s, sock, e, code: setattr(code, "value", 0))
    srv.Open()
    cli = tls_client(certs, srv.Socket.LocalPort, TLSServerName="wrong.example")
    log = EventLog(cli)
    cli.Open()
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1, timeout=5000)
    assert log.args("OnError")[3].value == TLS_CERTIFICATE_INVALID
    assert "wrong.example" in str(hook[0])
    srv.Close()


def test_plain_client_to_tls_server_fails_the_handshake_server_side(qtbot, certs) -> None:
    srv = tls_server(certs)
    log = EventLog(srv)
    codes: list[int] = []

    def on_error(sender, sock, event, code) -> None:
        codes.append(code.value)
        code.value = 0

    srv.OnClientError.connect(on_error)
    srv.Open()
    with socket.create_connection(("127.0.0.1", srv.Socket.LocalPort)) as peer:
        peer.sendall(b"GET / HTTP/1.0\r\n\r\n")
        qtbot.waitUntil(lambda: log.count("OnClientDisconnect") == 1, timeout=5000)
    assert [n for n in log.names() if n.startswith("OnClient")] == [
        "OnClientError", "OnClientDisconnect"]
    assert codes == [TLS_HANDSHAKE_FAILED]
    assert srv.Socket.ActiveConnections == 0
    srv.Close()


def test_client_against_python_ssl_server(qtbot, certs) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs["cert"], certs["key"])
    seen: list[str] = []
    context.sni_callback = lambda tls, name, ctx: seen.append(name)

    def serve() -> None:
        conn, _ = listener.accept()
        with context.wrap_socket(conn, server_side=True) as tls:
            data = tls.recv(100)
            tls.sendall(b"echo:" + data)

    worker = threading.Thread(target=serve)
    worker.start()
    cli = tls_client(certs, port)
    got: list[bytes] = []
    cli.OnConnect.connect(lambda s, sock: sock.SendText("ping"))
    cli.OnRead.connect(lambda s, sock: got.append(sock.ReceiveBytes()))
    cli.Open()
    qtbot.waitUntil(lambda: b"".join(got) == b"echo:ping", timeout=5000)
    worker.join(5)
    listener.close()
    assert seen == ["localhost"]  # SNI sent with the Host name
    cli.Close()


def test_server_against_python_ssl_client(qtbot, certs) -> None:
    srv = tls_server(certs, Framing=fmLine)
    srv.OnClientLineReceived.connect(lambda s, sock, line: sock.SendLine(line[::-1]))
    srv.Open()
    answers: list[bytes] = []

    def client() -> None:
        context = ssl.create_default_context(cafile=certs["ca"])
        with socket.create_connection(("127.0.0.1", srv.Socket.LocalPort), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall("stressed\nüber\n".encode())
                f = tls.makefile("rb")
                answers.extend([f.readline(), f.readline()])

    worker = threading.Thread(target=client)
    worker.start()
    qtbot.waitUntil(lambda: len(answers) == 2, timeout=10000)
    worker.join(5)
    assert answers == [b"desserts\n", "rebü\n".encode()]
    srv.Close()


def test_openssl_s_server_peer(qtbot, certs) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        if os.environ.get("CI"):
            pytest.fail("openssl is required in CI")
        pytest.skip("openssl not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [openssl, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", certs["cert"],
         "-key", certs["key"], "-rev"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # s_server prints ACCEPT once it listens
            if line.startswith("ACCEPT"):
                break
        cli = tls_client(certs, port, Framing=fmLine)
        lines: list[str] = []
        cli.OnLineReceived.connect(lambda s, sock, line: lines.append(line))
        cli.OnConnect.connect(lambda s, sock: sock.SendLine("sockcomp"))
        cli.Open()
        qtbot.waitUntil(lambda: "pmockcos" in lines, timeout=10000)
        cli.Close()
    finally:
        proc.kill()
        proc.wait(10)


def test_blocking_client_and_thread_blocking_server(qtbot, certs) -> None:
    srv = tls_server(certs, ServerType=stThreadBlocking)
    srv.OnClientRead.connect(lambda s, sock: sock.SendText(sock.ReceiveText()[::-1]))
    srv.Open()
    port = srv.Socket.LocalPort
    result: list[object] = []

    def blocking_client() -> None:  # a ctBlocking ClientSocket in its own thread
        try:
            cli = tls_client(certs, port, ClientType=ctBlocking)
            cli.Loaded()
            cli.Open()
            assert cli.Socket.TLSActive
            cli.Socket.SendText("abc")
            buf = bytearray(10)
            n = cli.Socket.ReceiveBuf(buf)
            result.append(bytes(buf[:n]))
            cli.Close()
        except BaseException as exc:  # report to the test thread
            result.append(exc)

    worker = threading.Thread(target=blocking_client)
    worker.start()
    qtbot.waitUntil(lambda: bool(result), timeout=10000)
    worker.join(5)
    assert result == [b"cba"]
    srv.Close()


def test_blocking_client_bad_certificate_raises(qtbot, certs) -> None:
    srv = tls_server(certs)
    srv.OnClientError.connect(lambda s, sock, e, code: setattr(code, "value", 0))
    srv.Open()
    port = srv.Socket.LocalPort
    outcome: list[object] = []

    def blocking_client() -> None:
        cli = tls_client(certs, port, ClientType=ctBlocking, TLSCAFile="")
        log = EventLog(cli)
        try:
            cli.Open()
            outcome.append("no error")
        except ESocketError as exc:
            outcome.append((exc.ErrorCode, log.names()))

    worker = threading.Thread(target=blocking_client)
    worker.start()
    qtbot.waitUntil(lambda: bool(outcome), timeout=10000)
    worker.join(5)
    assert outcome == [(TLS_CERTIFICATE_INVALID,
                        ["OnLookup", "OnConnecting", "OnError", "OnDisconnect"])]
    srv.Close()


def test_missing_certificate_is_refused_at_open() -> None:
    srv = ServerSocket()
    srv.Port, srv.UseTLS = 0, True
    with pytest.raises(ESocketError, match="TLSCertFile"):
        srv.Open()
    srv.TLSCertFile = "/nonexistent.pem"
    with pytest.raises(ESocketError, match="could not be loaded"):
        srv.Open()
    assert not srv.Active


def test_winsocketstream_over_tls_in_a_server_thread(qtbot, certs) -> None:
    """A ported ClientExecute (WaitForData, Read, Write) behind TLS, timeout and EOF included."""
    from sockcomp import ESocketTimeout, ServerClientThread, WinSocketStream
    outcomes: list[str] = []

    class EchoThread(ServerClientThread):
        def ClientExecute(self) -> None:
            stream = WinSocketStream(self.ClientSocket, 300)
            try:
                stream.Read(10)
            except ESocketTimeout:
                outcomes.append("timed out")  # nothing sent yet: a timeout, not EOF
            stream.Write(b"ready\n")
            while not self.Terminated and self.ClientSocket.Connected:
                if stream.WaitForData(5000):
                    data = stream.Read(4096)
                    if not data:
                        outcomes.append("eof")
                        self.ClientSocket.Close()
                    else:
                        stream.Write(data.upper())

    srv = tls_server(certs, ServerType=stThreadBlocking)
    srv.OnGetThread.connect(lambda s, sock, cell: setattr(cell, "value", EchoThread(False, sock)))
    srv.Open()
    replies: list[bytes] = []

    def client() -> None:
        context = ssl.create_default_context(cafile=certs["ca"])
        with socket.create_connection(("127.0.0.1", srv.Socket.LocalPort), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                f = tls.makefile("rb")
                replies.append(f.readline())
                tls.sendall(b"secret\n")
                replies.append(f.readline())

    worker = threading.Thread(target=client)
    worker.start()
    qtbot.waitUntil(lambda: outcomes == ["timed out", "eof"], timeout=10000)
    worker.join(5)
    assert replies == [b"ready\n", b"SECRET\n"]
    srv.Close()


def test_blocking_tls_client_receivetext_does_not_wait(qtbot, certs) -> None:
    """ReceiveText on a blocking socket returns what is there now, TLS or not."""
    from sockcomp import WinSocketStream
    srv = tls_server(certs)
    srv.OnClientRead.connect(lambda s, sock: sock.SendText(sock.ReceiveText() + "!"))
    srv.Open()
    port = srv.Socket.LocalPort
    result: list[object] = []

    def blocking_client() -> None:
        try:
            cli = tls_client(certs, port, ClientType=ctBlocking)
            cli.Loaded()
            cli.Open()
            before = cli.Socket.ReceiveText()  # nothing sent yet: '' at once, no wait
            cli.Socket.SendText("hi")
            assert WinSocketStream(cli.Socket, 5000).WaitForData(5000)
            text = ""
            while not text.endswith("!"):
                text += cli.Socket.ReceiveText()
            result.append((before, text))
            cli.Close()
        except BaseException as exc:
            result.append(exc)

    worker = threading.Thread(target=blocking_client)
    worker.start()
    qtbot.waitUntil(lambda: bool(result), timeout=10000)
    worker.join(5)
    assert result == [("", "hi!")]
    srv.Close()
