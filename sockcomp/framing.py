"""Message framing: lines or length-prefixed packets cut out of the TCP byte stream.

TCP delivers bytes, not messages: ``ReceiveText`` may return half a message or three at once
(ScktComp users' most common complaint). A socket with framing on (``Framing = fmLine`` or
``fmPacket``) cuts the stream itself and fires one event per message (``OnLineReceived`` /
``OnPacketReceived``, server: ``OnClientLineReceived`` / ``OnClientPacketReceived``).

This module holds the framers only: no sockets, no I/O. ``feed(data)`` returns what the new bytes
completed; ``eof()`` what the end of the stream completes. Each item is a ``bytes`` message or a
:class:`FrameError`. Memory is bounded: a framer never holds much more than ``max_size`` plus one
read, whatever the peer sends.

* **Lines**: messages end with ``line_end`` (default ``b"\\n"``), delivered without it. At end of
  stream an unterminated last line is delivered too, as ``nc`` users expect.
* **Packets**: a 4-byte big-endian unsigned length, then that many bytes.
* **Limit**: a line longer than ``max_size`` bytes, or a packet header announcing more, is a
  :class:`FrameError` (WSA code 10040, "message too long"). Policy ``foClose`` (default): the
  socket reports the error and closes. ``foDiscard``: the oversized message is skipped (to the next
  line end, or past the announced length) and the connection goes on.
* A packet cut short by the end of the stream is a :class:`FrameError` with code 10101.
"""
from __future__ import annotations

from typing import Optional, Union

from .enums import FrameOverflow, FramingMode

__all__ = [
    "FramingMode", "FrameOverflow", "FrameError", "LineFramer", "PacketFramer", "Framer",
    "fmNone", "fmLine", "fmPacket", "foClose", "foDiscard", "WSAEMSGSIZE", "WSAEDISCON",
    "DEFAULT_MAX_FRAME", "PACKET_HEADER", "pack_packet",
]

WSAEMSGSIZE = 10040  # message too long
WSAEDISCON = 10101   # the peer closed in the middle of a message
DEFAULT_MAX_FRAME = 1024 * 1024
PACKET_HEADER = 4


fmNone = FramingMode.fmNone
fmLine = FramingMode.fmLine
fmPacket = FramingMode.fmPacket
foClose = FrameOverflow.foClose
foDiscard = FrameOverflow.foDiscard


class FrameError:
    """A framing violation found in the stream (not raised: reported in order with messages)."""

    __slots__ = ("code", "text")

    def __init__(self, code: int, text: str) -> None:
        self.code = code
        self.text = text

    def __repr__(self) -> str:
        return f"FrameError({self.code}, {self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FrameError) and (self.code, self.text) == (other.code, other.text)

    __hash__ = None  # type: ignore[assignment]


Item = Union[bytes, FrameError]


def pack_packet(payload: bytes) -> bytes:
    """The wire form of one packet: 4-byte big-endian length, then the payload."""
    if len(payload) >= 1 << 32:
        raise ValueError("a packet cannot exceed 4 GiB")
    return len(payload).to_bytes(PACKET_HEADER, "big") + payload


class _Framer:
    """What both framers share: ``push`` bytes, ``pop`` one item at a time (so a socket can
    deliver a bounded number per event-loop turn), ``finish`` at the end of the stream;
    ``feed``/``eof`` do the same in one call and return every item."""

    failed: bool

    def push(self, data: bytes) -> None:
        raise NotImplementedError

    def pop(self) -> Optional[Item]:
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError

    def feed(self, data: bytes) -> list[Item]:
        """Push ``data``; every message (or error) it completed."""
        self.push(data)
        return self._drain()

    def eof(self) -> list[Item]:
        """End of stream: what it completes (a last unterminated line, or an error)."""
        self.finish()
        return self._drain()

    def _drain(self) -> list[Item]:
        out: list[Item] = []
        while True:
            item = self.pop()
            if item is None:
                return out
            out.append(item)


