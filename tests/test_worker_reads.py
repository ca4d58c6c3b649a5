"""A waiting read (a worker's, a ctBlocking client's) is one blocking ``recv`` (plain TCP where
``MSG_DONTWAIT`` exists).

What that design must keep, each asserted over real loopback sockets: ``Terminate`` and
``Close`` from the component's thread end a read that waits without limit (plain, where the
read blocks in ``recv``, and TLS, where it waits in ``poll``); the stream's ``TimeOut`` is the
read's limit, also after it changes; and the component's thread never waits on the descriptor
that now blocks (its sends pass ``MSG_DONTWAIT``), asserted with a watchdog timer.
"""
from __future__ import annotations

import hashlib
import os
import platform
import socket
import ssl
import threading
import time
from typing import Any

import pytest

from sockcomp import (
    ClientSocket, ESocketTimeout, ServerClientThread, ServerSocket, WinSocketStream, ctBlocking,
    stThreadBlocking,
)
from tests.test_thread_server import Job, connect, recv_exactly
from tests.test_tls import certs  # noqa: F401  (the fixture)
from tests.util import Watchdog

WAIT = 5000
IO_WAIT = 10.0

# system calls a read waits in: recvfrom (plain), poll/ppoll (TLS)
_READ_WAITS = {"x86_64": {"45", "7", "271"}, "aarch64": {"207", "73"}}.get(platform.machine())


def waiting_in_read(tid: int) -> bool:
    """True while the thread ``tid`` sleeps in the system call of a read (Linux /proc)."""
    try:
        with open(f"/proc/self/task/{tid}/syscall") as f:
            fields = f.read().split()
    except OSError:
        return False
    if not fields or fields[0] in ("running", "-1"):
        return False
    return _READ_WAITS is None or fields[0] in _READ_WAITS


def thread_server(threads: list[ServerClientThread], cls: type, files: Any = None) -> ServerSocket:
    srv = ServerSocket()
    srv.ServerType = stThreadBlocking
    srv.Address, srv.Port = "127.0.0.1", 0
    if files is not None:
        srv.UseTLS, srv.TLSCertFile, srv.TLSKeyFile = True, files["cert"], files["key"]

    def on_get_thread(Sender, ClientSocket, SocketThread):
        SocketThread.value = cls(False, ClientSocket)
        threads.append(SocketThread.value)

    srv.OnGetThread.connect(on_get_thread)
    return srv


def peer(port: int, files: Any = None) -> socket.socket:
    s = connect(port)
    if files is None:
        return s
    context = ssl.create_default_context(cafile=files["ca"])
    return context.wrap_socket(s, server_hostname="localhost")


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize("how", ["Terminate", "Close"])
def test_a_read_without_limit_ends_at_terminate_or_close(qtbot, certs, hook, tls, how):  # noqa: F811
    state: dict[str, Any] = {}
    started = threading.Event()

    class ReaderThread(ServerClientThread):
        def ClientExecute(self) -> None:
            state["tid"] = threading.get_native_id()
            stream = WinSocketStream(self.ClientSocket, 600_000)  # ten minutes
            started.set()
            t0 = time.monotonic()
            state["got"] = stream.Read(100)
            state["took"] = time.monotonic() - t0

    threads: list[ServerClientThread] = []
    srv = thread_server(threads, ReaderThread, certs if tls else None)
    disconnects: list[Any] = []
    srv.OnClientDisconnect.connect(lambda Sender, Socket: disconnects.append(Socket))
    srv.Open()
    try:
        # the handshake needs the component's loop running: connect from another thread
        with Job(peer, srv.Socket.LocalPort, certs if tls else None).wait(qtbot):
            qtbot.waitUntil(lambda: started.is_set() and waiting_in_read(state["tid"]),
                            timeout=WAIT)
            client = srv.Socket.Connections[0]
            # the plain read blocks in recv, the TLS one waits in poll (both must end)
            assert client._waiter.fd_blocks is (not tls)
            if how == "Terminate":
                threads[0].Terminate()
            else:
                client.Close()
            qtbot.waitUntil(lambda: "got" in state, timeout=WAIT)
            assert state["got"] == b""
            assert state["took"] < 3
            qtbot.waitUntil(lambda: len(disconnects) == 1, timeout=WAIT)
    finally:
        srv.Close()
    assert hook == []


