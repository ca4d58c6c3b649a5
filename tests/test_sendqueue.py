"""The send queue without sockets: a fake ``send`` that records what it was given.

The fake takes at most ``take`` bytes per call (a schedule of sizes, 0 meaning "would block")
and raises BlockingIOError when its capacity is used up, so every path of the one flush loop
(direct sends, gathered small chunks, streams, the SHUTDOWN and DROP markers, the budget) is
driven without I/O, and the bytes that come out are compared with the bytes that went in.
"""
from __future__ import annotations

import io
import random
import sys
from typing import Any, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sockcomp._sendqueue import (
    BLOCKED,
    DRAINED,
    DROP,
    DROP_REACHED,
    FLUSH_BUDGET,
    GATHER_BELOW,
    GATHER_MAX,
    SHUTDOWN,
    STREAM_CHUNK,
    QueuedStream,
    SendQueue,
)


class FakeSocket:
    """A non-blocking socket's send side, in memory.

    ``take``: a schedule of the most bytes each call accepts, cycled (None: everything; 0:
    raise BlockingIOError). ``capacity``: bytes it accepts in all before it is "full" (None:
    no end); raise ``capacity`` (or set ``full``) to let it drain.
    """

    def __init__(self, take: Optional[list[int]] = None,
                 capacity: Optional[int] = None) -> None:
        self.take = take
        self.capacity = capacity
        self.full = False
        self.out = bytearray()
        self.calls: list[int] = []      # length offered per call (blocked calls included)
        self.fins: list[int] = []       # len(out) at each shutdown_write()
        self._turn = 0
        self._idle = 0                  # calls in a row that offered nothing

    def send(self, data: Any) -> int:
        offered = len(data)
        self.calls.append(offered)
        self._idle = 0 if offered else self._idle + 1
        if self._idle > 100:  # fail now rather than hang until the pytest timeout
            raise AssertionError("flush keeps offering nothing: it spins")
        if self.full:
            raise BlockingIOError
        n = offered
        if self.take is not None:
            n = min(n, self.take[self._turn % len(self.take)])
            self._turn += 1
        if self.capacity is not None:
            n = min(n, self.capacity - len(self.out))
        if n <= 0 < offered:
            raise BlockingIOError
        self.out += bytes(memoryview(data)[:n])
        return n

    def shutdown_write(self) -> None:
        self.fins.append(len(self.out))


class Reader:
    """A file object that gives ``data`` in pieces, then raises ``fail`` (when given)."""

    def __init__(self, data: bytes = b"", fail: Optional[BaseException] = None,
                 close_fails: bool = False) -> None:
        self.data = data
        self.fail = fail
        self.close_fails = close_fails
        self.closed = 0
        self.reads = 0

    def read(self, size: int) -> bytes:
        self.reads += 1
        if not self.data and self.fail is not None:
            raise self.fail
        piece, self.data = self.data[:size], self.data[size:]
        return piece

    def close(self) -> None:
        self.closed += 1
        if self.close_fails:
            raise OSError("close failed")


def put(queue: SendQueue, data: Any) -> int:
    """What a send method does with its argument."""
    return queue.accept(data, memoryview(data))


def drain(queue: SendQueue, sock: FakeSocket, stream_failed: Any = None,
          budget: int = FLUSH_BUDGET, max_turns: int = 1_000_000) -> int:
    """Flush until the queue is drained or a DROP comes up (the fake un-blocks every turn)."""
    for _ in range(max_turns):
        result = queue.flush(sock.send, sock.shutdown_write, stream_failed, budget)
        check_counts(queue)
        if result != BLOCKED:
            return result
        sock.full = False
        if sock.capacity is not None:
            sock.capacity = len(sock.out) + 100_000
    raise AssertionError("the queue never drained")


def chunk_bytes(queue: SendQueue) -> int:
    return sum(len(item) for item in queue.items
               if type(item) is not QueuedStream and item is not SHUTDOWN and item is not DROP)


def check_counts(queue: SendQueue) -> None:
    assert queue.queued == chunk_bytes(queue)
    assert queue.streams == sum(type(item) is QueuedStream for item in queue.items)
    assert queue.completed + len(queue.items) == queue.appended


