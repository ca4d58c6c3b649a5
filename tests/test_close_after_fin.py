"""A graceful close first reads what the peer sent and nobody read, so the peer gets FIN, not
a reset. Once the peer's own end of stream has been read there is nothing left to read, and
the close skips that read (one system call per connection, in a worker also a hand-over of
the GIL).

Asserted over loopback for the non-blocking and the thread-blocking server, plain and TLS:
the close after the peer's FIN skips the read (plain only: a TLS end is not the kernel's);
a close that comes first still reads, and the peer still sees FIN with unread bytes left; and
an end of stream this side caused (its own shutdown of reading, also the one that wakes a
worker's blocked read while a graceful close flushes) never counts as the peer's. And the
descriptor a waiting thread holds is closed whichever of the close and the waiter's leaving
comes second.
"""
from __future__ import annotations

import socket
import threading
from typing import Any

import pytest

from sockcomp import ServerClientThread, ServerSocket, WinSocketStream
from sockcomp import _blocking, _transport
from sockcomp._blocking import WaitingTransport
from tests.test_thread_server import Job
from tests.test_tls import certs  # noqa: F401  (the fixture)
from tests.test_worker_reads import peer, thread_server

WAIT = 5000


@pytest.fixture
def closes(monkeypatch) -> list[tuple[bool, bool]]:
    """(graceful, drain) of every OS socket a transport closes."""
    seen: list[tuple[bool, bool]] = []
    real = _transport.close_quietly

    def spy(sock: socket.socket, graceful: bool, drain: bool = True) -> None:
        seen.append((graceful, drain))
        real(sock, graceful, drain)

    monkeypatch.setattr(_transport, "close_quietly", spy)
    monkeypatch.setattr(_blocking, "close_quietly", spy)
    return seen


class EchoThread(ServerClientThread):
    """The Delphi idiom: read, echo, close at the end of the stream."""

    def ClientExecute(self) -> None:
        sock = self.ClientSocket
        stream = WinSocketStream(sock, WAIT)
        while not self.Terminated and sock.Connected:
            data = stream.Read(4096)
            if not data:
                sock.Close()
                return
            stream.Write(data)


class FirstByteThread(ServerClientThread):
    """Reads one byte, then closes with the rest unread."""

    def ClientExecute(self) -> None:
        sock = self.ClientSocket
        WinSocketStream(sock, WAIT).Read(1)
        sock.Close()


def server(mode: str, files: Any, thread_class: type) -> ServerSocket:
    if mode == "thread":
        srv = thread_server([], thread_class, files)
    else:
        srv = ServerSocket()
        srv.Address, srv.Port = "127.0.0.1", 0
        if files is not None:
            srv.UseTLS, srv.TLSCertFile, srv.TLSKeyFile = True, files["cert"], files["key"]
    return srv


def finished(srv: ServerSocket) -> bool:
    return srv.Socket.ActiveConnections == 0


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize("mode", ["nonblocking", "thread"])
def test_the_close_after_the_peers_fin_reads_nothing_more(qtbot, certs, hook, closes,  # noqa: F811
                                                          mode, tls):
    files = certs if tls else None
    srv = server(mode, files, EchoThread)
    if mode == "nonblocking":
        srv.OnClientRead.connect(lambda Sender, Socket: Socket.SendBuf(Socket.ReceiveBytes()))
    srv.Open()
    try:
        def talk() -> bytes:  # in a thread: the TLS handshake needs the loop running
            client = peer(srv.Socket.LocalPort, files)
            client.sendall(b"ping")
            echo = client.recv(16)
            client.close()  # FIN (TLS: no close_notify first, as many peers do)
            return echo

        assert Job(talk).wait(qtbot) == b"ping"
        qtbot.waitUntil(lambda: finished(srv) and len(closes) == 1, timeout=WAIT)
        graceful, drain = closes[0]
        if tls:
            assert drain  # the TLS layer's end is not the kernel's: read what is left
        else:
            assert (graceful, drain) == (True, False)
    finally:
        srv.Close()
    assert hook == []


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize("mode", ["nonblocking", "thread"])
def test_a_close_before_the_peers_fin_still_reads_what_is_left(qtbot, certs, hook,  # noqa: F811
                                                               closes, mode, tls):
    files = certs if tls else None
    srv = server(mode, files, FirstByteThread)
    if mode == "nonblocking":
        srv.OnClientRead.connect(lambda Sender, Socket: Socket.Close())
    srv.Open()
    try:
        def talk() -> bytes:
            client = peer(srv.Socket.LocalPort, files)
            try:
                client.sendall(b"ab")  # the server reads at most "a", then closes
                return client.recv(16)  # b"" is FIN; a reset raises
            finally:
                client.close()

        # the peer sees an orderly end, not a reset, although it sent unread bytes
        assert Job(talk).wait(qtbot) == b""
        qtbot.waitUntil(lambda: finished(srv) and len(closes) == 1, timeout=WAIT)
        assert closes == [(True, True)]
    finally:
        srv.Close()
    assert hook == []


