"""sockcomp.aio: awaitable sockets under qasync, driven by a fresh QEventLoop per test.

Coroutines run with ``loop.run_until_complete`` (never qtbot blockers inside a coroutine, see
reference/qt.md §6); real loopback sockets throughout. The ``hook`` fixture proves that errors
surface as exceptions in the awaiting coroutine and never reach the application hook.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import qasync

from sockcomp import ClientSocket, ESocketError, aio

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def loop(qapp, hook):
    """A fresh qasync loop per test; afterwards no socket error may have reached the hook."""
    ev = qasync.QEventLoop(qapp)
    errors: list[dict] = []
    ev.set_exception_handler(lambda _loop, context: errors.append(context))
    yield ev
    ev.close()
    assert hook == [], f"errors reached the application hook: {hook!r}"
    assert errors == [], f"unexpected asyncio errors: {errors!r}"


def run(loop: qasync.QEventLoop, coro, timeout: float = 10.0):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


async def echo_handler(conn: aio.AsyncSocket) -> None:
    while True:
        data = await conn.read(65536)
        if not data:
            break
        conn.write(data)
        await conn.drain()


def hanging_listener() -> tuple[socket.socket, list[socket.socket]]:
    """A listener whose accept queue is full: the next connect to it stays pending (SYN
    dropped), which is how a connect that never completes is made on loopback."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    fillers = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(lst.getsockname())
        fillers.append(s)
    return lst, fillers


@pytest.fixture
def recorded_clients(monkeypatch):
    """Every ClientSocket the aio layer creates, to check what a failure left behind."""
    made: list[ClientSocket] = []

    class Recording(ClientSocket):
        def __init__(self, *args):
            super().__init__(*args)
            made.append(self)

    monkeypatch.setattr(aio, "ClientSocket", Recording)
    return made


# ---------------------------------------------------------------------------- success
def test_echo_read_variants(loop):
    async def main():
        async with await aio.start_server(echo_handler, "127.0.0.1", 0) as server:
            async with await aio.open_connection("127.0.0.1", server.port) as conn:
                assert conn.peername == ("127.0.0.1", server.port)
                conn.write(b"hello\nwor")
                conn.write(b"ld\n")
                await conn.drain()
                assert await conn.readline() == b"hello\n"
                assert await conn.readuntil(b"\n") == b"world\n"
                conn.write(b"0123456789")
                assert await conn.readexactly(4) == b"0123"
                assert await conn.readexactly(6) == b"456789"
                conn.writelines([b"ab", b"cd"])
                got = b""
                while len(got) < 4:
                    got += await conn.read(100)
                assert got == b"abcd"
                conn.write_eof()  # the echo handler sees EOF, returns, the server closes
                assert await conn.read() == b""
                assert conn.at_eof()
                assert await conn.readline() == b""

    run(loop, main())


def test_localhost_name_and_async_for_lines(loop):
    async def lines(conn):
        conn.write(b"one\ntwo\nthree")
        conn.close()

    async def main():
        async with await aio.start_server(lines, "127.0.0.1", 0) as server:
            conn = await aio.open_connection("localhost", server.port)
            assert [line async for line in conn] == [b"one\n", b"two\n", b"three"]
            await conn.wait_eof()
            conn.close()
            await conn.wait_closed()
            assert conn.is_closing() and conn.socket.SocketHandle == -1

    run(loop, main())


def test_half_close_request_response(loop):
    async def handler(conn):
        request = await conn.read()          # until the client's FIN
        await conn.wait_eof()
        assert conn.at_eof()
        conn.write(b"got " + str(len(request)).encode())   # still writable after the FIN
        await conn.drain()

    async def main():
        async with await aio.start_server(handler, "127.0.0.1", 0) as server:
            async with await aio.open_connection("127.0.0.1", server.port) as conn:
                conn.write(b"x" * 100_000)
                conn.write_eof()
                with pytest.raises(ESocketError) as info:
                    conn.write(b"more")
                assert info.value.ErrorCode == 10058
                assert await conn.read() == b"got 100000"

    run(loop, main())


def test_incomplete_read_at_eof(loop):
    async def handler(conn):
        conn.write(b"abc")

    async def main():
        async with await aio.start_server(handler, "127.0.0.1", 0) as server:
            async with await aio.open_connection("127.0.0.1", server.port) as conn:
                with pytest.raises(asyncio.IncompleteReadError) as info:
                    await conn.readexactly(10)
                assert info.value.partial == b"abc" and info.value.expected == 10
                assert conn.at_eof()

    run(loop, main())