def data_of(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


# -- order ------------------------------------------------------------------------------------

def test_order_is_kept_across_chunks_streams_and_shutdown() -> None:
    queue = SendQueue()
    a, b, c = data_of(1, 100), data_of(2, 200_000), data_of(3, 30_000)
    s1, s2 = data_of(4, 150_000), data_of(5, 10)
    put(queue, a)
    queue.append_stream(QueuedStream(io.BytesIO(s1)), drop=False)
    put(queue, b)
    put(queue, b"x")
    queue.append_stream(QueuedStream(io.BytesIO(s2)), drop=False)
    put(queue, c)
    queue.append_shutdown()
    assert queue.shutdown_queued
    check_counts(queue)
    sock = FakeSocket(take=[7, 70_000, 1, 65_536, 3000])
    assert drain(queue, sock) == DRAINED
    assert bytes(sock.out) == a + s1 + b + b"x" + s2 + c
    assert sock.fins == [len(sock.out)]
    assert not queue and queue.completed == queue.appended == 7
    # a flush of an empty queue does nothing, and FIN is not sent twice
    assert queue.flush(sock.send, sock.shutdown_write) == DRAINED
    assert sock.fins == [len(sock.out)]


def test_the_rest_of_a_direct_send_goes_before_what_others_queued_meanwhile() -> None:
    """prepend_rest: the component's thread sent part of a chunk while the queue was empty;
    another thread queued since. The rest of the chunk goes first, every count stays right."""
    queue = SendQueue()
    queue.low_water = 10
    assert queue.write_notice_due()
    put(queue, b"other thread")
    queue.append_shutdown()
    queue.prepend_rest(memoryview(b"direct send")[7:])
    queue.prepend_rest(b"")  # nothing left over: nothing queued
    check_counts(queue)
    assert queue.queued == len(b"send") + len(b"other thread")
    assert not queue.write_notice_due()  # above low water again: due once more when drained
    sock = FakeSocket(take=[3])
    assert drain(queue, sock) == DRAINED
    assert bytes(sock.out) == b"send" + b"other thread"
    assert sock.fins == [len(sock.out)]
    assert queue.write_notice_due()


def test_shutdown_waits_for_the_bytes_before_it() -> None:
    queue = SendQueue()
    before = data_of(6, 1000)
    put(queue, before)
    queue.append_shutdown()
    sock = FakeSocket(take=[7])
    turns = 0
    while queue.flush(sock.send, sock.shutdown_write) == BLOCKED:
        turns += 1
        assert sock.fins == []  # not while bytes before it are still queued
    assert turns >= 1000 // 7
    assert sock.fins == [1000]
    assert bytes(sock.out) == before


def test_shutdown_between_chunks_comes_exactly_at_its_place() -> None:
    queue = SendQueue()
    put(queue, b"a" * 10)
    queue.append_shutdown()
    put(queue, b"b" * 10)  # only the order matters here, not what TCP would do with it
    sock = FakeSocket()
    assert drain(queue, sock) == DRAINED
    assert sock.fins == [10]
    assert bytes(sock.out) == b"a" * 10 + b"b" * 10


def test_drop_ends_the_flush_after_what_precedes_it() -> None:
    queue = SendQueue()
    head, body = data_of(7, 5000), data_of(8, 200_000)
    put(queue, head)
    queue.append_stream(QueuedStream(io.BytesIO(body)), drop=True)
    assert queue.dropping
    put(queue, b"after the drop")
    sock = FakeSocket(take=[4096, 0, 50_000])
    results = []
    while True:
        result = queue.flush(sock.send, sock.shutdown_write)
        results.append(result)
        if result != BLOCKED:
            break
        assert len(results) < 1000
    assert results[-1] == DROP_REACHED
    assert BLOCKED in results[:-1]
    assert bytes(sock.out) == head + body
    assert list(queue.items) == [b"after the drop"]  # not sent, still queued
    assert sock.fins == []


def test_drop_right_away() -> None:
    queue = SendQueue()
    queue.append_stream(QueuedStream(io.BytesIO(b"")), drop=True)
    sock = FakeSocket()
    assert queue.flush(sock.send, sock.shutdown_write) == DROP_REACHED
    assert sock.out == b"" and not queue
    assert DROP not in queue.items and queue.completed == queue.appended == 2


# -- partial sends ------------------------------------------------------------------------------

item_spec = st.one_of(
    # empty chunks: see test_empty_chunks_are_drained (kept apart, as they can spin)
    st.tuples(st.just("chunk"), st.integers(1, 40_000)),
    st.tuples(st.just("small"), st.integers(1, 300)),
    st.tuples(st.just("stream"), st.integers(0, 140_000)),
)


def fill(queue: SendQueue, specs: list[tuple[str, int]], seed: int) -> bytes:
    expected = bytearray()
    for i, (kind, size) in enumerate(specs):
        data = data_of(seed + i, size)
        expected += data
        if kind == "stream":
            queue.append_stream(QueuedStream(io.BytesIO(data)), drop=False)
        elif i % 3 == 0:
            assert put(queue, bytearray(data)) == size
        else:
            assert put(queue, data) == size
        check_counts(queue)
    return bytes(expected)


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 300), max_size=20), seed=st.integers(0, 2**32))
def test_seven_bytes_at_a_time_lose_and_duplicate_nothing(sizes: list[int], seed: int) -> None:
    queue = SendQueue()
    expected = fill(queue, [("chunk", n) for n in sizes], seed)
    sock = FakeSocket(take=[7])
    assert drain(queue, sock) == DRAINED
    assert bytes(sock.out) == expected
    assert len(sock.calls) >= len(expected) // 7
    assert queue.queued == 0 and queue.completed == queue.appended


