"""The send queue: what send methods accepted, in order, and the one loop that writes it out.

A :class:`SendQueue` holds byte chunks, :class:`QueuedStream` items (file objects read in chunks
as the socket drains) and two markers: :data:`SHUTDOWN` (send FIN here, ``Shutdown(SD_SEND)``)
and :data:`DROP` (close the connection here, ``SendStreamThenDrop``). It does no I/O of its own:
:meth:`SendQueue.flush` hands chunks to a ``send`` callable (a non-blocking socket's, or a TLS
layer's) until it would block. The live connection, the background flush after a graceful
close and blocking writers (``WinSocketStream.Write``, thread-mode sends) all use this one loop,
so markers and streams mean the same everywhere.

Memory is bounded by what was accepted: :meth:`SendQueue.accept` keeps a reference to the
caller's object only when it accepted all of an immutable ``bytes``; a part, or a mutable
buffer, is copied. So a 200 MB buffer offered to a queue with a 4 MB limit leaves 4 MB queued,
not a view that keeps the 200 MB alive.

The queue is not thread-safe by itself: its owner (the transport) holds its lock around every
call.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable, Optional

from .errors import HandleException

__all__ = [
    "SendQueue", "QueuedStream", "SHUTDOWN", "DROP", "STREAM_CHUNK", "RECEIVE_CHUNK",
    "DRAINED", "BLOCKED", "DROP_REACHED",
]

#: Bytes read from a stream per send.
STREAM_CHUNK = 64 * 1024
#: Bytes asked from the kernel per read, unless a bulk transfer is filling every read (then up
#: to 1 MiB). Below glibc's initial 128 KiB mmap threshold, so a small read never pays for an
#: mmap/munmap pair (measured: docs/benchmarks.md).
RECEIVE_CHUNK = 64 * 1024


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


SHUTDOWN = _Marker("SHUTDOWN")  # send FIN here
DROP = _Marker("DROP")          # close the connection here

#: Most bytes one flush hands over before it returns (the rest goes on the next turn of the
#: event loop): one busy connection cannot stall the others or the GUI.
FLUSH_BUDGET = 1024 * 1024
#: Chunks shorter than this are sent together, up to GATHER_MAX bytes per send call, so a
#: queue of many small records costs few system calls.
GATHER_BELOW = 16 * 1024
GATHER_MAX = 64 * 1024

# what flush() ends with
DRAINED = 0       # everything went out
BLOCKED = 1       # the kernel (or TLS layer) took what it could, or the budget is spent
DROP_REACHED = 2  # a DROP marker came up: close the connection now


class QueuedStream:
    """A file-like object queued by SendStream, read in chunks as the socket drains."""

    __slots__ = ("file", "pending")

    def __init__(self, file: Any) -> None:
        self.file = file
        self.pending: Optional[memoryview] = None

    def next_chunk(self) -> Optional[memoryview]:
        """The bytes to send next (None at the end of the stream)."""
        if self.pending is None or not len(self.pending):
            data = self.file.read(STREAM_CHUNK)
            if not data:
                return None
            self.pending = memoryview(data if isinstance(data, bytes) else bytes(data))
        return self.pending

    def close(self) -> None:
        """Close the file; its own failure goes to the application hook."""
        try:
            self.file.close()
        except Exception as exc:  # the stream's own problem: report, keep going
            HandleException(exc)


_NO_ITEMS: "deque[Any]" = deque()  # never appended to: see SendQueue._own_items


class SendQueue:
    """Chunks, streams and markers waiting to be sent, with the byte counts that bound them.

    ``limit`` (0: none) caps the bytes :meth:`accept` lets in; ``low_water`` is where
    :meth:`write_notice_due` says OnWrite is due. ``queued`` counts queued chunk bytes
    (streams excluded: ``SendQueueLength``). ``appended``/``completed`` count items, so a
    blocking writer knows when its own item has gone out.
    """

    __slots__ = ("items", "queued", "streams", "limit", "low_water", "appended", "completed",
                 "shutdown_queued", "dropping", "_notice_given")

    def __init__(self) -> None:
        self.items: deque[Any] = _NO_ITEMS  # a deque of its own from the first item on
        self.queued = 0
        self.streams = 0
        self.limit = 0
        self.low_water = 0
        self.appended = 0
        self.completed = 0
        self.shutdown_queued = False
        self.dropping = False
        self._notice_given = False

    def __bool__(self) -> bool:
        return bool(self.items)

    # -- filling ----------------------------------------------------------------------------
    def room(self) -> int:
        """Bytes :meth:`accept` would take now (-1: no limit)."""
        return -1 if not self.limit else max(self.limit - self.queued, 0)

    def accept(self, buf: Any, view: memoryview) -> int:
        """Queue as much of ``view`` (``buf``'s bytes) as the limit allows; returns the count
        (-1 when nothing fits). Copies unless all of an immutable ``bytes`` is taken."""
        n = len(view)
        limit = self.limit
        if limit and self.queued + n > limit:
            room = limit - self.queued
            if room <= 0:
                return -1
            self._push(bytes(view[:room]), room)
            return room
        self._push(buf if type(buf) is bytes and len(buf) == n else bytes(view), n)
        return n

    def append_all(self, chunk: Any) -> int:
        """Queue all of ``chunk`` whatever the limit (a blocking writer's own buffer, which it
        waits for); returns the item number :meth:`sent_through` takes."""
        self._push(chunk, len(chunk))
        return self.appended

    def append_rest(self, chunk: Any) -> None:
        """Queue what the kernel did not take of a chunk sent directly (already accepted)."""
        self._push(chunk, len(chunk))

    def prepend_rest(self, chunk: Any) -> None:
        """Queue, *before* everything queued, what the kernel did not take of a chunk sent
        directly while the queue looked empty (another thread may have queued since).

        Only for a queue without waiting writers: the item put in front completes before
        older item numbers, which :meth:`sent_through` and :meth:`withdraw` rely on (the pump
        mode's lock-free send, where no thread waits on the queue)."""
        self._push(chunk, len(chunk), front=True)

    def _push(self, chunk: Any, n: int, front: bool = False) -> None:
        if not n:
            return  # nothing to send: an empty item would only stall the write loop
        if front:
            self._own_items().appendleft(chunk)
        else:
            self._own_items().append(chunk)
        self.appended += 1
        self.queued += n
        if self.queued > self.low_water:
            self._notice_given = False

    def append_stream(self, stream: QueuedStream, drop: bool) -> None:
        """Queue a stream (then, with ``drop``, the DROP marker)."""
        self._own_items().append(stream)
        self.appended += 1
        self.streams += 1
        if drop:
            self._own_items().append(DROP)
            self.appended += 1
            self.dropping = True

    def append_shutdown(self) -> None:
        """Queue FIN after everything queued so far."""
        self._own_items().append(SHUTDOWN)
        self.appended += 1
        self.shutdown_queued = True

    def _own_items(self) -> "deque[Any]":
        items = self.items
        if items is _NO_ITEMS:  # most connections never queue: they share one empty deque
            items = self.items = deque()
        return items

    def sent_through(self, item: int) -> bool:
        """Whether item number ``item`` (from :meth:`append_all`) has gone out completely."""
        return self.completed >= item

    def withdraw(self, item: int, length: int) -> int:
        """Take item ``item`` back if it is still the last one (a blocking write that timed
        out); returns how many of its ``length`` bytes had gone out. When other items follow
        it, it stays queued and counts as sent (``length`` is returned)."""
        if self.completed >= item:
            return length
        if self.appended != item or not self.items:
            return length
        rest = len(self.items[-1])
        self.items.pop()
        self.appended -= 1
        self.queued -= rest
        return length - rest

    # -- writing ----------------------------------------------------------------------------
    def flush(self, send: Callable[[Any], int], shutdown_write: Callable[[], None],
              stream_failed: Optional[Callable[[BaseException], None]] = None,
              budget: int = FLUSH_BUDGET) -> int:
        """Hand queued data to ``send`` until it would block or ``budget`` bytes went out;
        returns DRAINED, BLOCKED or DROP_REACHED. ``send`` raising BlockingIOError (or
        returning less than offered) means blocked; other errors propagate. A stream that fails
        to read is dropped and reported to ``stream_failed`` (default: the application hook)."""
        items = self.items
        while items:
            if budget <= 0:
                return BLOCKED
            item = items[0]
            if item is SHUTDOWN:
                items.popleft()
                self.completed += 1
                shutdown_write()
                continue
            if item is DROP:
                items.popleft()
                self.completed += 1
                return DROP_REACHED
            if type(item) is QueuedStream:
                try:
                    chunk = item.next_chunk()
                except Exception as exc:
                    self._end_stream(item)
                    (stream_failed or HandleException)(exc)
                    continue
                if chunk is None:
                    self._end_stream(item)
                    continue
                try:
                    sent = send(chunk)
                except BlockingIOError:
                    return BLOCKED
                budget -= sent
                item.pending = chunk[sent:]
                if sent < len(chunk):
                    return BLOCKED
                continue
            if not len(item):  # an empty chunk (from a caller's empty view): nothing to send
                items.popleft()
                self.completed += 1
                continue
            if len(item) < GATHER_BELOW and len(items) > 1:
                gathered = self._gather()
                if gathered is not None:
                    try:
                        sent = send(gathered)
                    except BlockingIOError:
                        return BLOCKED
                    budget -= sent
                    self._consume(sent)
                    if sent < len(gathered):
                        return BLOCKED
                    continue
            try:
                sent = send(item)
            except BlockingIOError:
                return BLOCKED
            budget -= sent
            self.queued -= sent
            if sent < len(item):
                items[0] = memoryview(item)[sent:]
                return BLOCKED
            items.popleft()
            self.completed += 1
        return DRAINED

    def _gather(self) -> Optional[bytearray]:
        """The leading small chunks joined (None when only one would go)."""
        out = bytearray()
        count = 0
        for item in self.items:
            if type(item) is QueuedStream or isinstance(item, _Marker) or \
                    len(out) + len(item) > GATHER_MAX:
                break
            out += item
            count += 1
        return out if count > 1 else None

    def _consume(self, sent: int) -> None:
        """``sent`` bytes of the leading chunks went out."""
        items = self.items
        self.queued -= sent
        while sent:
            first = items[0]
            if len(first) <= sent:
                sent -= len(first)
                items.popleft()
                self.completed += 1
            else:
                items[0] = memoryview(first)[sent:]
                sent = 0

    def _end_stream(self, item: QueuedStream) -> None:
        self.items.popleft()
        self.completed += 1
        self.streams -= 1
        item.close()

    def write_notice_due(self) -> bool:
        """OnWrite is due: the queue has drained to ``low_water`` (no stream pending), and this
        was not reported since it last rose above it. An empty queue is always due."""
        if self.queued > self.low_water or self.streams:
            return False
        if not self.items:
            self._notice_given = False
            return True
        if self._notice_given:
            return False
        self._notice_given = True
        return True

    def discard(self) -> None:
        """Drop everything (an abortive close); queued streams are closed."""
        for item in self.items:
            if type(item) is QueuedStream:
                item.close()
        if self.items is not _NO_ITEMS:
            self.items.clear()
        self.queued = 0
        self.streams = 0
        self.completed = self.appended