def test_line_limit_overrun_is_an_error_not_growth(loop):
    async def handler(conn):
        conn.write(b"y" * 100 + b"\nshort\n" + b"z" * 50 + b"\nok\n")

    async def main():
        async with await aio.start_server(handler, "127.0.0.1", 0) as server:
            async with await aio.open_connection("127.0.0.1", server.port, limit=16) as conn:
                with pytest.raises(asyncio.LimitOverrunError):
                    await conn.readuntil(b"\n")
                assert await conn.readexactly(101) == b"y" * 100 + b"\n"  # data stayed
                assert await conn.readline() == b"short\n"
                with pytest.raises(ValueError):
                    await conn.readline()                  # the long line is discarded
                assert await conn.readline() == b"ok\n"

    run(loop, main())


def test_receive_buffer_stays_bounded(loop):
    limit = 4096
    payload = random.Random(7).randbytes(6 * 1024 * 1024)

    async def handler(conn):
        conn.write(payload)
        await conn.drain()

    async def main():
        async with await aio.start_server(handler, "127.0.0.1", 0) as server:
            async with await aio.open_connection("127.0.0.1", server.port,
                                                 limit=limit) as conn:
                peak = 0
                original = conn._on_read

                def measuring_on_read():
                    nonlocal peak
                    original()
                    peak = max(peak, len(conn._buf))

                conn._on_read = measuring_on_read
                digest = hashlib.sha256()
                total = 0
                while total < len(payload):
                    chunk = await conn.read(1000)
                    digest.update(chunk)
                    total += len(chunk)
                assert digest.digest() == hashlib.sha256(payload).digest()
                assert 0 < peak <= 2 * limit

    run(loop, main())


def test_drain_waits_for_the_send_queue(loop):
    payload = random.Random(3).randbytes(16 * 1024 * 1024)
    may_read = asyncio.Event()
    received = []

    async def sink(conn):
        await may_read.wait()
        received.append(await conn.read())

    async def main():
        async with await aio.start_server(sink, "127.0.0.1", 0) as server:
            conn = await aio.open_connection("127.0.0.1", server.port)
            conn.write(payload)
            assert conn.get_write_buffer_size() > aio.DEFAULT_WRITE_HIGH_WATER
            drain = asyncio.ensure_future(conn.drain())
            for _ in range(20):
                await asyncio.sleep(0)
            assert not drain.done()        # nobody reads: the queue cannot go down
            may_read.set()
            await drain
            assert conn.get_write_buffer_size() <= aio.DEFAULT_WRITE_HIGH_WATER
            conn.write_eof()
            await conn.read()               # the sink closes once it has everything
            conn.close()
        assert hashlib.sha256(received[0]).digest() == hashlib.sha256(payload).digest()

    run(loop, main())


def test_connections_iterator(loop):
    async def main():
        async with await aio.start_server(None, "127.0.0.1", 0) as server:
            clients = [await aio.open_connection("127.0.0.1", server.port) for _ in range(3)]
            seen = []
            async for conn in server.connections():
                conn.write(b"#%d\n" % len(seen))
                seen.append(conn)
                if len(seen) == 3:
                    break
            replies = sorted([await c.readline() for c in clients])
            assert replies == [b"#0\n", b"#1\n", b"#2\n"]
            server.close()
            for c in clients:              # closing the server closes every connection
                assert await c.read() == b""
                c.close()
            assert [conn async for conn in server.connections()] == []
            with pytest.raises(ESocketError):
                await server.accept()

    run(loop, main())


def test_handler_exception_goes_to_the_loop_and_closes(qapp, hook):
    ev = qasync.QEventLoop(qapp)
    contexts = []
    ev.set_exception_handler(lambda _loop, context: contexts.append(context))

    async def broken(conn):
        raise RuntimeError("boom")

    async def main():
        async with await aio.start_server(broken, "127.0.0.1", 0) as server:
            async with await aio.open_connection("127.0.0.1", server.port) as conn:
                assert await conn.read() == b""

    try:
        run(ev, main())
    finally:
        ev.close()
    assert [type(c["exception"]) for c in contexts] == [RuntimeError]
    assert hook == []


