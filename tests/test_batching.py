"""Read batching (sockcomp._batching): a one-way stream wakes its socket once per
``receive_batch`` bytes; request/response traffic never batches; a paused stream's tail is never
held back for more than two timer ticks, and a connection that had a tail held back is slower to
batch again.

The policy tests drive a socket by hand on a TCP loopback pair, so every read size is exact;
the end-to-end tests run a ServerSocket against a plain-socket peer.
"""
from __future__ import annotations

import fcntl
import hashlib
import io
import random
import select
import socket
import sys
import termios
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sockcomp import ClientSocket, ServerSocket
from sockcomp import _batching
from sockcomp._batching import BATCH_AFTER, BATCH_AFTER_MAX, SUPPORTED
from sockcomp import _pump
from sockcomp._pump import EpollPump
from sockcomp._sendqueue import RECEIVE_CHUNK
from sockcomp.winsock import CustomWinSocket
from tests.util import kept

pytestmark = pytest.mark.skipif(not SUPPORTED, reason="read batching needs Linux SO_RCVLOWAT")

WAIT = 5000
KiB = 1024


def lowat(sock: socket.socket) -> int:
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT)


def pending(sock: socket.socket) -> int:
    """Bytes the kernel holds for ``sock`` (FIONREAD)."""
    buf = bytearray(4)
    fcntl.ioctl(sock.fileno(), termios.FIONREAD, buf)
    return int.from_bytes(buf, sys.byteorder)


