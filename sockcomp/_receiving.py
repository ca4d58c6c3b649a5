"""The receive side of a socket object: the buffer, the read-event rule, framing, reads.

Bytes the transport reads go into the connection's :class:`~sockcomp._recvbuffer.ReceiveBuffer`
and ``seRead`` is reported by Winsock's rule (once, and again after the application read if
bytes remain); with framing on they go through the framer instead and each message is an event,
at most :data:`FRAMES_PER_TURN` per event-loop turn. The peer's FIN comes after every byte before
it was offered. Reads never wait in the component's thread; a blocking socket's reads wait in
the threads that may (its worker, or a ctBlocking client's caller).
"""
from __future__ import annotations

import fcntl
import os
import sys
import termios
from typing import Any, Optional

from ._connection import Connection
from ._lifecycle import READ_PHASES, Input, Phase, seHalfClose
from ._sendqueue import RECEIVE_CHUNK
from ._waits import Deadline
from .enums import ErrorEvent, eeReceive, seDisconnect, seRead
from .errors import ESocketError
from .framing import FrameError, FramingMode, LineFramer, PacketFramer

__all__ = ["ReceiveSide", "FRAMES_PER_TURN"]

_CONNECTED = Phase.CONNECTED

#: Frames one socket delivers per event-loop turn before it lets the loop turn (fairness).
FRAMES_PER_TURN = 64