def test_an_end_of_stream_after_shutting_reading_down_is_not_the_peers() -> None:
    a, b = socket.socketpair()
    try:
        t = _transport.Transport(a, None, None, threading.RLock())
        t.shut_read()
        assert a.recv(16) == b""  # our own shutdown, though b never sent FIN
        t.note_end_of_stream()
        assert not t.peer_finished  # (TCP data sent after it would still arrive: read it)
    finally:
        a.close()
        b.close()


def test_the_peers_end_of_stream_counts() -> None:
    a, b = socket.socketpair()
    try:
        t = _transport.Transport(a, None, None, threading.RLock())
        b.shutdown(socket.SHUT_WR)
        b.close()
        assert a.recv(16) == b""
        t.note_end_of_stream()
        assert t.peer_finished
    finally:
        a.close()


def test_the_waiter_leaving_inside_a_close_from_another_thread_still_closes() -> None:
    # The close decides "a thread is inside: the last one out closes" and shuts the socket
    # down to wake it. Had the waiter left between that decision and the shutdown (it used
    # to be possible: the decision was not under the waiters' lock), nobody closed the
    # descriptor. Here the waiter leaves during the shutdown call itself.
    a, b = socket.socketpair()
    t = WaitingTransport(a, None, None, threading.RLock())
    assert t._enter()

    class LeavesDuringShutdown:
        def __getattr__(self, name: str) -> Any:
            return getattr(a, name)

        def shutdown(self, how: int) -> None:
            t._leave()  # the woken read returns and its thread leaves
            a.shutdown(how)

    t.sock = LeavesDuringShutdown()  # type: ignore[assignment]
    try:
        t._close(graceful=True)
        assert a.fileno() == -1  # closed, by whichever came second
    finally:
        a.close()
        b.close()


class ReadUntilTheEnd(ServerClientThread):
    """Blocks in a read for as long as the connection lasts."""

    def ClientExecute(self) -> None:
        sock = self.ClientSocket
        stream = WinSocketStream(sock, 60_000)
        while stream.Read(4096):
            pass


def test_a_graceful_close_that_wakes_a_blocked_reader_still_drains(qtbot, hook, closes):
    # The component's thread closes with bytes still queued (a peer that does not read yet):
    # the transport flushes them in the background and shuts reading down to end the
    # worker's blocked read. That read's end is this side's doing, not the peer's FIN: the
    # close at the end of the flush must still read what the peer sent meanwhile.
    srv = thread_server([], ReadUntilTheEnd)
    srv.Open()
    payload = bytes(range(256)) * 65536  # 16 MiB: more than the socket buffers take
    try:
        client = peer(srv.Socket.LocalPort)
        qtbot.waitUntil(lambda: srv.Socket.ActiveConnections == 1, timeout=WAIT)
        conn = srv.Socket.Connections[0]
        conn.SendBuf(payload)  # the component's thread: queued, flushed by its loop
        qtbot.waitUntil(lambda: conn.transport is not None and bool(conn.transport.tx.items),
                        timeout=WAIT)
        conn.Close()  # graceful, with bytes queued: flushing goes on in the background
        client.sendall(b"late")  # arrives after the worker's read ended: never read

        def read_all() -> bytes:
            got = bytearray()
            while chunk := client.recv(65536):
                got += chunk
            return bytes(got)

        assert Job(read_all).wait(qtbot, timeout=20_000) == payload  # then FIN, no reset
        qtbot.waitUntil(lambda: len(closes) == 1, timeout=WAIT)
        assert closes == [(True, True)]
        client.close()
    finally:
        srv.Close()
    assert hook == []