class LineFramer(_Framer):
    """Cuts lines ending with ``line_end`` out of a byte stream.

    The limit counts a line's content, never a terminator: a line of exactly ``max_size``
    bytes is delivered however its terminator is split across reads. While no terminator is
    in sight, the bytes that could be the start of one are not counted; what is certainly
    content beyond ``max_size`` is an overflow at once, so memory stays bounded.
    """

    def __init__(self, line_end: bytes = b"\n", max_size: int = DEFAULT_MAX_FRAME,
                 overflow: FrameOverflow = FrameOverflow.foClose) -> None:
        if not line_end:
            raise ValueError("line_end must not be empty")
        self.line_end = line_end
        self.max_size = max_size
        self.overflow = overflow
        self._buf = bytearray()
        self._start = 0            # where the current line begins in _buf
        self._scanned = 0          # _buf[:_scanned] holds no terminator beyond _start
        self._skipping = False     # discarding an oversized line up to its end
        self._ended = False        # finish() was called
        self.failed = False        # foClose: an overflow happened; ignore the rest

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a line."""
        return len(self._buf) - self._start

    def push(self, data: bytes) -> None:
        if not self.failed:
            self._buf += data

    def finish(self) -> None:
        self._ended = True

    def pop(self) -> Optional[Item]:
        end = self.line_end
        n = len(end)
        while not self.failed:
            buf = self._buf
            start = self._start
            pos = buf.find(end, max(start, self._scanned))
            if pos >= 0:
                self._start = self._scanned = pos + n
                if self._skipping:
                    self._skipping = False
                    continue
                if pos - start > self.max_size:
                    return self._too_long()
                return bytes(buf[start:pos])
            # no terminator: compact, then decide what the unterminated tail means
            if start:
                del buf[:start]
                self._start = 0
            partial = self._partial_end(buf)
            self._scanned = len(buf) - partial
            if self._ended:
                return self._last_line()
            if self._skipping:
                del buf[:len(buf) - partial]
                self._scanned = 0
                return None
            if len(buf) - partial > self.max_size:
                error = self._too_long()
                if not self.failed:
                    del buf[:len(buf) - partial]
                    self._scanned = 0
                    self._skipping = True
                return error
            return None
        return None

    def _partial_end(self, buf: bytearray) -> int:
        """How many bytes at the end of ``buf`` could begin a terminator."""
        end = self.line_end
        for size in range(min(len(end) - 1, len(buf)), 0, -1):
            if buf.endswith(end[:size]):
                return size
        return 0

    def _last_line(self) -> Optional[Item]:
        """End of stream: an unterminated last line is a line too (unless being skipped)."""
        buf = self._buf
        last = bytes(buf)
        buf.clear()
        self._scanned = 0
        if not last or self._skipping:
            self._skipping = False
            return None
        if len(last) > self.max_size:
            return self._too_long()
        return last

    def _too_long(self) -> FrameError:
        if self.overflow == FrameOverflow.foClose:
            self.failed = True
            self._buf.clear()
            self._start = self._scanned = 0
        return FrameError(WSAEMSGSIZE, f"line longer than {self.max_size} bytes")


class PacketFramer(_Framer):
    """Cuts packets (4-byte big-endian length + payload) out of a byte stream."""

    def __init__(self, max_size: int = DEFAULT_MAX_FRAME,
                 overflow: FrameOverflow = FrameOverflow.foClose) -> None:
        self.max_size = max_size
        self.overflow = overflow
        self._buf = bytearray()
        self._pos = 0            # where the next header begins in _buf
        self._skip = 0           # payload bytes of an oversized packet still to discard
        self._ended = False
        self.failed = False

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def push(self, data: bytes) -> None:
        if self.failed:
            return
        view = memoryview(data)
        if self._skip and self._pos >= len(self._buf):
            skipped = min(self._skip, len(view))
            self._skip -= skipped
            view = view[skipped:]
        self._buf += view

    def finish(self) -> None:
        self._ended = True

    def pop(self) -> Optional[Item]:
        buf = self._buf
        while not self.failed:
            if self._skip:
                skipped = min(self._skip, len(buf) - self._pos)
                self._skip -= skipped
                self._pos += skipped
                if self._skip:
                    break
            pos = self._pos
            if len(buf) - pos < PACKET_HEADER:
                break
            size = int.from_bytes(buf[pos:pos + PACKET_HEADER], "big")
            if size > self.max_size:
                self._pos = pos + PACKET_HEADER
                self._skip = size
                if self.overflow == FrameOverflow.foClose:
                    self.failed = True
                    buf.clear()
                    self._pos = self._skip = 0
                return FrameError(WSAEMSGSIZE, f"packet of {size} bytes exceeds {self.max_size}")
            if len(buf) - pos - PACKET_HEADER < size:
                break
            start = pos + PACKET_HEADER
            self._pos = start + size
            return bytes(buf[start:start + size])
        if self._pos:
            del buf[:self._pos]
            self._pos = 0
        if self._ended and not self.failed:
            return self._end_of_stream()
        return None

    def _end_of_stream(self) -> Optional[Item]:
        """A partial packet at the end is an error (the peer stopped mid-message)."""
        pending = len(self._buf) or self._skip
        self._buf.clear()
        skipping = self._skip
        self._skip = 0
        self._ended = False  # reported once
        if not pending or skipping:
            return None
        return FrameError(WSAEDISCON, "connection closed in the middle of a packet")


Framer = Union[LineFramer, PacketFramer]