def test_the_streams_timeout_limits_each_read_also_after_it_changes(qtbot, hook):
    results: list[Any] = []

    class TimedThread(ServerClientThread):
        def ClientExecute(self) -> None:
            stream = WinSocketStream(self.ClientSocket, 3000)
            results.append(stream.Read(10))
            stream.TimeOut = 150  # shorter than the limit the socket had
            t0 = time.monotonic()
            try:
                stream.Read(10)
            except ESocketTimeout:
                results.append(("timeout", time.monotonic() - t0))
            stream.TimeOut = 5000
            stream.Write(b"ready")
            results.append(stream.Read(10))  # the socket still reads after a time-out

    threads: list[ServerClientThread] = []
    srv = thread_server(threads, TimedThread)
    srv.Open()

    def client():
        with connect(srv.Socket.LocalPort) as s:
            s.sendall(b"one")
            assert recv_exactly(s, 5) == b"ready"
            s.sendall(b"two")

    try:
        job = Job(client)
        job.wait(qtbot)
        qtbot.waitUntil(lambda: len(results) == 3, timeout=WAIT)
    finally:
        srv.Close()
    assert results[0] == b"one"
    assert results[1][0] == "timeout" and 0.1 <= results[1][1] < 2.5, results
    assert results[2] == b"two"
    assert hook == []


def test_component_thread_never_waits_on_a_descriptor_that_blocks(qtbot, hook):
    state: dict[str, Any] = {}
    started = threading.Event()

    class ReaderThread(ServerClientThread):
        def ClientExecute(self) -> None:
            state["tid"] = threading.get_native_id()
            stream = WinSocketStream(self.ClientSocket, 60000)
            state["first"] = stream.Read(10)
            started.set()
            state["second"] = stream.Read(10)

    threads: list[ServerClientThread] = []
    srv = thread_server(threads, ReaderThread)
    srv.Open()
    payload = os.urandom(4 << 20)  # far more than the kernel's buffers hold
    sent = threading.Event()

    def client():
        with connect(srv.Socket.LocalPort) as s:
            s.sendall(b"go")
            assert sent.wait(IO_WAIT)
            got = recv_exactly(s, len(payload))
            s.sendall(b"end")
            return hashlib.sha256(got).hexdigest()

    try:
        job = Job(client)
        qtbot.waitUntil(lambda: started.is_set() and waiting_in_read(state["tid"]),
                        timeout=WAIT)
        client = srv.Socket.Connections[0]
        assert client._waiter.fd_blocks  # the worker's read blocks in recv now
        dog = Watchdog().start()
        t0 = time.monotonic()
        view = memoryview(payload)
        for at in range(0, len(payload), 65536):
            assert client.SendBuf(view[at:at + 65536]) == len(view[at:at + 65536])
        took = time.monotonic() - t0
        sent.set()
        digest = job.wait(qtbot)
        qtbot.waitUntil(lambda: "second" in state, timeout=WAIT)
        longest = dog.stop()
    finally:
        srv.Close()
    assert took < 1.0  # queued, not waited for: the peer was not reading
    assert longest < 100
    assert digest == hashlib.sha256(payload).hexdigest()
    assert state["first"] == b"go" and state["second"] == b"end"
    assert hook == []



def test_a_blocking_clients_read_ends_when_another_thread_closes_it(qtbot, hook):
    with socket.create_server(("127.0.0.1", 0)) as lst:
        cli = ClientSocket()
        cli.ClientType, cli.Address, cli.Port = ctBlocking, "127.0.0.1", lst.getsockname()[1]
        cli.Open()
        conn, _ = lst.accept()
        state: dict[str, Any] = {}

        def reader():
            state["tid"] = threading.get_native_id()
            state["got"] = WinSocketStream(cli.Socket, 600_000).Read(100)

        job = Job(reader)
        qtbot.waitUntil(lambda: "tid" in state and waiting_in_read(state["tid"]), timeout=WAIT)
        assert cli.Socket._waiter.fd_blocks  # the read blocks in recv
        t0 = time.monotonic()
        cli.Close()
        job.wait(qtbot)
        took = time.monotonic() - t0
        conn.close()
    assert state["got"] == b""
    assert took < 3
    assert hook == []
