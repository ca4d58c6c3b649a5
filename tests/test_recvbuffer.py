"""The receive buffer without sockets: the read-event rule, take(), and incremental decoding.

The buffer is fed the way a transport feeds it (``append`` per kernel read), read the way the
application reads it (``take``, ``decode``, then ``consumed``), and compared with a plain
model: the bytes not yet returned, decoded by a fresh incremental decoder.
"""
from __future__ import annotations

import codecs
from typing import Optional

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sockcomp._recvbuffer import RECEIVE_HIGH_WATER, ReceiveBuffer

SAMPLE = "a\u00e9\u20ac\U0001f600z \u00fc\u4e2d\U00010348!"   # 1, 2, 3 and 4-byte characters
SAMPLE_BYTES = SAMPLE.encode("utf-8")
EURO = "\u20ac".encode("utf-8")   # e2 82 ac


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    pieces.append(data[last:])
    return [piece for piece in pieces if piece]   # a kernel read never gives b""


def held_after(buffer: ReceiveBuffer) -> int:
    """Bytes kept by the decoder (pending, but not in ``length``)."""
    return buffer.pending - buffer.length


# -- the read-event rule ------------------------------------------------------------------------

def test_only_the_first_arrival_since_the_last_read_is_an_event() -> None:
    buffer = ReceiveBuffer()
    assert buffer.append(b"one")
    assert not buffer.append(b"two")
    assert not buffer.append(b"three")
    assert buffer.take() == b"onetwothree"
    assert not buffer.consumed()          # all read: nothing more is due
    assert not buffer.renotify()
    assert buffer.append(b"four")         # the first since the last read
    assert not buffer.append(b"five")


def test_bytes_left_after_a_read_give_one_more_event() -> None:
    buffer = ReceiveBuffer()
    assert buffer.append(b"0123456789")
    assert buffer.take(4) == b"0123"
    assert buffer.consumed()              # bytes remain: another event is due
    assert buffer.renotify()              # that event, on a later turn
    assert not buffer.renotify()          # once
    assert not buffer.append(b"x")        # reported and not read yet
    assert buffer.take(1) == b"4"
    assert buffer.consumed()
    assert buffer.append(b"more")         # an arrival before the promised event is the event
    assert not buffer.renotify()          # ... and there is no second one
    assert buffer.take() == b"56789xmore"
    assert not buffer.consumed()
    assert not buffer.renotify()


def test_renotify_after_consumed_without_new_bytes() -> None:
    buffer = ReceiveBuffer()
    buffer.append(b"abc")
    buffer.take(1)
    assert buffer.consumed()
    assert buffer.renotify()
    buffer.take(1)
    assert buffer.consumed()
    assert buffer.renotify()
    buffer.take(1)
    assert not buffer.consumed()
    assert not buffer.renotify()


def test_renotify_is_not_due_while_an_event_is_outstanding() -> None:
    buffer = ReceiveBuffer()
    assert not buffer.renotify()          # empty
    buffer.append(b"abc")                 # reported by append itself
    assert not buffer.renotify()
    assert not buffer.renotify()


def test_a_read_that_takes_nothing_still_rearms() -> None:
    buffer = ReceiveBuffer()
    buffer.append(b"abc")
    assert buffer.take(0) == b""
    assert buffer.consumed()
    assert buffer.renotify()


def test_a_held_character_is_not_new_data() -> None:
    buffer = ReceiveBuffer()
    assert buffer.append(b"x" + EURO[:2])
    assert buffer.decode("utf-8") == "x"
    assert buffer.pending == 2 and buffer.length == 0
    assert not buffer.consumed()          # only a partial character: no event due
    assert not buffer.renotify()
    assert buffer.append(EURO[2:])        # the rest arrives: an event
    assert buffer.decode("utf-8") == "\u20ac"
    assert not buffer.consumed()