@settings(max_examples=80, deadline=None)
@given(specs=st.lists(item_spec, max_size=12),
       takes=st.lists(st.one_of(st.just(0), st.integers(1, 100),
                                st.integers(1000, 100_000)), min_size=1, max_size=8),
       seed=st.integers(0, 2**32))
def test_any_send_sizes_lose_and_duplicate_nothing(specs: list[tuple[str, int]],
                                                   takes: list[int], seed: int) -> None:
    # as many big takes as small ones: every path is hit, the number of calls stays small
    takes = [t for pair in zip(takes, [100_000] * len(takes)) for t in pair]
    queue = SendQueue()
    expected = fill(queue, specs, seed)
    queue.append_shutdown()
    sock = FakeSocket(take=takes)
    assert drain(queue, sock) == DRAINED
    assert bytes(sock.out) == expected
    assert sock.fins == [len(expected)]
    assert queue.queued == 0 and queue.streams == 0


def test_an_empty_chunk_is_drained() -> None:
    queue = SendQueue()
    queue.append_all(b"")
    put(queue, b"abc")
    queue.append_all(b"")
    sock = FakeSocket()
    assert queue.flush(sock.send, sock.shutdown_write) == DRAINED
    assert bytes(sock.out) == b"abc"
    assert not queue and queue.completed == queue.appended  # an empty chunk is not even queued


@pytest.mark.parametrize("end", ["nothing", "shutdown", "stream"])
def test_empty_chunks_are_drained(end: str) -> None:
    # Two empty chunks with nothing gatherable after them: _gather() joins them into an empty
    # bytearray, send() takes 0 bytes of it (as socket.send(b"") does), _consume(0) removes
    # nothing, and the loop gathers the same two chunks again, forever (the fake raises
    # after 100 such calls instead of hanging). The public send methods never queue an empty
    # buffer, but accept() and append_all() take one without complaint.
    queue = SendQueue()
    assert put(queue, b"") == 0
    queue.append_all(b"")
    if end == "shutdown":
        queue.append_shutdown()
    elif end == "stream":
        queue.append_stream(QueuedStream(io.BytesIO(b"after")), drop=False)
    sock = FakeSocket()
    assert queue.flush(sock.send, sock.shutdown_write) == DRAINED
    assert bytes(sock.out) == (b"after" if end == "stream" else b"")
    assert sock.fins == ([0] if end == "shutdown" else [])
    assert not queue and queue.completed == queue.appended


def test_blocking_io_error_keeps_everything() -> None:
    queue = SendQueue()
    data = [data_of(i, n) for i, n in enumerate([10, 20_000, 5, 5, 70_000])]
    for piece in data:
        put(queue, piece)
    queue.append_stream(QueuedStream(io.BytesIO(b"stream")), drop=False)
    sock = FakeSocket(capacity=20_003)
    assert queue.flush(sock.send, sock.shutdown_write) == BLOCKED
    assert len(sock.out) == 20_003
    sock.full = True
    assert queue.flush(sock.send, sock.shutdown_write) == BLOCKED
    check_counts(queue)
    assert drain(queue, sock) == DRAINED
    assert bytes(sock.out) == b"".join(data) + b"stream"


