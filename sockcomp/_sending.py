"""The send side of a socket object: SendBuf, SendText, streams, half-close.

Everything goes through the transport's one send queue: nothing accepted is lost or
reordered, and bytes from different threads never interleave inside one call. In the
component's thread a send never waits (it accepts what ``SendQueueLimit`` allows); a blocking
socket's sender in a thread that may wait returns once its bytes went to the OS.
"""
from __future__ import annotations

import errno
import socket
from typing import Any, Optional

from . import _batching
from ._connection import Connection
from ._lifecycle import SEND_PHASES, WRITE_PHASES, Input, Phase
from ._sendqueue import QueuedStream
from .enums import eeSend, seDisconnect, seWrite
from .errors import WSAESHUTDOWN, ESocketError, raise_error
from .framing import pack_packet

__all__ = ["SendSide"]

_CONNECTED = Phase.CONNECTED


class SendSide(Connection):
    """Sending: SendBuf, SendText, SendLine, SendPacket, SendStream, Shutdown."""

    def write_drained(self) -> None:
        """Transport: the send queue drained to the low-water mark."""
        if self._notify_write and self._life.phase in WRITE_PHASES:
            self._fire(seWrite)

    @property
    def SendQueueLength(self) -> int:
        """Bytes accepted by send methods but not yet handed to the OS (streams excluded)."""
        t = self._transport or self._flushing
        return t.tx.queued if t is not None else 0

    def SendBuf(self, buf: Any, count: Optional[int] = None) -> int:
        """Send ``count`` bytes of ``buf`` (all when ``None``); returns the bytes accepted.

        Connected: what the OS does not take now is queued and flushed in order, up to
        ``SendQueueLimit`` (then the count that fit, -1 when nothing fits). A blocking socket,
        in a thread that may wait, returns once every byte has gone to the OS. Not connected:
        0 (as the VCL). After ``Shutdown(SD_SEND)``: ``ESocketError`` (10058). A failure is
        OnError(eeSend), OnDisconnect, then the ESocketError raised here.
        """
        t = self._transport
        if type(buf) is bytes and count is None and t is not None and buf and \
                self._life.phase is _CONNECTED and not self._blocking:  # the common case
            batch = t.batch
            if batch.streak:
                batch.streak = 0  # a reply: request and response traffic never batches reads
            if batch.active:
                _batching.replied(t)
            try:
                return t.send_bytes(buf)
            except OSError as exc:
                self._fail(eeSend, exc, "send", raise_=True)
                return -1
        if isinstance(buf, str):
            raise TypeError("SendBuf takes bytes-like data; use SendText for str")
        view = memoryview(buf)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        if count is not None:
            view = view[:max(count, 0)]
        t = self._transport
        phase = self._life.phase
        if t is None or phase not in SEND_PHASES:
            if phase is Phase.SEND_SHUT:
                raise_error(ESocketError.from_code(WSAESHUTDOWN, "send", errno.ESHUTDOWN))
                return -1
            return self._send_while_closed(buf, view)
        if not len(view):
            return 0
        batch = t.batch
        batch.streak = 0  # a reply: request and response traffic never batches reads
        if batch.active:
            _batching.replied(t)
        try:
            if self._may_wait():
                assert self._waiter is not None
                return self._waiter.send_wait(buf, view, None)
            return t.send(buf, view)
        except OSError as exc:
            self._fail(eeSend, exc, "send", raise_=True)
            return -1

    def _send_while_closed(self, buf: Any, view: memoryview) -> int:
        """SendBuf on a socket that is not connected: nothing is sent (the VCL returns 0)."""
        return 0

    def SendText(self, text: str) -> int:
        """Send ``text`` encoded with ``Encoding``; returns the number of bytes accepted."""
        if not isinstance(text, str):
            raise TypeError("SendText takes str; use SendBuf for bytes")
        return self.SendBuf(text.encode(self.settings.Encoding))

    def SendLine(self, text: str) -> int:
        """Send ``text`` followed by ``LineEnd``; returns the bytes accepted (beyond the VCL)."""
        return self.SendText(text + self.settings.LineEnd)

    def SendPacket(self, data: Any) -> int:
        """Send ``data`` as one packet (4-byte big-endian length first); returns bytes accepted."""
        return self.SendBuf(pack_packet(bytes(data)))

    def SendStream(self, stream: Any) -> bool:
        """Queue a binary file-like object; the socket closes it when sent (or on close).

        Returns False (and does not take the stream) when not connected. Several streams may
        be queued; they go out in order after everything queued before them.
        """
        return self._send_stream(stream, drop=False)

    def SendStreamThenDrop(self, stream: Any) -> bool:
        """Like :meth:`SendStream`, then close the connection once the last byte has left."""
        return self._send_stream(stream, drop=True)

    def _send_stream(self, stream: Any, drop: bool) -> bool:
        t = self._transport
        if t is None or self._life.phase not in SEND_PHASES or t.tx.dropping:
            return False
        batch = t.batch
        batch.streak = 0
        if batch.active:
            _batching.replied(t)
        if self._may_wait():  # a waiting writer sends it all before returning
            try:
                while True:
                    data = stream.read(64 * 1024)
                    if not data or self.SendBuf(data) <= 0:
                        break
            finally:
                QueuedStream(stream).close()
            if drop:
                self.Close()
            return True
        t.queue_stream(QueuedStream(stream), drop)
        return True

    def Shutdown(self, how: int = socket.SHUT_WR) -> None:
        """Half-close: ``SD_SEND`` sends FIN after everything already queued and keeps
        receiving; ``SD_RECEIVE`` stops receiving; ``SD_BOTH`` does both (beyond the VCL).
        After the peer's FIN (``AllowHalfClose``), ``SD_SEND`` ends the connection as
        ``Close()`` does."""
        if self._posted(self.Shutdown, how):
            return
        t = self._transport
        if t is None:
            return
        if how in (socket.SHUT_RD, socket.SHUT_RDWR):
            self._reading_stopped = True
            t.pause_reading()
            t.shut_read()
        if how in (socket.SHUT_WR, socket.SHUT_RDWR) and not t.tx.shutdown_queued:
            t.shutdown_write()
            with self._mutex:
                event = self._life.step(Input.SHUT_SEND) \
                    if self._life.allows(Input.SHUT_SEND) else None
            if event == seDisconnect:
                self._disconnect_now(graceful=True)

    def write_wait(self, buf: Any, timeout_ms: Optional[int]) -> int:
        """Send all of ``buf``, waiting at most ``timeout_ms``; returns the bytes that went
        out (what had not when the time ran out is taken back). An error is OnError(eeSend),
        OnDisconnect, then raised."""
        view: Optional[memoryview] = None
        if type(buf) is bytes:  # the common reply: no view needed to send it whole
            n = len(buf)
        else:
            view = memoryview(buf)
            if view.format != "B" or view.ndim != 1:
                view = view.cast("B")
            n = len(view)
        w = self._waiter
        if w is None or self._life.phase not in SEND_PHASES or not n:
            return 0
        try:
            return w.send_wait(buf, view, timeout_ms)
        except OSError as exc:
            self._fail(eeSend, exc, "send", raise_=True)
            return 0