def test_clear_forgets_everything() -> None:
    buffer = ReceiveBuffer()
    buffer.append(b"abc" + EURO[:1])
    buffer.decode("utf-8")
    buffer.append(b"def")
    buffer.eof = True
    buffer.clear()
    assert (buffer.pending, buffer.length, buffer.eof) == (0, 0, False)
    assert buffer.take() == b""
    assert buffer.append(b"new")          # the event rule starts over
    assert buffer.decode("utf-8") == "new"


# -- take -------------------------------------------------------------------------------------

def test_take_across_chunk_boundaries() -> None:
    buffer = ReceiveBuffer()
    for piece in (b"ab", b"cde", b"f", b"ghij"):
        buffer.append(piece)
    assert buffer.length == 10
    assert buffer.take(3) == b"abc"
    assert buffer.take(2) == b"de"
    assert buffer.take(1) == b"f"
    assert buffer.take(5) == b"ghij"      # more than there is: what there is
    assert buffer.take(5) == b""
    assert buffer.take() == b""
    assert buffer.length == 0 and buffer.pending == 0


take_size = st.one_of(st.none(), st.integers(0, 3), st.integers(0, 400))


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=1000), cuts=st.lists(st.integers(0, 10_000), max_size=30),
       sizes=st.lists(take_size, max_size=30), interleave=st.integers(1, 5))
def test_take_returns_the_stream_in_order(data: bytes, cuts: list[int],
                                          sizes: list[Optional[int]],
                                          interleave: int) -> None:
    buffer = ReceiveBuffer()
    pieces = split_at(data, cuts)
    out = bytearray()
    arrived = 0
    sizes_left = list(sizes)
    for i, piece in enumerate(pieces):
        buffer.append(piece)
        arrived += len(piece)
        if i % interleave == 0 and sizes_left:
            size = sizes_left.pop()
            before = buffer.length
            got = buffer.take(size)
            expected_len = before if size is None else min(size, before)
            assert type(got) is bytes and len(got) == expected_len
            out += got
        assert buffer.length == buffer.pending == arrived - len(out)
    out += buffer.take()
    assert bytes(out) == data
    assert buffer.length == 0


def test_full_at_high_water() -> None:
    buffer = ReceiveBuffer(high_water=10)
    buffer.append(b"123456789")
    assert not buffer.full
    buffer.append(b"0")
    assert buffer.full
    buffer.append(b"past it")
    assert buffer.full
    buffer.take(7)
    assert buffer.full                    # 10 left: at the mark
    buffer.take(1)
    assert not buffer.full                # 9 left
    buffer.take()
    assert not buffer.full


def test_default_high_water() -> None:
    buffer = ReceiveBuffer()
    assert buffer.high_water == RECEIVE_HIGH_WATER
    buffer.append(bytes(RECEIVE_HIGH_WATER - 1))
    assert not buffer.full
    buffer.append(b"x")
    assert buffer.full


def test_held_bytes_do_not_count_toward_full() -> None:
    buffer = ReceiveBuffer(high_water=3)
    buffer.append(b"a" + EURO[:2])
    assert buffer.full
    assert buffer.decode("utf-8") == "a"
    assert not buffer.full and buffer.pending == 2


# -- decode -----------------------------------------------------------------------------------

def test_every_split_point_of_a_multibyte_text() -> None:
    for cut in range(len(SAMPLE_BYTES) + 1):
        buffer = ReceiveBuffer()
        first, second = SAMPLE_BYTES[:cut], SAMPLE_BYTES[cut:]
        buffer.append(first)
        text = buffer.decode("utf-8")
        assert SAMPLE.startswith(text), cut
        assert len(text.encode("utf-8")) + held_after(buffer) == cut, cut
        assert buffer.length == 0
        buffer.append(second)
        assert text + buffer.decode("utf-8") == SAMPLE, cut
        assert buffer.pending == 0, cut


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=60), cuts=st.lists(st.integers(0, 10_000), max_size=40))
def test_any_split_decodes_to_the_same_text(text: str, cuts: list[int]) -> None:
    data = text.encode("utf-8")
    buffer = ReceiveBuffer()
    decoded = ""
    arrived = 0
    for piece in split_at(data, cuts):
        buffer.append(piece)
        arrived += len(piece)
        decoded += buffer.decode("utf-8")
        held = held_after(buffer)
        assert buffer.length == 0
        assert 0 <= held < 4      # at most an incomplete character is held
        assert decoded.encode("utf-8") + data[arrived - held:arrived] == data[:arrived]
    assert decoded == text
    assert buffer.pending == 0