def test_other_send_errors_propagate_and_keep_the_item() -> None:
    queue = SendQueue()
    put(queue, b"abc" * 10_000)

    def reset(data: Any) -> int:
        raise ConnectionResetError(104, "reset")

    with pytest.raises(ConnectionResetError):
        queue.flush(reset, lambda: None)
    assert queue.queued == 30_000


# -- accept and the limit -----------------------------------------------------------------------

def test_room_and_accept_with_a_limit() -> None:
    queue = SendQueue()
    assert queue.room() == -1
    queue.limit = 100
    assert queue.room() == 100
    assert put(queue, b"a" * 60) == 60
    assert queue.room() == 40
    assert put(queue, b"b" * 60) == 40     # the part that fits
    assert queue.queued == 100 and queue.room() == 0
    assert put(queue, b"c") == -1          # full
    assert put(queue, bytearray(b"c")) == -1
    assert queue.queued == 100
    sock = FakeSocket()
    assert drain(queue, sock) == DRAINED
    assert bytes(sock.out) == b"a" * 60 + b"b" * 40
    assert put(queue, b"d" * 100) == 100   # room again once sent


def test_append_all_ignores_the_limit_and_room_stays_at_zero() -> None:
    queue = SendQueue()
    queue.limit = 10
    queue.append_all(b"x" * 50)
    assert queue.queued == 50
    assert queue.room() == 0
    assert put(queue, b"y") == -1


def test_accepting_all_of_a_bytes_keeps_a_reference_not_a_copy() -> None:
    queue = SendQueue()
    queue.limit = 4096
    data = data_of(9, 4096)
    view = memoryview(data)
    before = sys.getrefcount(data)
    assert queue.accept(data, view) == 4096
    assert sys.getrefcount(data) == before + 1
    assert queue.items[0] is data
    assert queue.queued == 4096


def test_a_partly_accepted_bytes_is_copied() -> None:
    queue = SendQueue()
    queue.limit = 4096
    data = data_of(10, 200 * 1024)
    view = memoryview(data)
    before = sys.getrefcount(data)
    assert queue.accept(data, view) == 4096
    assert sys.getrefcount(data) == before   # the 200 KB object is not kept alive
    assert queue.queued == 4096
    assert all(type(item) is bytes and len(item) == 4096 for item in queue.items)
    del view
    sock = FakeSocket()
    assert drain(queue, sock) == DRAINED
    assert bytes(sock.out) == data[:4096]


def test_a_slice_of_a_bytes_is_copied() -> None:
    queue = SendQueue()
    data = data_of(11, 1000)
    view = memoryview(data)[100:]
    before = sys.getrefcount(data)
    assert queue.accept(data, view) == 900
    assert sys.getrefcount(data) == before
    sock = FakeSocket()
    drain(queue, sock)
    assert bytes(sock.out) == data[100:]


@pytest.mark.parametrize("limit", [0, 4096])
def test_a_bytearray_is_copied(limit: int) -> None:
    queue = SendQueue()
    queue.limit = limit
    data = bytearray(b"original" * 100)
    view = memoryview(data)
    before = sys.getrefcount(data)
    assert queue.accept(data, view) == 800
    assert sys.getrefcount(data) == before
    data[:8] = b"MUTATED!"   # the caller reuses its buffer
    del view
    data.clear()
    sock = FakeSocket()
    assert drain(queue, sock) == DRAINED
    assert bytes(sock.out) == b"original" * 100


def test_a_partly_accepted_bytearray_is_copied() -> None:
    queue = SendQueue()
    queue.limit = 8
    data = bytearray(b"0123456789")
    assert put(queue, data) == 8
    data[:] = b"XXXXXXXXXX"
    sock = FakeSocket()
    drain(queue, sock)
    assert bytes(sock.out) == b"01234567"


# -- queued and write notices -------------------------------------------------------------------

def test_queued_counts_chunk_bytes_only() -> None:
    queue = SendQueue()
    put(queue, b"a" * 10)
    queue.append_stream(QueuedStream(io.BytesIO(b"s" * 1000)), drop=False)
    queue.append_shutdown()
    queue.append_all(b"b" * 5)
    assert queue.queued == 15
    assert queue.streams == 1
    sock = FakeSocket(take=[12])
    assert queue.flush(sock.send, sock.shutdown_write) == BLOCKED
    assert bytes(sock.out) == b"a" * 10 + b"s" * 12
    assert queue.queued == 5 and queue.streams == 1   # stream bytes never counted
    drain(queue, sock)
    assert queue.queued == 0 and queue.streams == 0


