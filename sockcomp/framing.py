"""Message framing: lines or length-prefixed packets cut out of the TCP byte stream.

TCP delivers bytes, not messages: ``ReceiveText`` may return half a message or three at once
(ScktComp users' most common complaint). A socket with framing on (``Framing = fmLine`` or
``fmPacket``) cuts the stream itself and fires one event per message (``OnLineReceived`` /
``OnPacketReceived``, server: ``OnClientLineReceived`` / ``OnClientPacketReceived``).

This module holds the framers only: no sockets, no Qt. ``feed(data)`` returns what the new bytes
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

from enum import IntEnum
from typing import Union

__all__ = [
    "FramingMode", "FrameOverflow", "FrameError", "LineFramer", "PacketFramer", "Framer",
    "fmNone", "fmLine", "fmPacket", "foClose", "foDiscard", "WSAEMSGSIZE", "WSAEDISCON",
    "DEFAULT_MAX_FRAME", "PACKET_HEADER", "pack_packet",
]

WSAEMSGSIZE = 10040  # message too long
WSAEDISCON = 10101   # the peer closed in the middle of a message
DEFAULT_MAX_FRAME = 1024 * 1024
PACKET_HEADER = 4


class FramingMode(IntEnum):
    """How a socket cuts its input into messages (beyond the VCL)."""

    fmNone = 0
    fmLine = 1
    fmPacket = 2


class FrameOverflow(IntEnum):
    """What happens to a message longer than ``MaxFrameSize``."""

    foClose = 0
    foDiscard = 1


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


class LineFramer:
    """Cuts lines ending with ``line_end`` out of a byte stream."""

    def __init__(self, line_end: bytes = b"\n", max_size: int = DEFAULT_MAX_FRAME,
                 overflow: FrameOverflow = FrameOverflow.foClose) -> None:
        if not line_end:
            raise ValueError("line_end must not be empty")
        self.line_end = line_end
        self.max_size = max_size
        self.overflow = overflow
        self._buf = bytearray()
        self._scanned = 0          # bytes of _buf already searched for line_end
        self._skipping = False     # discarding an oversized line up to its end
        self.failed = False        # foClose: an overflow happened; ignore the rest

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a line."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Item]:
        if self.failed:
            return []
        buf = self._buf
        buf += data
        out: list[Item] = []
        end = self.line_end
        n = len(end)
        start = 0
        while True:
            pos = buf.find(end, max(start, self._scanned))
            if pos < 0:
                break
            if self._skipping:
                self._skipping = False
            elif pos - start > self.max_size:
                out.append(self._too_long())
                if self.failed:
                    buf.clear()
                    self._scanned = 0
                    return out
            else:
                out.append(bytes(buf[start:pos]))
            start = pos + n
            self._scanned = start
        if start:
            del buf[:start]
        self._scanned = max(len(buf) - n + 1, 0)
        if len(buf) > self.max_size:
            if self._skipping:
                keep = n - 1  # a line end may straddle the next read
                del buf[:len(buf) - keep]
                self._scanned = 0
            else:
                out.append(self._too_long())
                if self.failed:
                    buf.clear()
                else:
                    keep = n - 1
                    del buf[:len(buf) - keep]
                    self._skipping = True
                self._scanned = 0
        return out

    def _too_long(self) -> FrameError:
        if self.overflow == FrameOverflow.foClose:
            self.failed = True
        return FrameError(WSAEMSGSIZE, f"line longer than {self.max_size} bytes")

    def eof(self) -> list[Item]:
        """End of stream: an unterminated last line is a line too (unless being skipped)."""
        if self.failed or self._skipping or not self._buf:
            self._buf.clear()
            return []
        last = bytes(self._buf)
        self._buf.clear()
        return [last]


class PacketFramer:
    """Cuts packets (4-byte big-endian length + payload) out of a byte stream."""

    def __init__(self, max_size: int = DEFAULT_MAX_FRAME,
                 overflow: FrameOverflow = FrameOverflow.foClose) -> None:
        self.max_size = max_size
        self.overflow = overflow
        self._buf = bytearray()
        self._skip = 0          # payload bytes of an oversized packet still to discard
        self.failed = False

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Item]:
        if self.failed:
            return []
        out: list[Item] = []
        view = memoryview(data)
        if self._skip:
            skipped = min(self._skip, len(view))
            self._skip -= skipped
            view = view[skipped:]
        buf = self._buf
        buf += view
        pos = 0
        while len(buf) - pos >= PACKET_HEADER:
            size = int.from_bytes(buf[pos:pos + PACKET_HEADER], "big")
            if size > self.max_size:
                out.append(FrameError(WSAEMSGSIZE,
                                      f"packet of {size} bytes exceeds {self.max_size}"))
                if self.overflow == FrameOverflow.foClose:
                    self.failed = True
                    buf.clear()
                    return out
                pos += PACKET_HEADER
                available = len(buf) - pos
                if available >= size:
                    pos += size
                    continue
                self._skip = size - available
                pos = len(buf)
                break
            if len(buf) - pos - PACKET_HEADER < size:
                break
            start = pos + PACKET_HEADER
            out.append(bytes(buf[start:start + size]))
            pos = start + size
        if pos:
            del buf[:pos]
        return out

    def eof(self) -> list[Item]:
        """End of stream: a partial packet is an error (the peer stopped mid-message)."""
        pending = len(self._buf) or self._skip
        self._buf.clear()
        if self.failed or not pending or self._skip:
            self._skip = 0
            return []
        return [FrameError(WSAEDISCON, "connection closed in the middle of a packet")]


Framer = Union[LineFramer, PacketFramer]