def test_held_tail_counts_in_pending_not_in_length() -> None:
    buffer = ReceiveBuffer()
    buffer.append(b"ab" + EURO[:2])
    assert (buffer.pending, buffer.length) == (4, 4)
    assert buffer.decode("utf-8") == "ab"
    assert (buffer.pending, buffer.length) == (2, 0)
    buffer.append(b"cd")
    assert (buffer.pending, buffer.length) == (4, 2)


def test_take_after_decode_returns_the_held_bytes_first() -> None:
    buffer = ReceiveBuffer()
    buffer.append(b"ab" + EURO[:2])
    buffer.decode("utf-8")
    buffer.append(EURO[2:] + b"XYZ")
    assert buffer.take() == EURO + b"XYZ"
    assert buffer.pending == 0
    # and the decoder starts afresh
    buffer.append("\u00e9".encode("utf-8"))
    assert buffer.decode("utf-8") == "\u00e9"


@pytest.mark.parametrize("count,first", [(1, EURO[:1]), (2, EURO[:2]), (3, EURO),
                                         (5, EURO + b"XY")])
def test_take_count_after_decode_starts_with_the_held_bytes(count: int, first: bytes) -> None:
    buffer = ReceiveBuffer()
    buffer.append(b"ab" + EURO[:2])
    buffer.decode("utf-8")
    buffer.append(EURO[2:] + b"XYZ")
    assert buffer.take(count) == first
    assert buffer.pending == 6 - count
    assert buffer.take() == (EURO + b"XYZ")[count:]


def test_take_zero_keeps_the_held_character() -> None:
    buffer = ReceiveBuffer()
    buffer.append(EURO[:2])
    assert buffer.decode("utf-8") == ""
    assert buffer.take(0) == b""
    assert buffer.pending == 2
    buffer.append(EURO[2:])
    assert buffer.decode("utf-8") == "\u20ac"


def test_bytes_left_of_a_partly_taken_character_reach_decode() -> None:
    # After a text read holds e2 82 (an incomplete euro sign), a binary read of 1 byte takes
    # e2; the orphan 82 is still pending. A text read must not lose it: with the "replace"
    # error handler it is one U+FFFD, followed by what arrives next.
    buffer = ReceiveBuffer()
    buffer.append(b"a" + EURO[:2])
    assert buffer.decode("utf-8") == "a"
    assert buffer.take(1) == EURO[:1]
    assert buffer.pending == 1
    buffer.append(b"b")
    assert buffer.decode("utf-8") == "\ufffdb"
    assert buffer.pending == 0


def test_eof_flushes_a_dangling_partial_character() -> None:
    buffer = ReceiveBuffer()
    buffer.append(b"end" + EURO[:2])
    assert buffer.decode("utf-8") == "end"
    assert buffer.pending == 2
    buffer.eof = True
    assert buffer.decode("utf-8") == "\ufffd"
    assert buffer.pending == 0
    assert buffer.decode("utf-8") == ""


def test_eof_in_the_same_read_as_the_last_bytes() -> None:
    buffer = ReceiveBuffer()
    buffer.append(b"xy" + EURO[:1])
    buffer.eof = True
    assert buffer.decode("utf-8") == "xy\ufffd"
    assert buffer.pending == 0


def test_invalid_bytes_are_replaced_at_once() -> None:
    buffer = ReceiveBuffer()
    buffer.append(b"a\xffb")
    assert buffer.decode("utf-8") == "a\ufffdb"
    assert buffer.pending == 0