def test_empty_queue_is_always_due() -> None:
    queue = SendQueue()
    assert queue.write_notice_due()
    assert queue.write_notice_due()
    queue.low_water = 100
    assert queue.write_notice_due()


def test_write_notice_once_per_rise_above_low_water() -> None:
    queue = SendQueue()
    queue.low_water = 100
    put(queue, b"a" * 50)
    assert queue.write_notice_due()       # at or below low water: due once
    assert not queue.write_notice_due()
    put(queue, b"b" * 30)                 # 80: still below, no new rise
    assert not queue.write_notice_due()
    put(queue, b"c" * 100)                # 180: above low water
    assert not queue.write_notice_due()
    sock = FakeSocket(take=[79])
    queue.flush(sock.send, sock.shutdown_write)   # 101 left
    assert queue.queued == 101
    assert not queue.write_notice_due()
    queue.flush(sock.send, sock.shutdown_write)   # 22 left
    assert queue.queued == 22
    assert queue.write_notice_due()
    assert not queue.write_notice_due()
    drain(queue, sock)
    assert queue.write_notice_due()       # empty: always
    assert queue.write_notice_due()


def test_write_notice_with_low_water_zero() -> None:
    queue = SendQueue()
    put(queue, b"x" * 10)
    assert not queue.write_notice_due()
    sock = FakeSocket(take=[7])
    queue.flush(sock.send, sock.shutdown_write)
    assert not queue.write_notice_due()
    queue.flush(sock.send, sock.shutdown_write)
    assert queue.write_notice_due()


def test_write_notice_waits_for_streams() -> None:
    queue = SendQueue()
    queue.low_water = 1000
    queue.append_stream(QueuedStream(io.BytesIO(b"s" * 100)), drop=False)
    assert queue.queued == 0
    assert not queue.write_notice_due()
    sock = FakeSocket(take=[60])
    queue.flush(sock.send, sock.shutdown_write)
    assert not queue.write_notice_due()
    assert drain(queue, sock) == DRAINED
    assert queue.write_notice_due()


def test_write_notice_for_a_marker_only_queue_is_given_once() -> None:
    queue = SendQueue()
    queue.low_water = 10
    put(queue, b"x" * 11)
    queue.append_shutdown()
    assert not queue.write_notice_due()
    sock = FakeSocket(take=[11])
    # the chunk goes, then FIN (the marker is not a byte): drained
    assert queue.flush(sock.send, sock.shutdown_write) == DRAINED
    assert queue.write_notice_due()


# -- the flush budget and gathering -------------------------------------------------------------

def test_budget_bounds_one_flush() -> None:
    queue = SendQueue()
    pieces = [data_of(20 + i, 100_000) for i in range(10)]
    for piece in pieces:
        put(queue, piece)
    sock = FakeSocket()
    assert queue.flush(sock.send, sock.shutdown_write, budget=250_000) == BLOCKED
    assert 250_000 <= len(sock.out) < 250_000 + 100_000
    results = [queue.flush(sock.send, sock.shutdown_write, budget=250_000) for _ in range(3)]
    assert results == [BLOCKED, BLOCKED, DRAINED]
    assert bytes(sock.out) == b"".join(pieces)