class ReceiveSide(Connection):
    """Receiving: ReceiveBuf, ReceiveText, ReceiveBytes, ReceiveLength, framing."""

    def data_received(self, data: bytes) -> None:
        """Transport: bytes arrived (the hot path: the buffer's append is inlined)."""
        if self._framer is not None:
            self._framer.push(data)
            self._deliver_frames()
            return
        rx = self._rx
        mutex = self._mutex
        mutex.acquire()  # not ``with``: half the cost on the hot path (docs/benchmarks.md)
        try:
            rx.chunks.append(data)
            length = rx.length = rx.length + len(data)
            notify = not rx.notified
            rx.notified = True
        finally:
            mutex.release()
        if length >= rx.high_water:
            t = self._transport
            if t is not None:
                t.pause_reading()
        if notify and self._notify_read:
            phase = self._life.phase
            if phase is _CONNECTED or phase in READ_PHASES:
                self._event_sink(self, seRead)

    def eof_received(self) -> None:
        """Transport: the peer finished sending."""
        self._rx.eof = True
        if self._framer is not None:
            self._framer.finish()
            self._deliver_frames()
            return
        self._peer_closed()

    def _new_framer(self) -> None:
        s = self.settings
        if s.Framing == FramingMode.fmLine:
            self._framer = LineFramer(s.LineEnd.encode(s.Encoding), s.MaxFrameSize,
                                      s.FrameOverflow)
        elif s.Framing == FramingMode.fmPacket:
            self._framer = PacketFramer(s.MaxFrameSize, s.FrameOverflow)
        else:
            self._framer = None
        rx = self._rx
        if self._framer is not None and rx.length and self._pump is not None:
            self._framer.push(rx.take())  # raw bytes were pending: frame them on a later turn
            self._schedule_frames()

    def _schedule_frames(self) -> None:
        if not self._frames_due and self._pump is not None:
            self._frames_due = True
            self._pump.call_soon(self._frames_turn)

    def _frames_turn(self) -> None:
        self._frames_due = False
        self._deliver_frames()

    def _deliver_frames(self) -> None:
        """Deliver up to FRAMES_PER_TURN frames, then let the loop turn (reading pauses while
        frames wait); at the end of the stream, the peer's FIN follows the last frame."""
        framer = self._framer
        t = self._transport
        for _ in range(FRAMES_PER_TURN):
            if self._life.phase not in READ_PHASES:
                return
            item = framer.pop()
            if item is None:
                if t is not None and not self._rx.eof and not self._reading_stopped:
                    t.resume_reading()
                if self._rx.eof:
                    self._peer_closed()
                return
            if isinstance(item, FrameError):
                self._frame_error(item, framer)
            elif isinstance(framer, LineFramer):
                self._frame_sink(self, item.decode(self.settings.Encoding, "replace"))
            else:
                self._frame_sink(self, item)
        if t is not None and self._pump is not None:
            t.pause_reading()
            self._schedule_frames()

    def _frame_error(self, item: FrameError, framer: Any) -> None:
        api_text = f"Windows socket error: {item.text} ({item.code}), on API 'recv'"
        self.LastError = ESocketError(api_text, item.code, None, "recv")
        code = self._report_error(ErrorEvent.eeReceive, item.code, item.text)
        if framer.failed:
            self._end(graceful=True)
        if code:
            self._report_exception(ESocketError.asynchronous(
                code, "recv", item.text if code == item.code else ""))

    def _peer_closed(self) -> None:
        """The peer sent FIN: offer what is left, then OnDisconnect (or OnHalfClose)."""
        rx = self._rx
        while rx.length and not rx.notified and self._life.phase in READ_PHASES \
                and self._notify_read:
            before = rx.length
            rx.notified = True
            self._fire(seRead)
            if rx.length >= before:
                break
        with self._mutex:
            event = self._life.step(Input.PEER_FIN)
        if event == seDisconnect:
            self._disconnect_now(graceful=True)
        elif event == seHalfClose:
            self._fire(seHalfClose)

    def ReceiveLength(self) -> int:
        """Bytes that can be read now without waiting."""
        pending = self._rx.pending
        t = self._transport
        if self._may_wait() and t is not None and not self._rx.eof:
            buf = bytearray(4)
            try:
                fcntl.ioctl(t.fd, termios.FIONREAD, buf)
            except OSError:
                return pending
            return pending + int.from_bytes(buf, sys.byteorder)
        return pending

    def ReceiveBytes(self, count: Optional[int] = None) -> bytes:
        """Up to ``count`` pending bytes (all when ``None``); ``b''`` when there are none.
        Beyond the VCL. On a blocking socket, in a thread that may wait, an explicit ``count``
        waits for data."""
        rx = self._rx
        if count is None and not rx.held:  # the common case: all of it, no text tail
            mutex = self._mutex
            mutex.acquire()  # not ``with``: half the cost on the hot path
            try:
                chunks = rx.chunks
                if len(chunks) == 1:
                    data = chunks.popleft()
                    rx.length = 0
                    rx.notified = False  # consumed(), with nothing left
                    t = self._transport
                    if t is None or t.reading or self._pump is None:
                        return data
                    more = False
                else:
                    data = rx.take(None) if chunks else b""
                    more = rx.consumed() if data else False
            finally:
                mutex.release()
            if data:
                self._consumed(more)
                return data
            return self._receive(None, wait=False) or b""
        return self._receive(count, wait=count is not None) or b""

    def ReceiveBuf(self, buf: Any, count: Optional[int] = None) -> int:
        """Read into the writable buffer ``buf``; returns the bytes read.

        ``count`` defaults to ``len(buf)``; ``count == -1`` returns the bytes pending without
        reading. Returns 0 when the peer has closed and nothing is left, -1 when nothing is
        readable yet (never waiting in the component's thread). A blocking socket waits in a
        thread that may wait.
        """
        if count == -1:
            return self.ReceiveLength()
        view = memoryview(buf).cast("B")
        want = len(view) if count is None else min(count, len(view))
        if want <= 0:
            return 0
        data = self._receive(want, wait=True)
        if data is None:
            return -1
        view[:len(data)] = data
        return len(data)

    def _receive(self, count: Optional[int], wait: bool) -> Optional[bytes]:
        """Buffered bytes first; else, where this thread may read the kernel, from it.
        None: nothing yet; b'': the end (or no connection)."""
        rx = self._rx
        if rx.length or rx.pending:
            with self._mutex:
                taken = rx.take(count)
                more = rx.consumed()
            self._consumed(more)
            return taken
        t = self._transport
        if t is None or rx.eof:
            return b""
        if not self._may_wait():
            return None
        size = count or RECEIVE_CHUNK
        try:
            w = self._waiter
            assert w is not None
            data = w.read_wait(size, None) if wait else w.read_now(size)
        except OSError as exc:
            if self._life.phase is Phase.CLOSED:
                return b""
            self._fail(eeReceive, exc, "recv", raise_=True)
            return b""
        if data == b"":
            rx.eof = True
        return data

    def ReceiveText(self) -> str:
        """All pending bytes decoded with ``Encoding``.

        An incomplete multi-byte character at the end stays pending until the rest arrives (or
        the peer closes), so text split across TCP segments is never garbled. On a blocking
        socket, what the kernel holds is read first (without waiting).
        """
        rx = self._rx
        if self._may_wait():
            self._pull_available()
        if not rx.pending:
            return ""
        with self._mutex:
            text = rx.decode(self.settings.Encoding)
            more = rx.consumed()
        self._consumed(more)
        return text

    def _pull_available(self) -> None:
        """Blocking socket: move what the kernel has into the buffer, without waiting."""
        t = self._transport
        rx = self._rx
        while t is not None and not rx.eof and not rx.full:
            try:
                assert self._waiter is not None
                data = self._waiter.read_now(RECEIVE_CHUNK)
            except OSError as exc:
                self._fail(eeReceive, exc, "recv", raise_=True)
                return
            if data is None:
                return
            if not data:
                rx.eof = True
                return
            with self._mutex:
                rx.append(data)

    def _consumed(self, more: bool) -> None:
        """The application read: another OnRead later if bytes remain (Winsock's rule), and
        read from the kernel again if the buffer had filled."""
        pump = self._pump
        if pump is None:
            return
        own = pump.in_own_thread()
        if more and not self._renotify_pending and self._notify_read:
            self._renotify_pending = True
            (pump.call_soon if own else pump.call_soon_threadsafe)(self._renotify)
        t = self._transport
        if t is not None and not t.reading and not t.served_by_worker and not self._rx.full \
                and not self._rx.eof and not self._reading_stopped and self._framer is None:
            if own:
                t.resume_reading()
            else:
                pump.call_soon_threadsafe(self._resume_reading)

    def _resume_reading(self) -> None:
        t = self._transport
        if t is not None and not self._rx.full and not self._rx.eof:
            t.resume_reading()

    def _renotify(self) -> None:
        self._renotify_pending = False
        with self._mutex:
            due = self._life.phase in READ_PHASES and self._rx.renotify()
        if due:
            self._fire(seRead)

    def read_into_buffer(self, timeout_ms: Optional[int] = None) -> bool:
        """Worker threads (the default ClientExecute): wait until data arrives, read it into
        the buffer and report it (OnRead by the read-event rule; the end of the stream and
        errors as always). False when the wait ended with nothing (time out, woken)."""
        t = self._transport
        rx = self._rx
        if t is None:
            return False
        if rx.eof or rx.full:  # not reading now: a reset must still end the connection at once
            assert self._waiter is not None
            err = self._waiter.error_wait(Deadline(timeout_ms if rx.eof else 50))
            if err and self._life.phase is not Phase.CLOSED:
                self.error_received(ErrorEvent.eeDisconnect, OSError(err, os.strerror(err)),
                                    "recv")
            return False
        try:
            assert self._waiter is not None
            data = self._waiter.read_wait(RECEIVE_CHUNK, timeout_ms)
        except OSError as exc:
            if self._life.phase is not Phase.CLOSED:
                self.error_received(ErrorEvent.eeDisconnect, exc, "recv")
            return False
        if data is None:
            return False
        if data:
            self.data_received(data)
        else:
            self.eof_received()
        return True

    def wait_readable(self, timeout_ms: Optional[int]) -> bool:
        """Wait until new data (or the end of the stream) can be read, at most ``timeout_ms``
        (None: no limit); a byte held back by the text decoder does not count."""
        rx = self._rx
        if rx.length or rx.eof:
            return True
        w = self._waiter
        if w is None:
            return True  # closed: the next read reports the end
        return w.readable_wait(timeout_ms)

    def read_wait(self, count: int, timeout_ms: Optional[int]) -> Optional[bytes]:
        """Read up to ``count`` bytes, waiting at most ``timeout_ms``: bytes, ``b''`` at the
        end of the stream, None when the time ran out (or the thread was woken). An error is
        OnError(eeReceive), OnDisconnect, then raised."""
        rx = self._rx
        if rx.length or rx.held:
            return self._receive(count, wait=False)
        w = self._waiter
        if w is None or rx.eof:
            return b""
        try:
            data = w.read_wait(count, timeout_ms)
        except OSError as exc:
            if self._life.phase is Phase.CLOSED:
                return b""
            self._fail(eeReceive, exc, "recv", raise_=True)
            return b""
        if data == b"":
            self._rx.eof = True
        return data