def test_switching_encoding_keeps_the_held_bytes() -> None:
    buffer = ReceiveBuffer()
    buffer.append(b"ab" + EURO[:2])
    assert buffer.decode("utf-8") == "ab"
    buffer.append(b"cd")
    assert buffer.decode("latin-1") == "\u00e2\u0082cd"   # the held e2 82, then the rest
    assert buffer.pending == 0


def test_switching_encoding_mid_character_of_utf16() -> None:
    buffer = ReceiveBuffer()
    buffer.append("AB".encode("utf-16-le")[:3])
    assert buffer.decode("utf-16-le") == "A"
    assert buffer.pending == 1
    buffer.append(b"\x00")
    assert buffer.decode("utf-8") == "B\x00"
    buffer.append("\u20ac".encode("utf-16-le"))
    assert buffer.decode("utf-16-le") == "\u20ac"


def test_decode_after_every_single_byte() -> None:
    buffer = ReceiveBuffer()
    text = ""
    for byte in SAMPLE_BYTES:
        buffer.append(bytes([byte]))
        text += buffer.decode("utf-8")
        assert held_after(buffer) < 4
    assert text == SAMPLE
    assert buffer.pending == 0


def test_decode_of_nothing() -> None:
    buffer = ReceiveBuffer()
    assert buffer.decode("utf-8") == ""
    assert buffer.pending == 0


def test_take_chunks_leaves_the_held_tail() -> None:
    buffer = ReceiveBuffer()
    buffer.append(EURO[:1])
    buffer.decode("utf-8")
    buffer.append(b"abc")
    buffer.append(b"def")
    assert buffer.take_chunks() == b"abcdef"
    assert buffer.pending == 1 and buffer.length == 0


# -- decode and take mixed, against a model -----------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(data=st.one_of(st.text(st.sampled_from(SAMPLE), max_size=20).map(str.encode),
                      st.text(max_size=40).map(lambda t: t.encode("utf-8")),
                      st.binary(max_size=40)),
       cuts=st.lists(st.integers(0, 10_000), max_size=20),
       reads=st.lists(st.one_of(st.just(("decode",)), st.just(("next",)),
                                st.tuples(st.just("take"), st.integers(0, 3)),
                                st.tuples(st.just("take"), take_size)), max_size=40),
       encoding=st.sampled_from(["utf-8", "utf-16-le"]))
# random scripts reach this one (a binary read of part of a held character) in about 1% of
# runs only: see test_bytes_left_of_a_partly_taken_character_reach_decode
@example(data=b"a" + EURO, cuts=[3], reads=[("next",), ("decode",), ("take", 1)],
         encoding="utf-8")
def test_any_mix_of_text_and_binary_reads_against_a_model(
        data: bytes, cuts: list[int], reads: list[tuple], encoding: str) -> None:
    """``reads`` is the script: text reads, binary reads, and "next" (the next kernel read)."""
    buffer = ReceiveBuffer()
    rest = b""            # the model: bytes not returned yet (held ones included)
    pieces = split_at(data, cuts)[::-1]

    def model_decode(final: bool) -> str:
        nonlocal rest
        decoder = codecs.getincrementaldecoder(encoding)("replace")
        text = decoder.decode(rest, final=final)
        rest = bytes(decoder.getstate()[0])
        return text

    for op in reads + [("next",)] * len(pieces):
        if op[0] == "next":
            if pieces:
                piece = pieces.pop()
                buffer.append(piece)
                rest += piece
        elif op[0] == "decode":
            assert buffer.decode(encoding) == model_decode(False)
        else:
            count = op[1]
            expected = rest if count is None else rest[:count]
            rest = rest[len(expected):]
            assert buffer.take(count) == expected
        assert buffer.pending == len(rest)
    buffer.eof = True
    assert buffer.decode(encoding) == model_decode(True)
    assert buffer.pending == 0