def test_default_budget_is_flush_budget() -> None:
    queue = SendQueue()
    piece = data_of(30, 200_000)
    for _ in range(2 * FLUSH_BUDGET // len(piece) + 1):
        put(queue, piece)
    sock = FakeSocket()
    assert queue.flush(sock.send, sock.shutdown_write) == BLOCKED
    assert FLUSH_BUDGET <= len(sock.out) < FLUSH_BUDGET + len(piece)


def test_budget_applies_to_streams() -> None:
    queue = SendQueue()
    body = data_of(31, 10 * STREAM_CHUNK)
    queue.append_stream(QueuedStream(io.BytesIO(body)), drop=False)
    sock = FakeSocket()
    assert queue.flush(sock.send, sock.shutdown_write, budget=100_000) == BLOCKED
    assert 100_000 <= len(sock.out) < 100_000 + STREAM_CHUNK
    assert drain(queue, sock, budget=100_000) == DRAINED
    assert bytes(sock.out) == body


def test_small_chunks_are_gathered() -> None:
    queue = SendQueue()
    records = [data_of(i, 10) for i in range(1000)]
    for record in records:
        put(queue, record)
    sock = FakeSocket()
    assert queue.flush(sock.send, sock.shutdown_write) == DRAINED
    assert len(sock.calls) <= 10
    assert bytes(sock.out) == b"".join(records)
    assert queue.completed == 1000


def test_gathered_sends_stay_under_gather_max() -> None:
    queue = SendQueue()
    records = [data_of(i, 1000 + i % 7) for i in range(300)]
    for record in records:
        put(queue, record)
    sock = FakeSocket()
    assert drain(queue, sock) == DRAINED
    assert bytes(sock.out) == b"".join(records)
    assert max(sock.calls) <= GATHER_MAX
    assert len(sock.calls) <= 2 * sum(map(len, records)) // GATHER_MAX + 2


def test_gathering_stops_at_markers_and_streams() -> None:
    queue = SendQueue()
    put(queue, b"a" * 10)
    put(queue, b"b" * 10)
    queue.append_shutdown()
    put(queue, b"c" * 10)
    queue.append_stream(QueuedStream(io.BytesIO(b"s" * 10)), drop=False)
    put(queue, b"d" * 10)
    sock = FakeSocket()
    assert drain(queue, sock) == DRAINED
    assert sock.fins == [20]
    assert bytes(sock.out) == b"a" * 10 + b"b" * 10 + b"c" * 10 + b"s" * 10 + b"d" * 10


def test_a_big_chunk_is_sent_whole() -> None:
    queue = SendQueue()
    big = data_of(40, GATHER_BELOW * 4)
    put(queue, big)
    put(queue, b"tail")
    sock = FakeSocket()
    drain(queue, sock)
    assert sock.calls[0] == len(big)
    assert bytes(sock.out) == big + b"tail"


# -- blocking writers: append_all, sent_through, withdraw ---------------------------------------

def test_append_all_and_sent_through() -> None:
    queue = SendQueue()
    first = queue.append_all(b"a" * 100)
    second = queue.append_all(b"b" * 100)
    assert second == first + 1
    assert not queue.sent_through(first) and not queue.sent_through(second)
    sock = FakeSocket(take=[60])
    queue.flush(sock.send, sock.shutdown_write)       # 60
    assert not queue.sent_through(first)
    queue.flush(sock.send, sock.shutdown_write)       # 120: the first is out
    assert queue.sent_through(first) and not queue.sent_through(second)
    queue.flush(sock.send, sock.shutdown_write)       # 180
    assert not queue.sent_through(second)
    assert queue.flush(sock.send, sock.shutdown_write) == DRAINED
    assert queue.sent_through(second)
    assert bytes(sock.out) == b"a" * 100 + b"b" * 100


def test_item_numbers_count_streams_and_markers() -> None:
    queue = SendQueue()
    queue.append_stream(QueuedStream(io.BytesIO(b"s")), drop=True)   # stream + DROP
    queue.append_shutdown()
    number = queue.append_all(b"x")
    assert number == 4
    sock = FakeSocket()
    assert queue.flush(sock.send, sock.shutdown_write) == DROP_REACHED
    assert queue.sent_through(2) and not queue.sent_through(number)


def test_withdraw_the_last_item_partly_sent() -> None:
    queue = SendQueue()
    number = queue.append_all(b"w" * 100)
    sock = FakeSocket(take=[30])
    assert queue.flush(sock.send, sock.shutdown_write) == BLOCKED
    assert queue.withdraw(number, 100) == 30
    assert not queue and queue.queued == 0
    assert queue.appended == number - 1
    check_counts(queue)
    assert queue.flush(sock.send, sock.shutdown_write) == DRAINED
    assert bytes(sock.out) == b"w" * 30


def test_withdraw_an_item_nothing_of_which_was_sent() -> None:
    queue = SendQueue()
    put(queue, b"keep")
    number = queue.append_all(b"w" * 100)
    assert queue.withdraw(number, 100) == 0
    assert list(queue.items) == [b"keep"] and queue.queued == 4
    sock = FakeSocket()
    drain(queue, sock)
    assert bytes(sock.out) == b"keep"


def test_withdraw_after_a_gathered_partial_send() -> None:
    queue = SendQueue()
    put(queue, b"p" * 10)
    number = queue.append_all(b"w" * 10)
    sock = FakeSocket(take=[15])
    assert queue.flush(sock.send, sock.shutdown_write) == BLOCKED
    assert queue.withdraw(number, 10) == 5
    assert not queue and queue.queued == 0
    assert bytes(sock.out) == b"p" * 10 + b"w" * 5


def test_withdraw_leaves_an_item_that_another_follows() -> None:
    queue = SendQueue()
    number = queue.append_all(b"w" * 100)
    put(queue, b"next")
    sock = FakeSocket(take=[30])
    queue.flush(sock.send, sock.shutdown_write)
    assert queue.withdraw(number, 100) == 100    # counts as sent: it will go out
    assert queue.queued == 74
    drain(queue, sock)
    assert bytes(sock.out) == b"w" * 100 + b"next"


def test_withdraw_an_item_already_sent() -> None:
    queue = SendQueue()
    number = queue.append_all(b"w" * 100)
    sock = FakeSocket()
    drain(queue, sock)
    assert queue.withdraw(number, 100) == 100
    assert queue.appended == number


# -- streams ----------------------------------------------------------------------------------

def test_a_finished_stream_is_closed() -> None:
    queue = SendQueue()
    reader = Reader(b"r" * 1000)
    queue.append_stream(QueuedStream(reader), drop=False)
    sock = FakeSocket(take=[300])
    while queue.flush(sock.send, sock.shutdown_write) == BLOCKED:
        assert reader.closed == 0
    assert reader.closed == 1
    assert bytes(sock.out) == b"r" * 1000


def test_a_stream_giving_bytearrays() -> None:
    class ArrayReader(Reader):
        def read(self, size: int) -> bytearray:  # type: ignore[override]
            return bytearray(super().read(size))

    queue = SendQueue()
    queue.append_stream(QueuedStream(ArrayReader(data_of(50, 100_000))), drop=False)
    sock = FakeSocket(take=[9999])
    drain(queue, sock)
    assert bytes(sock.out) == data_of(50, 100_000)


def test_a_failing_stream_is_dropped_and_reported() -> None:
    queue = SendQueue()
    error = OSError(5, "disk gone")
    reader = Reader(b"part", fail=error)
    put(queue, b"before")
    queue.append_stream(QueuedStream(reader), drop=False)
    put(queue, b"after")
    queue.append_shutdown()
    failed: list[BaseException] = []
    sock = FakeSocket()
    assert drain(queue, sock, stream_failed=failed.append) == DRAINED
    assert failed == [error]
    assert reader.closed == 1
    assert bytes(sock.out) == b"before" + b"part" + b"after"
    assert sock.fins == [len(sock.out)]
    assert queue.streams == 0 and queue.write_notice_due()


def test_a_failing_stream_goes_to_the_hook_by_default(hook: list[BaseException]) -> None:
    queue = SendQueue()
    error = ValueError("bad read")
    queue.append_stream(QueuedStream(Reader(fail=error)), drop=False)
    put(queue, b"still sent")
    sock = FakeSocket()
    assert drain(queue, sock) == DRAINED
    assert hook == [error]
    assert bytes(sock.out) == b"still sent"


def test_discard_closes_queued_streams() -> None:
    queue = SendQueue()
    readers = [Reader(b"a" * 200_000), Reader(b"b")]
    queue.append_stream(QueuedStream(readers[0]), drop=False)
    put(queue, b"x" * 100)
    queue.append_stream(QueuedStream(readers[1]), drop=True)
    number = queue.append_all(b"y")
    sock = FakeSocket(take=[1000])
    queue.flush(sock.send, sock.shutdown_write)     # the first stream is under way
    queue.discard()
    assert [r.closed for r in readers] == [1, 1]
    assert not queue
    assert queue.queued == 0 and queue.streams == 0
    assert queue.sent_through(number)
    assert queue.write_notice_due()
    check_counts(queue)
    assert queue.flush(sock.send, sock.shutdown_write) == DRAINED
    assert len(sock.out) == 1000


def test_a_stream_whose_close_fails_is_reported(hook: list[BaseException]) -> None:
    queue = SendQueue()
    queue.append_stream(QueuedStream(Reader(b"a", close_fails=True)), drop=False)
    queue.append_stream(QueuedStream(Reader(b"b", close_fails=True)), drop=False)
    sock = FakeSocket()
    assert drain(queue, sock) == DRAINED   # the first close failing does not stop the second
    assert bytes(sock.out) == b"ab"
    assert len(hook) == 2 and all(isinstance(exc, OSError) for exc in hook)