# ---------------------------------------------------------------------------- errors
def test_refused(loop, recorded_clients):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused

        async def main():
            with pytest.raises(ESocketError) as info:
                await aio.open_connection("127.0.0.1", port)
            return info.value

        err = run(loop, main())
    assert err.ErrorCode == 10061 and err.API == "connect"
    assert "(10061)" in str(err)
    assert recorded_clients[0].Socket.SocketHandle == -1 and not recorded_clients[0].Active


def test_no_address_and_unknown_host(loop):
    async def main():
        with pytest.raises(ESocketError) as info:
            await aio.open_connection()
        assert info.value.ErrorCode == 1110
        with pytest.raises(ESocketError) as info:
            await aio.open_connection("no-such-host.invalid", 80)
        assert info.value.ErrorCode == 11001

    run(loop, main())


def test_port_in_use(loop):
    async def main():
        async with await aio.start_server(echo_handler, "127.0.0.1", 0) as server:
            with pytest.raises(ESocketError) as info:
                await aio.start_server(echo_handler, "127.0.0.1", server.port)
            assert info.value.ErrorCode == 10048

    run(loop, main())


def test_reset_raises_in_the_waiting_reader_and_writer(loop):
    lst = socket.create_server(("127.0.0.1", 0))

    async def main():
        conn = await aio.open_connection("127.0.0.1", lst.getsockname()[1])
        peer, _ = lst.accept()                 # already in the accept queue
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        reader = asyncio.ensure_future(conn.read(10))
        await asyncio.sleep(0)
        peer.close()                           # linger 0: RST
        with pytest.raises(ESocketError) as info:
            await reader
        assert info.value.ErrorCode == 10054
        assert conn.exception() is info.value
        with pytest.raises(ESocketError) as again:
            conn.write(b"late")
        assert again.value.ErrorCode == 10054
        with pytest.raises(ESocketError):
            await conn.drain()
        await conn.wait_closed()               # never raises
        assert conn.socket.SocketHandle == -1

    try:
        run(loop, main())
    finally:
        lst.close()


def test_connect_timeout(loop, recorded_clients):
    lst, fillers = hanging_listener()

    async def main():
        with pytest.raises(ESocketError) as info:
            await aio.open_connection("127.0.0.1", lst.getsockname()[1], connect_timeout=0.2)
        return info.value

    try:
        err = run(loop, main())
    finally:
        for s in fillers + [lst]:
            s.close()
    assert err.ErrorCode == 10060
    assert recorded_clients[0].Socket.SocketHandle == -1


# ---------------------------------------------------------------------------- cancellation
def test_cancelled_connect_closes_the_half_open_socket(loop, recorded_clients):
    lst, fillers = hanging_listener()

    async def main():
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await aio.open_connection("127.0.0.1", lst.getsockname()[1])
        task = asyncio.ensure_future(aio.open_connection("localhost", lst.getsockname()[1]))
        await asyncio.sleep(0)                 # lookup under way
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        run(loop, main())
    finally:
        for s in fillers + [lst]:
            s.close()
    assert len(recorded_clients) == 2
    for comp in recorded_clients:
        assert comp.Socket.SocketHandle == -1 and not comp.Active


def test_cancelled_reads_lose_no_data(loop):
    async def main():
        parts: asyncio.Queue[bytes] = asyncio.Queue()

        async def feeder(conn):
            while (part := await parts.get()):
                conn.write(part)
            await conn.read()

        async with await aio.start_server(feeder, "127.0.0.1", 0) as server:
            async with await aio.open_connection("127.0.0.1", server.port) as conn:
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.05):
                        await conn.read(10)           # nothing yet
                parts.put_nowait(b"0123")
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.2):
                        await conn.readexactly(10)    # 4 of 10 arrive, then timeout
                task = asyncio.ensure_future(conn.readline())
                await asyncio.sleep(0.01)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                parts.put_nowait(b"456789\n")
                assert await conn.readexactly(10) == b"0123456789"  # nothing was lost
                assert await conn.readline() == b"\n"
                # a cancelled drain leaves the connection usable
                conn.write(b"z" * (8 * 1024 * 1024))
                drain = asyncio.ensure_future(conn.drain())
                await asyncio.sleep(0)
                drain.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await drain
                parts.put_nowait(b"end\n")
                parts.put_nowait(b"")
                conn.write_eof()
                assert await conn.readline() == b"end\n"

    run(loop, main())