@pytest.fixture
def tcp_pair(qapp):
    """(receiving side, sending side) of a loopback TCP connection."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        sender = socket.create_connection(listener.getsockname())
        receiver, _ = listener.accept()
    sender.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    yield receiver, sender
    receiver.close()
    sender.close()


def attached(receiver: socket.socket, pump=None) -> CustomWinSocket:
    """A connected socket object on ``receiver`` (``CustomWinSocket(sock)``, as the VCL's
    constructor), registered with ``pump`` (default: this thread's, where it gets a notifier of
    its own)."""
    previous = getattr(_pump._local, "pump", None)
    if pump is not None:
        _pump._local.pump = pump
    try:
        return CustomWinSocket(receiver)
    finally:
        _pump._local.pump = previous


def batch(ws: CustomWinSocket) -> _batching.Batcher:
    return ws.transport.batch


def os_sock(ws: CustomWinSocket) -> socket.socket:
    return ws.transport.sock


def feed_big_read(ws: CustomWinSocket, receiver: socket.socket, sender: socket.socket,
                  data: bytes) -> None:
    """Send ``data`` (>= 64 KiB), wait until the kernel holds all of it, read it in one event."""
    sender.sendall(data)
    while pending(receiver) < len(data):
        select.select([receiver], [], [], 1)
    before = ws.ReceiveLength()
    ws.transport.read_ready()
    assert ws.ReceiveLength() - before == len(data)


@pytest.mark.parametrize("watched_by", ["own notifier", "shared epoll"])
def test_a_one_way_stream_batches_after_a_streak_of_big_reads(qtbot, tcp_pair, watched_by):
    """Both ways a pump watches a socket honour the mark and wake when it is lowered: a
    notifier of its own (a busy socket's) and the epoll shared by the rest."""
    receiver, sender = tcp_pair
    pump = kept(EpollPump(direct_slots=0) if watched_by == "shared epoll" else
                EpollPump(promote_after=0))
    ws = attached(receiver, pump)
    chunk = random.Random(1).randbytes(RECEIVE_CHUNK)
    for _ in range(BATCH_AFTER - 1):
        feed_big_read(ws, receiver, sender, chunk)
        assert lowat(receiver) == 1 and not batch(ws).active
    feed_big_read(ws, receiver, sender, chunk)
    assert batch(ws).active and lowat(receiver) == ws.receive_batch == 256 * KiB
    # the kernel now holds a small write back from poll: that is the point of the mark
    sender.sendall(b"tail")
    while pending(receiver) < 4:
        select.select([], [], [], 0.001)
    assert select.select([receiver], [], [], 0) == ([], [], [])
    # the stream paused: within two ticks batching ends and the tail is delivered
    qtbot.waitUntil(lambda: not batch(ws).active, timeout=WAIT)
    assert lowat(receiver) == 1
    qtbot.waitUntil(lambda: ws.ReceiveLength() == BATCH_AFTER * RECEIVE_CHUNK + 4, timeout=WAIT)
    assert ws.ReceiveBytes() == chunk * BATCH_AFTER + b"tail"
    # bytes were held back, so this connection needs a four times longer streak next time
    assert batch(ws).after == 4 * BATCH_AFTER
    ws.Close()


def test_a_stream_that_stops_on_a_boundary_does_not_back_off(qtbot, tcp_pair):
    receiver, sender = tcp_pair
    ws = attached(receiver)
    for _ in range(BATCH_AFTER):
        feed_big_read(ws, receiver, sender, bytes(RECEIVE_CHUNK))
    assert batch(ws).active
    _batching.start(ws.transport)  # as after a reopen within one tick: still watched once
    assert ws.transport.pump.batch_watch.transports.count(ws.transport) == 1
    qtbot.waitUntil(lambda: not batch(ws).active, timeout=WAIT)
    assert lowat(receiver) == 1 and batch(ws).after == BATCH_AFTER and batch(ws).streak == 0
    ws.Close()


def test_a_fin_wakes_a_batching_socket_at_once(qtbot, tcp_pair):
    """The end of a stream needs no tick: the kernel reports FIN whatever the mark. (The Qt
    loop does not run here, so nothing can have lowered the mark meanwhile.)"""
    receiver, sender = tcp_pair
    ws = attached(receiver)
    for _ in range(BATCH_AFTER):
        feed_big_read(ws, receiver, sender, bytes(RECEIVE_CHUNK))
    assert batch(ws).active
    sender.sendall(b"last")
    sender.shutdown(socket.SHUT_WR)
    readable, _, _ = select.select([receiver], [], [], 5)
    assert readable == [receiver] and batch(ws).active
    ws.transport.read_ready()
    assert ws.ReceiveBytes()[-4:] == b"last"
    ws.Close()


def test_a_socket_that_stops_reading_stops_batching_without_backing_off(qtbot, tcp_pair):
    """No read because the application stopped reading (here SD_RECEIVE; also a full buffer)
    is not a paused stream: batching ends, so the timer stops, and the streak stays as it was."""
    receiver, sender = tcp_pair
    ws = attached(receiver)
    for _ in range(BATCH_AFTER):
        feed_big_read(ws, receiver, sender, bytes(RECEIVE_CHUNK))
    sender.sendall(b"held")
    while pending(receiver) < 4:
        select.select([], [], [], 0.001)
    ws.Shutdown(socket.SHUT_RD)
    qtbot.waitUntil(lambda: not batch(ws).active, timeout=WAIT)
    assert batch(ws).after == BATCH_AFTER
    ws.Close()


def test_request_and_response_traffic_never_batches(qtbot, tcp_pair):
    """A reply between big reads resets the streak: an RPC peer waiting for our answer must
    never have its next request held back by the mark."""
    receiver, sender = tcp_pair
    ws = attached(receiver)
    for _ in range(3 * BATCH_AFTER):
        feed_big_read(ws, receiver, sender, bytes(RECEIVE_CHUNK))
        assert ws.ReceiveBytes() == bytes(RECEIVE_CHUNK)
        assert ws.SendBuf(b"ok") == 2
        assert not batch(ws).active and lowat(receiver) == 1
    ws.Close()


@pytest.mark.parametrize("send", ["SendBuf", "SendStream"])
def test_a_send_while_batching_ends_the_batch_and_backs_off(qtbot, tcp_pair, send):
    """The peer of a stop-and-wait protocol with big messages waits for our answer: once we
    send, the rest of its next message must not wait for a batch, and this connection must
    need a longer streak before it batches again."""
    receiver, sender = tcp_pair
    ws = attached(receiver)
    for _ in range(BATCH_AFTER):
        feed_big_read(ws, receiver, sender, bytes(RECEIVE_CHUNK))
    assert batch(ws).active
    if send == "SendBuf":
        assert ws.SendBuf(b"ack") == 3
    else:
        assert ws.SendStream(io.BytesIO(b"ack"))
    assert not batch(ws).active and lowat(receiver) == 1
    assert batch(ws).after == 4 * BATCH_AFTER
    sender.settimeout(5)
    assert sender.recv(3) == b"ack"
    ws.Close()


def test_small_reads_never_batch(qtbot, tcp_pair):
    receiver, sender = tcp_pair
    ws = attached(receiver)
    for _ in range(3 * BATCH_AFTER):
        feed_big_read(ws, receiver, sender, bytes(RECEIVE_CHUNK))
        sender.sendall(b"x" * 100)
        while pending(receiver) < 100:
            select.select([receiver], [], [], 1)
        ws.transport.read_ready()  # a short read: the streak starts over
        assert not batch(ws).active
    assert ws.ReceiveLength() == 3 * BATCH_AFTER * (RECEIVE_CHUNK + 100)
    ws.Close()


@pytest.mark.parametrize("how", ["receive_batch = 0", "blocking"])
def test_batching_can_be_turned_off_and_blocking_sockets_never_batch(qtbot, tcp_pair, how):
    """``receive_batch = 0`` turns batching off; a blocking socket (thread mode) never batches,
    because the mark would make its blocking reads wait for the whole batch."""
    receiver, sender = tcp_pair
    ws = attached(receiver)
    if how == "blocking":
        ws.transport.served_by_worker = True  # a thread-mode connection, read by its worker
    else:
        ws.receive_batch = 0
    for _ in range(2 * BATCH_AFTER):
        feed_big_read(ws, receiver, sender, bytes(RECEIVE_CHUNK))
    assert not batch(ws).active and lowat(receiver) == 1
    if how == "blocking":
        assert batch(ws).after == BATCH_AFTER_MAX
        ws.transport.served_by_worker = False
    ws.Close()


# --- end to end ------------------------------------------------------------------------------

def stream_until_answered(qtbot, peer: socket.socket, receiving: socket.socket,
                          *pieces: bytes) -> None:
    """Send ``pieces`` from ``peer`` in a thread, then wait for the one-byte answer b'!'.

    The event loop runs only once a full read waits in ``receiving``; the handlers hash what
    they read, which keeps them slower than the sender, so the reads that follow are big.
    """
    answered = threading.Event()

    def send() -> None:
        for piece in pieces:
            peer.sendall(piece)
        if peer.recv(1) == b"!":
            answered.set()

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        while pending(receiving) < RECEIVE_CHUNK:
            select.select([], [], [], 0.001)
        qtbot.waitUntil(answered.is_set, timeout=WAIT)
    finally:
        sender.join(10)
        peer.close()


@pytest.fixture
def sink(qapp):
    """A ServerSocket that hashes what each connection sends and replies b'!' once it has
    ``expect[0]`` bytes; also records SO_RCVLOWAT at each OnClientRead."""
    srv = ServerSocket()
    srv.Address, srv.Port = "127.0.0.1", 0
    state = {"expect": 0, "got": 0, "md5": hashlib.md5(), "marks": [], "events": 0}

    def on_read(sender, sock):
        data = sock.ReceiveBytes()
        state["events"] += 1
        state["marks"].append(lowat(os_sock(sock)))
        state["got"] += len(data)
        state["md5"].update(data)
        if state["got"] == state["expect"]:
            sock.SendBuf(b"!")

    srv.OnClientRead.connect(on_read)
    srv.Open()
    yield srv, state
    srv.Close()


def test_a_stream_end_to_end_batches_and_its_tail_is_answered(qtbot, sink):
    """16 MiB in one sendall, then a small tail and a wait for the server's answer: the server
    batched (it saw the mark set), every byte arrived in order, and the tail did not wait for
    a batch that never comes."""
    srv, state = sink
    body = random.Random(2).randbytes(16 << 20)
    tail = b"end of stream"
    state["expect"] = len(body) + len(tail)
    peer = socket.create_connection(("127.0.0.1", srv.Socket.LocalPort), timeout=10)
    qtbot.waitUntil(lambda: srv.Socket.ActiveConnections == 1, timeout=WAIT)
    stream_until_answered(qtbot, peer, os_sock(srv.Socket.Connections[0]), body, tail)
    assert state["md5"].digest() == hashlib.md5(body + tail).digest()
    assert max(state["marks"]) == 256 * KiB
    assert state["events"] < len(body) // RECEIVE_CHUNK  # fewer wake-ups than 64 KiB writes


def test_a_client_downloading_a_stream_batches_too(qtbot, qapp):
    """The same policy on a ClientSocket: a plain-socket server streams 8 MiB and a tail, the
    client answers once it has everything."""
    body = random.Random(3).randbytes(8 << 20) + b"tail"
    seen = {"got": 0, "md5": hashlib.md5(), "marks": []}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        cli = ClientSocket()
        cli.Address, cli.Port = "127.0.0.1", listener.getsockname()[1]

        def on_read(sender, sock):
            data = sock.ReceiveBytes()
            seen["marks"].append(lowat(os_sock(sock)))
            seen["got"] += len(data)
            seen["md5"].update(data)
            if seen["got"] == len(body):
                sock.SendBuf(b"!")

        cli.OnRead.connect(on_read)
        cli.Open()
        listener.settimeout(5)
        peer, _ = listener.accept()
    try:
        qtbot.waitUntil(lambda: cli.Active, timeout=WAIT)
        stream_until_answered(qtbot, peer, os_sock(cli.Socket), body)
    finally:
        cli.Close()
    assert seen["md5"].digest() == hashlib.md5(body).digest()
    assert max(seen["marks"]) == 256 * KiB


@st.composite
def bursts(draw):
    """Write sizes from 1 byte to 300 KiB, some followed by a pause until the server has all."""
    return draw(st.lists(st.tuples(st.integers(1, 300 * KiB), st.booleans()),
                         min_size=1, max_size=12))


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=bursts(), seed=st.integers(0, 2**32))
def test_any_mix_of_bursts_and_pauses_arrives_whole(qtbot, sink, plan, seed):
    srv, state = sink
    rng = random.Random(seed)
    data = [rng.randbytes(n) for n, _ in plan]
    state.update(expect=-1, got=0, md5=hashlib.md5())
    with socket.create_connection(("127.0.0.1", srv.Socket.LocalPort), timeout=10) as peer:
        sent = 0
        for chunk, (_, pause) in zip(data, plan):
            peer.sendall(chunk)
            sent += len(chunk)
            if pause:
                qtbot.waitUntil(lambda: state["got"] == sent, timeout=WAIT)
        qtbot.waitUntil(lambda: state["got"] == sent, timeout=WAIT)
    assert state["md5"].digest() == hashlib.md5(b"".join(data)).digest()
