"""Framing: the pure framers under any segmentation, and line/packet mode on real sockets."""
from __future__ import annotations

import socket
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sockcomp import (
    ClientSocket,
    ESocketError,
    ServerSocket,
    eeReceive,
    fmLine,
    fmNone,
    fmPacket,
    foClose,
    foDiscard,
)
from sockcomp.framing import (
    WSAEDISCON,
    WSAEMSGSIZE,
    FrameError,
    LineFramer,
    PacketFramer,
    pack_packet,
)
from tests.util import EventLog


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    pieces.append(data[last:])
    return pieces


def run(framer, pieces: list[bytes]) -> list:
    out = []
    for piece in pieces:
        out.extend(framer.feed(piece))
    out.extend(framer.eof())
    return out


line_text = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b""))


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(line_text, max_size=20), cuts=st.lists(st.integers(0, 10_000), max_size=30),
       end=st.sampled_from([b"\n", b"\r\n", b"\0", b"--END--"]))
def test_any_split_yields_the_same_lines(lines: list[bytes], cuts: list[int], end: bytes) -> None:
    lines = [line.replace(end, b"") for line in lines]
    stream = b"".join(line + end for line in lines)
    assert run(LineFramer(end), split_at(stream, cuts)) == lines


@settings(max_examples=200, deadline=None)
@given(packets=st.lists(st.binary(max_size=300), max_size=15),
       cuts=st.lists(st.integers(0, 10_000), max_size=30))