def test_concurrent_readers_are_refused(loop):
    async def main():
        async with await aio.start_server(echo_handler, "127.0.0.1", 0) as server:
            async with await aio.open_connection("127.0.0.1", server.port) as conn:
                first = asyncio.ensure_future(conn.read(1))
                await asyncio.sleep(0)
                with pytest.raises(RuntimeError):
                    await conn.read(1)
                conn.write(b"!")
                assert await first == b"!"

    run(loop, main())


def test_close_wakes_a_pending_reader_with_eof(loop):
    async def main():
        async with await aio.start_server(echo_handler, "127.0.0.1", 0) as server:
            conn = await aio.open_connection("127.0.0.1", server.port)
            reader = asyncio.ensure_future(conn.read(10))
            await asyncio.sleep(0)
            conn.close()
            assert await reader == b""
            with pytest.raises(ESocketError) as info:
                conn.write(b"x")
            assert info.value.ErrorCode == 10057

    run(loop, main())


# ---------------------------------------------------------------------------- load, GUI, sample
def test_200_clients_echo_with_checksums(loop):
    async def client(port: int, seed: int) -> None:
        rng = random.Random(seed)
        async with await aio.open_connection("127.0.0.1", port) as conn:
            sent, got = hashlib.sha256(), hashlib.sha256()
            for _ in range(5):
                data = rng.randbytes(rng.randint(1, 20_000))
                sent.update(data)
                conn.write(data)
                await conn.drain()
                got.update(await conn.readexactly(len(data)))
            assert got.digest() == sent.digest()

    async def main():
        async with await aio.start_server(echo_handler, "127.0.0.1", 0) as server:
            await asyncio.gather(*(client(server.port, i) for i in range(200)))
            assert server.component.Socket.ActiveConnections <= 200

    run(loop, main(), timeout=15)


def test_unreferenced_tasks_survive_garbage_collection(loop):
    """Like qasync's @asyncSlot, keep no reference to the tasks: an open socket must keep its
    waiting coroutine alive (as asyncio's selector does), and a closed one must be freed."""
    import gc
    import weakref

    async def main():
        results: asyncio.Queue[bytes] = asyncio.Queue()
        conns: list[weakref.ref] = []

        async def client(port: int) -> None:
            async with await aio.open_connection("127.0.0.1", port) as conn:
                conns.append(weakref.ref(conn))
                results.put_nowait(await conn.readline())

        async def idle(conn):
            await conn.read()            # until the client leaves

        async with await aio.start_server(idle, "127.0.0.1", 0) as server:
            for _ in range(3):
                asyncio.ensure_future(client(server.port))   # references dropped at once
            for _ in range(10):
                await asyncio.sleep(0)
                gc.collect()
            assert server.component.Socket.ActiveConnections == 3
            for conn in server.connections_open:
                conn.write(b"go\n")
            assert [await results.get() for _ in range(3)] == [b"go\n"] * 3
        gc.collect()
        assert [ref() for ref in conns] == [None] * 3   # closed connections are freed

    run(loop, main())


def test_async_slot_button_in_a_gui(loop, qapp):
    from PySide6.QtWidgets import QPushButton, QWidget

    class Window(QWidget):
        def __init__(self, port: int) -> None:
            super().__init__()
            self.port = port
            self.replies: asyncio.Queue[bytes] = asyncio.Queue()
            self.button = QPushButton("ask", self)
            self.button.clicked.connect(self.on_click)

        @qasync.asyncSlot()
        async def on_click(self) -> None:
            async with await aio.open_connection("127.0.0.1", self.port) as conn:
                conn.write(b"ping\n")
                self.replies.put_nowait(await conn.readline())

    async def main():
        async with await aio.start_server(echo_handler, "127.0.0.1", 0) as server:
            window = Window(server.port)
            window.button.click()
            window.button.click()
            assert [await window.replies.get(), await window.replies.get()] == [b"ping\n"] * 2

    run(loop, main())


def test_chat_async_sample_demo_headless():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, str(ROOT / "samples" / "chat_async.py")],
                          capture_output=True, text=True, timeout=30, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "[bob sees] alice: hello, anyone here?" in proc.stdout
    assert "[alice sees] bob: hi alice — Grüße aus Köln 👋" in proc.stdout
