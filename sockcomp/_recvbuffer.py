"""The receive buffer: bytes read from the kernel that the application has not read yet.

It applies Winsock's FD_READ rule, which ScktComp inherits and which keeps OnRead from spinning:
a read event is due when bytes arrive and none was reported since the application last read;
after the application reads, one more is due (on a later turn) only if bytes remain. It also
holds the high-water mark past which its owner stops reading from the kernel, so TCP flow
control slows the peer down, in every mode.

Text is decoded by one incremental decoder per connection: an incomplete multi-byte character
at the end of the bytes stays in the decoder (``held``) until the rest arrives, and counts as
pending (``ReceiveLength``) but not as new data (no read event, ``WaitForData`` keeps waiting).
A binary read after a text read gets the held bytes first.

No I/O and no locking: the owner (the socket object) holds its lock around every call.
"""
from __future__ import annotations

import codecs
from collections import deque
from typing import Any, Optional

__all__ = ["ReceiveBuffer", "RECEIVE_HIGH_WATER"]

#: Unread bytes a socket buffers before it stops reading from the kernel.
RECEIVE_HIGH_WATER = 4 * 1024 * 1024


class ReceiveBuffer:
    """Chunks of received bytes, the read-event rule, and the text decoder."""

    __slots__ = ("chunks", "length", "notified", "eof", "high_water", "_decoder", "_encoding",
                 "held")

    def __init__(self, high_water: int = RECEIVE_HIGH_WATER) -> None:
        self.chunks: deque[bytes] = deque()
        self.length = 0          # bytes in chunks (the held text tail not included)
        self.notified = False    # a read event was reported and the application has not read
        self.eof = False         # the peer finished sending (every byte before it is here)
        self.high_water = high_water
        self._decoder: Any = None
        self._encoding = ""
        #: Bytes of an incomplete character, kept by the text decoder.
        self.held = b""

    # -- filling ----------------------------------------------------------------------------
    def append(self, data: bytes) -> bool:
        """Add bytes read from the kernel; True when a read event is due now."""
        self.chunks.append(data)
        self.length += len(data)
        if self.notified:
            return False
        self.notified = True
        return True

    @property
    def full(self) -> bool:
        """At or past the high-water mark: stop reading from the kernel."""
        return self.length >= self.high_water

    @property
    def pending(self) -> int:
        """Bytes a read would return now (``ReceiveLength``), a held character included."""
        return self.length + len(self.held)

    # -- taking -----------------------------------------------------------------------------
    def take(self, count: Optional[int] = None) -> bytes:
        """Remove up to ``count`` bytes (all when None), held text bytes first."""
        held = self.held
        if held:
            self._reset_decoder()  # a binary read: the held bytes are bytes again
            if count is not None and count < len(held):
                self.chunks.appendleft(held[count:])
                self.length += len(held) - count
                return held[:count]
            rest = self.take(None if count is None else count - len(held))
            return held + rest
        chunks = self.chunks
        if not chunks:
            return b""
        if count is None or count >= self.length:
            if len(chunks) == 1:
                data = chunks.popleft()
            else:
                data = b"".join(chunks)
                chunks.clear()
            self.length = 0
            return data
        first = chunks[0]
        if len(first) == count:
            chunks.popleft()
            self.length -= count
            return first
        out = bytearray()
        while len(out) < count:
            chunk = chunks[0]
            need = count - len(out)
            if len(chunk) <= need:
                out += chunk
                chunks.popleft()
            else:
                out += chunk[:need]
                chunks[0] = chunk[need:]
        self.length -= len(out)
        return bytes(out)

    def consumed(self) -> bool:
        """The application read: True when another read event is due (bytes remain)."""
        self.notified = False
        return self.length > 0

    def renotify(self) -> bool:
        """A later turn: True when the read event promised by :meth:`consumed` is still due."""
        if self.length and not self.notified:
            self.notified = True
            return True
        return False

    def decode(self, encoding: str) -> str:
        """All pending bytes as text; an incomplete last character stays held (until EOF)."""
        if self._decoder is None or encoding != self._encoding:
            held = self.held
            self._encoding = encoding
            self._decoder = codecs.getincrementaldecoder(encoding)("replace")
            self.held = b""
            if held:
                self.chunks.appendleft(held)
                self.length += len(held)
        data = self.take_chunks()
        text = self._decoder.decode(data, final=self.eof)
        self.held = bytes(self._decoder.getstate()[0])
        return text

    def take_chunks(self) -> bytes:
        """All bytes in chunks (not the held tail)."""
        chunks = self.chunks
        if not chunks:
            return b""
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.length = 0
        return data

    def clear(self) -> None:
        """Forget everything (the connection is gone)."""
        self.chunks.clear()
        self.length = 0
        self.notified = False
        self.eof = False
        self._reset_decoder()

    def _reset_decoder(self) -> None:
        self._decoder = None
        self.held = b""