def test_any_split_yields_the_same_packets(packets: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(pack_packet(p) for p in packets)
    assert run(PacketFramer(), split_at(stream, cuts)) == packets


@settings(max_examples=100, deadline=None)
@given(size=st.integers(1, 5000), pieces=st.lists(st.integers(1, 2000), min_size=1, max_size=40))
def test_no_terminator_never_grows_memory_and_is_reported_once(size: int,
                                                                pieces: list[int]) -> None:
    framer = LineFramer(b"\n", max_size=64, overflow=foClose)
    out = []
    for n in pieces:
        out.extend(framer.feed(b"x" * n))
        assert framer.buffered <= 64  # never holds more than the limit after a feed
    total = sum(pieces)
    expected = [FrameError(WSAEMSGSIZE, "line longer than 64 bytes")] if total > 64 else []
    assert out == expected
    assert framer.eof() == ([] if total > 64 else [b"x" * total])


@settings(max_examples=100, deadline=None)
@given(prefix=st.lists(line_text.filter(lambda b: len(b) <= 16), max_size=5),
       junk=st.integers(17, 3000), suffix=st.lists(line_text.filter(lambda b: len(b) <= 16),
                                                    max_size=5),
       cuts=st.lists(st.integers(0, 10_000), max_size=20))
def test_discard_skips_only_the_oversized_line(prefix, junk, suffix, cuts) -> None:
    stream = b"".join(p + b"\n" for p in prefix) + b"y" * junk + b"\n" + \
        b"".join(s + b"\n" for s in suffix)
    out = run(LineFramer(b"\n", max_size=16, overflow=foDiscard), split_at(stream, cuts))
    assert out == prefix + [FrameError(WSAEMSGSIZE, "line longer than 16 bytes")] + suffix


@settings(max_examples=100, deadline=None)
@given(announced=st.integers(1025, 2**32 - 1), cuts=st.lists(st.integers(0, 100), max_size=5))
def test_huge_length_prefix_is_refused_without_allocating(announced: int, cuts) -> None:
    framer = PacketFramer(max_size=1024, overflow=foClose)
    stream = announced.to_bytes(4, "big") + b"abc"
    out = run(framer, split_at(stream, cuts))
    assert out == [FrameError(WSAEMSGSIZE, f"packet of {announced} bytes exceeds 1024")]
    assert framer.buffered == 0


@settings(max_examples=100, deadline=None)
@given(good=st.lists(st.binary(max_size=50), max_size=4), big=st.integers(101, 400),
       after=st.lists(st.binary(max_size=50), max_size=4),
       cuts=st.lists(st.integers(0, 10_000), max_size=20))
def test_discarded_packet_is_skipped_exactly(good, big, after, cuts) -> None:
    stream = b"".join(map(pack_packet, good)) + pack_packet(b"z" * big) + \
        b"".join(map(pack_packet, after))
    out = run(PacketFramer(max_size=100, overflow=foDiscard), split_at(stream, cuts))
    assert out == good + [FrameError(WSAEMSGSIZE, f"packet of {big} bytes exceeds 100")] + after


@settings(max_examples=100, deadline=None)
@given(payload=st.binary(min_size=1, max_size=200), keep=st.integers(1, 203))
def test_truncated_packet_at_eof_is_an_error(payload: bytes, keep: int) -> None:
    wire = pack_packet(payload)
    keep = min(keep, len(wire) - 1)
    out = run(PacketFramer(), [wire[:keep]])
    assert out == [FrameError(WSAEDISCON, "connection closed in the middle of a packet")]


# ---------------------------------------------------------------------------- on sockets
@pytest.fixture
def pair(qtbot):
    """A sockcomp server and client, both in line mode, connected."""
    srv = ServerSocket()
    srv.Address, srv.Port = "127.0.0.1", 0
    srv.Framing = fmLine
    srv.Open()
    cli = ClientSocket()
    cli.Address, cli.Port = "127.0.0.1", srv.Socket.LocalPort
    cli.Framing = fmLine
    cli.Open()
    qtbot.waitUntil(lambda: cli.Socket.Connected and srv.Socket.ActiveConnections == 1,
                    timeout=5000)
    yield srv, cli
    cli.Close()
    srv.Close()


def test_line_mode_one_event_per_line_and_no_onread(qtbot, pair) -> None:
    srv, cli = pair
    got: list[str] = []
    srv.OnClientLineReceived.connect(lambda sender, sock, line: got.append(line))
    log = EventLog(srv)
    cli.Socket.SendText("first\nsecond\nthi")
    cli.Socket.SendText("rd — ü\n")
    cli.Socket.SendLine("fourth")
    qtbot.waitUntil(lambda: len(got) == 4, timeout=5000)
    assert got == ["first", "second", "third — ü", "fourth"]
    assert log.names() == ["OnClientLineReceived"] * 4
    sender, sock, line = log.args("OnClientLineReceived")
    assert sender is srv.Socket and sock is srv.Socket.Connections[0] and line == "first"


def test_packet_mode_between_components(qtbot) -> None:
    srv = ServerSocket()
    srv.Address, srv.Port, srv.Framing = "127.0.0.1", 0, fmPacket
    srv.OnClientPacketReceived.connect(lambda s, sock, p: sock.SendPacket(p[::-1]))
    srv.Open()
    cli = ClientSocket()
    cli.Address, cli.Port, cli.Framing = "127.0.0.1", srv.Socket.LocalPort, fmPacket
    got: list[bytes] = []
    cli.OnPacketReceived.connect(lambda s, sock, p: got.append(p))
    payloads = [b"", b"a", bytes(range(256)) * 300, b"\n\r\0" * 5]
    cli.OnConnect.connect(lambda s, sock: [sock.SendPacket(p) for p in payloads])
    cli.Open()
    qtbot.waitUntil(lambda: len(got) == len(payloads), timeout=5000)
    assert got == [p[::-1] for p in payloads]
    cli.Close()
    srv.Close()


def test_lines_from_a_plain_socket_peer_including_unterminated_last_line(qtbot) -> None:
    srv = ServerSocket()
    srv.Address, srv.Port, srv.Framing, srv.LineEnd = "127.0.0.1", 0, fmLine, "\r\n"
    lines: list[str] = []
    srv.OnClientLineReceived.connect(lambda s, sock, line: lines.append(line))
    ended: list[bool] = []
    srv.OnClientDisconnect.connect(lambda s, sock: ended.append(True))
    srv.Open()
    with socket.create_connection(("127.0.0.1", srv.Socket.LocalPort)) as peer:
        peer.sendall("GET / HTTP/1.0\r\nHost: x\r\n\r\nlast".encode())
    qtbot.waitUntil(lambda: bool(ended), timeout=5000)
    assert lines == ["GET / HTTP/1.0", "Host: x", "", "last"]
    srv.Close()


def test_oversized_line_closes_by_default(qtbot, hook) -> None:
    srv = ServerSocket()
    srv.Address, srv.Port, srv.Framing, srv.MaxFrameSize = "127.0.0.1", 0, fmLine, 1000
    log = EventLog(srv)
    srv.Open()
    with socket.create_connection(("127.0.0.1", srv.Socket.LocalPort)) as peer:
        peer.sendall(b"ok\n" + b"A" * 5000)  # no terminator, ever
        qtbot.waitUntil(lambda: log.count("OnClientDisconnect") == 1, timeout=5000)
        assert peer.recv(10) == b""  # the server closed the connection
    names = [n for n in log.names() if n != "OnClientWrite"]
    assert names[-3:] == ["OnClientLineReceived", "OnClientError", "OnClientDisconnect"]
    _, _, event, code = log.args("OnClientError")
    assert event == eeReceive and code.value == WSAEMSGSIZE
    assert len(hook) == 1 and isinstance(hook[0], ESocketError)
    assert hook[0].ErrorCode == WSAEMSGSIZE and "line longer than 1000 bytes" in str(hook[0])
    srv.Close()


def test_oversized_line_discarded_connection_goes_on(qtbot) -> None:
    srv = ServerSocket()
    srv.Address, srv.Port, srv.Framing = "127.0.0.1", 0, fmLine
    srv.MaxFrameSize, srv.FrameOverflow = 100, foDiscard
    lines: list[str] = []
    errors: list[int] = []
    srv.OnClientLineReceived.connect(lambda s, sock, line: lines.append(line))

    def on_error(sender, sock, event, code) -> None:
        errors.append(code.value)
        code.value = 0

    srv.OnClientError.connect(on_error)
    srv.Open()
    with socket.create_connection(("127.0.0.1", srv.Socket.LocalPort)) as peer:
        peer.sendall(b"before\n" + b"B" * 100_000 + b"\nafter\n")
        qtbot.waitUntil(lambda: lines == ["before", "after"], timeout=5000)
        assert errors == [WSAEMSGSIZE]
        assert srv.Socket.ActiveConnections == 1
    srv.Close()


def test_truncated_packet_at_eof_is_reported(qtbot) -> None:
    srv = ServerSocket()
    srv.Address, srv.Port, srv.Framing = "127.0.0.1", 0, fmPacket
    log = EventLog(srv)
    srv.OnClientError.connect(lambda s, sock, e, code: setattr(code, "value", 0))
    srv.Open()
    with socket.create_connection(("127.0.0.1", srv.Socket.LocalPort)) as peer:
        peer.sendall(pack_packet(b"whole") + pack_packet(b"cut short")[:7])
    qtbot.waitUntil(lambda: log.count("OnClientDisconnect") == 1, timeout=5000)
    names = [n for n in log.names() if n not in ("OnListen", "OnClientConnect", "OnClientWrite",
                                                  "OnGetSocket", "OnAccept")]
    assert names == ["OnClientPacketReceived", "OnClientError", "OnClientDisconnect"]
    assert log.args("OnClientPacketReceived")[2] == b"whole"
    assert log.args("OnClientError")[3].value == 0 and log.args("OnClientError")[2] == eeReceive
    srv.Close()


def test_switching_framing_on_reframes_pending_raw_bytes(qtbot, pair) -> None:
    srv, cli = pair
    client_side = srv.Socket.Connections[0]
    client_side.Framing = fmNone
    raw: list[int] = []
    srv.OnClientRead.connect(lambda s, sock: raw.append(sock.ReceiveLength()))
    cli.Socket.SendText("one\ntwo\n")
    qtbot.waitUntil(lambda: bool(raw), timeout=5000)
    lines: list[str] = []
    srv.OnClientLineReceived.connect(lambda s, sock, line: lines.append(line))
    client_side.Framing = fmLine  # the unread "one\ntwo\n" goes through the framer
    qtbot.waitUntil(lambda: lines == ["one", "two"], timeout=5000)


def test_framing_in_thread_blocking_server(qtbot) -> None:
    from sockcomp import stThreadBlocking
    srv = ServerSocket()
    srv.Address, srv.Port, srv.ServerType, srv.Framing = "127.0.0.1", 0, stThreadBlocking, fmLine
    seen: list[tuple[str, bool]] = []
    srv.OnClientLineReceived.connect(lambda s, sock, line: (
        seen.append((line, threading.current_thread() is threading.main_thread())),
        sock.SendLine(line.upper())))
    srv.Open()
    replies: list[bytes] = []

    def peer() -> None:
        with socket.create_connection(("127.0.0.1", srv.Socket.LocalPort), timeout=10) as s:
            s.sendall("hello\nwörld\n".encode())
            f = s.makefile("rb")
            replies.extend([f.readline(), f.readline()])

    worker = threading.Thread(target=peer)
    worker.start()
    qtbot.waitUntil(lambda: len(replies) == 2, timeout=10000)
    worker.join()
    assert seen == [("hello", True), ("wörld", True)]
    assert replies == [b"HELLO\n", "WÖRLD\n".encode()]
    srv.Close()


def test_bad_framing_values_are_refused() -> None:
    cli = ClientSocket()
    with pytest.raises(ESocketError):
        cli.MaxFrameSize = 0
    with pytest.raises(ESocketError):
        cli.LineEnd = ""
    with pytest.raises(ValueError):
        cli.Framing = 7
