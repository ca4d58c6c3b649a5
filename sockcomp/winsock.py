"""The socket objects: ``CustomWinSocket`` and its client, server-client and listening kinds.

A socket object owns one OS socket, its receive buffer and its send queue (the transport, in
asyncio's terms); the components (:mod:`sockcomp.components`) only turn the notifications a socket
object reports into Qt signals. Notifications come from the thread's readiness pump
(:mod:`sockcomp._pump`) and are reported through two sinks set by the owner:
``event_sink(socket, SocketEvent)`` and ``error_sink(socket, ErrorEvent, Var) -> None``.

Delivery rules (Winsock's, which ScktComp inherits, with the library's fixes):

* **Reading.** The socket reads what the kernel has into its own buffer and reports ``seRead``
  once; it reports ``seRead`` again only after the application has read (``ReceiveBuf``,
  ``ReceiveText``, ``ReceiveBytes``) — then on a later turn if bytes remain. A handler that never
  reads therefore never makes OnRead spin. Past :data:`RECEIVE_HIGH_WATER` unread bytes the
  socket stops reading from the kernel, so TCP flow control slows the peer down.
* **Writing.** Send methods never lose or reorder data: what the kernel does not take at once is
  queued and flushed when the socket is writable (``SendQueueLength`` tells how much waits).
  ``seWrite`` is reported after the connection opens and whenever the queue has drained.
* **Ending.** Every connection reports ``seDisconnect`` exactly once, however it ends. A peer's
  FIN is reported only after all data that arrived before it was offered through ``seRead``, and
  with the socket still writable: what the handler sends is flushed before the library closes.
"""
from __future__ import annotations

import errno
import io
import socket
import threading
from collections import deque
from typing import Any, Callable, Optional, Union

from ._pump import READ, WRITE, Pump, current_pump
from ._resolve import AddrInfo, Lookup, lookup_async, lookup_numeric
from .enums import (
    ClientType, ErrorEvent, LookupState, ServerType, SocketEvent, SocketState, eeConnect,
    eeDisconnect, eeLookup, eeSend, seConnect, seConnecting, seDisconnect, seListen, seLookup,
    seRead, seWrite,
)
from .errors import (
    WSAENOADDRESS, WSAESHUTDOWN, ESocketError, HandleException, wsa_code,
)
from .var import Var

__all__ = [
    "CustomWinSocket", "ClientWinSocket", "ServerClientWinSocket", "ServerWinSocket",
    "RECEIVE_HIGH_WATER", "seHalfClose",
]

#: Unread bytes a socket buffers before it stops reading from the kernel.
RECEIVE_HIGH_WATER = 4 * 1024 * 1024
#: Bytes asked from the kernel per read.
RECEIVE_CHUNK = 256 * 1024
#: Bytes read from a stream per send.
STREAM_CHUNK = 64 * 1024
#: Longest a closed socket keeps flushing queued bytes to a peer that does not read (ms).
CLOSE_FLUSH_TIMEOUT_MS = 60_000

#: sockcomp's extra notification: the peer finished sending and ``AllowHalfClose`` is on.
seHalfClose = 8

EventSink = Callable[["CustomWinSocket", int], None]
ErrorSink = Callable[["CustomWinSocket", ErrorEvent, Var[int]], None]

_SHUTDOWN = object()  # send-queue marker: shutdown(SHUT_WR) here
_DROP = object()      # send-queue marker: close the socket here (SendStreamThenDrop)

_CONNECT_PENDING = {errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, errno.EALREADY}


def _no_event(sock: "CustomWinSocket", event: int) -> None:
    pass


def _no_error(sock: "CustomWinSocket", event: ErrorEvent, code: Var[int]) -> None:
    pass


def _plain_address(addr: str) -> str:
    """Show an IPv4-mapped IPv6 address (dual-stack listener) as plain dotted IPv4."""
    if addr.startswith("::ffff:") and "." in addr:
        return addr[7:]
    return addr.split("%", 1)[0] if addr.startswith("fe80") else addr


class _Stream:
    """A file-like object queued by SendStream, read in chunks as the socket drains."""

    __slots__ = ("file", "pending")

    def __init__(self, file: Any) -> None:
        self.file = file
        self.pending: Optional[memoryview] = None

    def next_chunk(self) -> Optional[memoryview]:
        if self.pending is None or not len(self.pending):
            data = self.file.read(STREAM_CHUNK)
            if not data:
                return None
            self.pending = memoryview(data if isinstance(data, bytes) else bytes(data))
        return self.pending

    def close(self) -> None:
        try:
            self.file.close()
        except Exception as exc:  # the stream's own problem: report, keep going
            HandleException(exc)


class _LockGuard:
    """Returned by ``Lock()``: leaving the ``with`` block unlocks (the lock is already held)."""

    __slots__ = ("_lock",)

    def __init__(self, lock: Any) -> None:
        self._lock = lock

    def __enter__(self) -> "_LockGuard":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()


class CustomWinSocket:
    """Base of every socket object: one OS socket, its buffers, and the VCL data methods.

    Addresses are read live from the OS socket: ``LocalAddress``/``RemoteAddress`` are ``''``
    and ``LocalPort`` is ``-1`` once the socket is closed. ``Data`` is free for the application.
    """

    def __init__(self, sock: Optional[socket.socket] = None) -> None:
        self._sock: Optional[socket.socket] = sock
        self._pump: Optional[Pump] = None
        self._lock = threading.RLock()
        self._state = SocketState.ssConnected if sock is not None else SocketState.ssClosed
        self._event_sink: EventSink = _no_event
        self._error_sink: ErrorSink = _no_error
        self._blocking = False
        self._remote_host: Optional[str] = None
        self.Data: Any = None
        #: Text encoding of ``SendText``/``ReceiveText`` (``'utf-8'`` by default).
        self.Encoding = "utf-8"
        self.AllowHalfClose = False
        self._reset_buffers()

    def _reset_buffers(self) -> None:
        self._rchunks: deque[bytes] = deque()
        self._rlen = 0
        self._eof = False
        self._read_notified = False
        self._renotify_pending = False
        self._reading_stopped = False  # Shutdown(SD_RECEIVE) or half-closed
        self._squeue: deque[Any] = deque()
        self._squeued = 0
        self._send_closed = False
        self._dropping = False
        self._disconnecting = False
        self._mask = 0

    # ------------------------------------------------------------------ properties
    @property
    def Connected(self) -> bool:
        """True from the moment the connection is usable until the socket is closed."""
        return self._state in (SocketState.ssConnected, SocketState.ssHalfClosed,
                               SocketState.ssListening)

    @property
    def State(self) -> SocketState:
        """Where the socket is in its life cycle (beyond the VCL)."""
        return self._state

    @property
    def SocketHandle(self) -> int:
        """The OS descriptor, or -1 when there is none."""
        sock = self._sock
        return sock.fileno() if sock is not None else -1

    def _sockname(self) -> Optional[tuple[Any, ...]]:
        sock = self._sock
        if sock is None:
            return None
        try:
            return sock.getsockname()  # type: ignore[no-any-return]
        except OSError:
            return None

    def _peername(self) -> Optional[tuple[Any, ...]]:
        sock = self._sock
        if sock is None or not self.Connected:
            return None
        try:
            return sock.getpeername()  # type: ignore[no-any-return]
        except OSError:
            return None

    @property
    def LocalAddress(self) -> str:
        """Local IP address as text ('' without a socket)."""
        name = self._sockname()
        return _plain_address(name[0]) if name else ""

    @property
    def LocalHost(self) -> str:
        """This machine's host name ('' without a socket, as in the VCL)."""
        return socket.gethostname() if self._sock is not None else ""

    @property
    def LocalPort(self) -> int:
        """Local port, or -1 without a socket."""
        name = self._sockname()
        return int(name[1]) if name else -1

    @property
    def RemoteAddress(self) -> str:
        """The peer's IP address as text ('' when not connected)."""
        name = self._peername()
        return _plain_address(name[0]) if name else ""

    @property
    def RemotePort(self) -> int:
        """The peer's port (0 when not connected)."""
        name = self._peername()
        return int(name[1]) if name else 0

    @property
    def RemoteHost(self) -> str:
        """The peer's host name by reverse lookup ('' if it has none or when not connected).

        The lookup blocks the calling thread the first time and is cached per connection.
        """
        if self._remote_host is None:
            addr = self.RemoteAddress
            if not addr:
                return ""
            try:
                self._remote_host = socket.gethostbyaddr(addr)[0]
            except OSError:
                self._remote_host = ""
        return self._remote_host

    @property
    def SendQueueLength(self) -> int:
        """Bytes accepted by send methods but not yet handed to the OS (queued streams excluded)."""
        return self._squeued

    # ------------------------------------------------------------------ locking
    def Lock(self) -> "_LockGuard":
        """Enter the socket's re-entrant lock; also usable as ``with sock.Lock():``."""
        self._lock.acquire()
        return _LockGuard(self._lock)

    def Unlock(self) -> None:
        """Leave the socket's lock."""
        self._lock.release()

    def __enter__(self) -> "CustomWinSocket":
        self._lock.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()

    # ------------------------------------------------------------------ notifications
    def _fire(self, event: int) -> None:
        self._event_sink(self, event)

    def _report_error(self, event: ErrorEvent, code: int) -> int:
        """Fire OnError/OnClientError and return the ErrorCode the handlers left."""
        cell: Var[int] = Var(code)
        self._error_sink(self, event, cell)
        try:
            return int(cell.value or 0)
        except (TypeError, ValueError):
            return code

    def _fail(self, event: ErrorEvent, exc: BaseException, api: str, raise_: bool = False) -> None:
        """An error ended the connection: OnError, then close with OnDisconnect, then raise/hook."""
        code = self._report_error(event, wsa_code(exc))
        self._disconnect(graceful=False)
        if code:
            err = ESocketError.from_code(code, api, getattr(exc, "errno", None))
            if raise_:
                raise err
            HandleException(err)

    # ------------------------------------------------------------------ pump wiring
    def _attach(self, mask: int) -> None:
        sock = self._sock
        assert sock is not None
        if self._pump is None:
            self._pump = current_pump()
        self._mask = mask
        self._pump.register(sock.fileno(), self._on_ready, mask)

    def _update_interest(self) -> None:
        sock = self._sock
        if sock is None or self._pump is None or self._blocking:
            return
        mask = 0
        if self._state == SocketState.ssConnecting or self._squeue:
            mask |= WRITE
        if (self._state in (SocketState.ssConnected, SocketState.ssHalfClosed)
                and not self._eof and not self._reading_stopped
                and self._rlen < RECEIVE_HIGH_WATER):
            mask |= READ
        if mask != self._mask:
            self._mask = mask
            self._pump.modify(sock.fileno(), mask)

    def _on_ready(self, events: int) -> None:
        if events & WRITE:
            if self._state == SocketState.ssConnecting:
                self._on_connect_ready()
                return
            if self._squeue:
                self._flush()
        if events & READ and self._sock is not None:
            self._on_readable()

    def _on_connect_ready(self) -> None:  # overridden by ClientWinSocket
        pass

    # ------------------------------------------------------------------ receiving
    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None or self._eof or self._reading_stopped:
            return
        try:
            data = sock.recv(RECEIVE_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(eeDisconnect, exc, "recv")
            return
        if not data:
            self._eof = True
            self._update_interest()
            self._peer_closed()
            return
        self._rchunks.append(data)
        self._rlen += len(data)
        if self._rlen >= RECEIVE_HIGH_WATER:
            self._update_interest()
        if not self._read_notified:
            self._read_notified = True
            self._fire(seRead)

    def _consumed(self) -> None:
        """The application read: Winsock re-posts FD_READ (later) if bytes remain."""
        self._read_notified = False
        if self._rlen and not self._renotify_pending and self._pump is not None:
            self._renotify_pending = True
            self._pump.call_soon(self._renotify)
        if self._mask & READ == 0:
            self._update_interest()

    def _renotify(self) -> None:
        self._renotify_pending = False
        if self._rlen and not self._read_notified and self.Connected:
            self._read_notified = True
            self._fire(seRead)

    def _take(self, count: int) -> bytes:
        """Remove up to ``count`` bytes from the receive buffer."""
        chunks = self._rchunks
        first = chunks[0]
        if len(first) == count or (len(chunks) == 1 and len(first) <= count):
            chunks.popleft()
            self._rlen -= len(first)
            return first
        out = bytearray()
        while chunks and len(out) < count:
            chunk = chunks[0]
            need = count - len(out)
            if len(chunk) <= need:
                out += chunk
                chunks.popleft()
            else:
                out += chunk[:need]
                chunks[0] = chunk[need:]
        self._rlen -= len(out)
        return bytes(out)

    def _blocking_recv(self, count: int) -> bytes:  # overridden for blocking sockets
        raise NotImplementedError

    def ReceiveLength(self) -> int:
        """Bytes that can be read now without waiting."""
        return self._rlen

    def ReceiveBytes(self, count: Optional[int] = None) -> bytes:
        """Read up to ``count`` pending bytes (all when ``None``); ``b''`` when none (beyond the VCL)."""
        with self._lock:
            if self._blocking and not self._rlen and self._sock is not None:
                return self._blocking_recv(count if count is not None else RECEIVE_CHUNK)
            if not self._rlen:
                if self._read_notified:
                    self._consumed()
                return b""
            data = self._take(self._rlen if count is None else min(count, self._rlen))
            self._consumed()
            return data

    def ReceiveBuf(self, buf: Any, count: Optional[int] = None) -> int:
        """Read into the writable buffer ``buf``; returns bytes read.

        ``count`` defaults to ``len(buf)``; ``count == -1`` returns the number of bytes pending
        without reading. Returns 0 when the peer has closed and nothing is left, -1 when
        nothing is readable yet.
        """
        if count == -1:
            return self._rlen
        view = memoryview(buf).cast("B")
        want = len(view) if count is None else min(count, len(view))
        if not self.Connected and not self._rlen:
            return 0
        if want <= 0:
            return 0
        data = self.ReceiveBytes(want)
        if not data:
            return 0 if self._eof or self._sock is None else -1
        view[:len(data)] = data
        return len(data)

    def ReceiveText(self) -> str:
        """All pending bytes decoded with ``Encoding``.

        An incomplete multi-byte character at the end stays pending until the rest arrives (or
        the peer closes), so text split across TCP segments is never garbled.
        """
        import codecs
        with self._lock:
            data = self.ReceiveBytes()
            if not data:
                return ""
            decoder = codecs.getincrementaldecoder(self.Encoding)("replace")
            text = decoder.decode(data, final=self._eof)
            held = decoder.getstate()[0]
            if held:  # an incomplete character: keep it pending, OnRead comes with the rest
                self._rchunks.appendleft(bytes(held))
                self._rlen += len(held)
            return text

    # ------------------------------------------------------------------ sending
    def _can_send(self) -> bool:
        return self._sock is not None and self._state in (
            SocketState.ssConnected, SocketState.ssHalfClosed) and not self._disconnecting \
            and not self._dropping

    def SendBuf(self, buf: Any, count: Optional[int] = None) -> int:
        """Send ``count`` bytes of ``buf`` (all when ``None``); returns the bytes accepted.

        When connected every byte is accepted: what the OS does not take now is queued and
        flushed in order. Returns 0 when not connected (as the VCL). After ``Shutdown(SD_SEND)``
        raises ``ESocketError`` (10058).
        """
        with self._lock:
            if not self._can_send():
                return 0
            if isinstance(buf, str):
                raise TypeError("SendBuf takes bytes-like data; use SendText for str")
            view = memoryview(buf).cast("B")
            if count is not None:
                view = view[:max(count, 0)]
            n = len(view)
            if n == 0:
                return 0
            if self._send_closed:
                raise ESocketError.from_code(WSAESHUTDOWN, "send", errno.ESHUTDOWN)
            if self._blocking:
                return self._blocking_send(view)
            immutable = isinstance(buf, bytes)
            if self._squeue:
                self._squeue.append(view if immutable else bytes(view))
                self._squeued += n
                return n
            sock = self._sock
            assert sock is not None
            try:
                sent = sock.send(view)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._fail(eeSend, exc, "send", raise_=True)
                return -1
            if sent < n:
                rest = view[sent:]
                self._squeue.append(rest if immutable else bytes(rest))
                self._squeued += n - sent
                self._update_interest()
            return n

    def _blocking_send(self, view: memoryview) -> int:  # overridden for blocking sockets
        raise NotImplementedError

    def SendText(self, text: str) -> int:
        """Send ``text`` encoded with ``Encoding``; returns the number of bytes accepted."""
        if not isinstance(text, str):
            raise TypeError("SendText takes str; use SendBuf for bytes")
        return self.SendBuf(text.encode(self.Encoding))

    def SendStream(self, stream: Any) -> bool:
        """Queue a binary file-like object; the socket closes it when sent (or on close).

        Returns False (and does not take the stream) when not connected. Several streams may be
        queued; they go out in order after everything queued before them.
        """
        return self._send_stream(stream, drop=False)

    def SendStreamThenDrop(self, stream: Any) -> bool:
        """Like :meth:`SendStream`, then close the connection once the last byte has left."""
        return self._send_stream(stream, drop=True)

    def _send_stream(self, stream: Any, drop: bool) -> bool:
        with self._lock:
            if not self._can_send() or self._send_closed:
                return False
            if self._blocking:
                while True:
                    data = stream.read(STREAM_CHUNK)
                    if not data:
                        break
                    self._blocking_send(memoryview(data))
                _Stream(stream).close()
                if drop:
                    self.Close()
                return True
            self._squeue.append(_Stream(stream))
            if drop:
                self._squeue.append(_DROP)
                self._dropping = True
            self._flush()
            return True

    def Shutdown(self, how: int = socket.SHUT_WR) -> None:
        """Half-close: ``SD_SEND`` sends FIN after everything already queued and keeps receiving;
        ``SD_RECEIVE`` stops receiving; ``SD_BOTH`` does both (beyond the VCL)."""
        with self._lock:
            if self._sock is None:
                return
            if how in (socket.SHUT_RD, socket.SHUT_RDWR):
                self._reading_stopped = True
                try:
                    self._sock.shutdown(socket.SHUT_RD)
                except OSError:
                    pass
                self._update_interest()
            if how in (socket.SHUT_WR, socket.SHUT_RDWR) and not self._send_closed:
                self._send_closed = True
                if self._squeue:
                    self._squeue.append(_SHUTDOWN)
                else:
                    try:
                        self._sock.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass

    def _flush(self) -> None:
        """Hand queued data to the OS until it would block; report seWrite when drained."""
        sock = self._sock
        queue = self._squeue
        while queue and sock is not None:
            item = queue[0]
            if item is _SHUTDOWN:
                queue.popleft()
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                continue
            if item is _DROP:
                queue.popleft()
                self._disconnect(graceful=True)
                return
            counted = not isinstance(item, _Stream)
            if counted:
                chunk = item
            else:
                try:
                    chunk = item.next_chunk()
                except Exception as exc:
                    queue.popleft()
                    item.close()
                    HandleException(exc)
                    continue
                if chunk is None:
                    queue.popleft()
                    item.close()
                    continue
            try:
                sent = sock.send(chunk)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._fail(eeSend, exc, "send")
                return
            if counted:
                self._squeued -= sent
                if sent < len(chunk):
                    queue[0] = memoryview(chunk)[sent:]
                    break
                queue.popleft()
            else:
                item.pending = chunk[sent:]
                if sent < len(chunk):
                    break
        self._update_interest()
        if not queue and self._state in (SocketState.ssConnected, SocketState.ssHalfClosed):
            self._fire(seWrite)

    # ------------------------------------------------------------------ ending
    def _peer_closed(self) -> None:
        """The peer sent FIN: offer what is left, then OnDisconnect (or OnHalfClose)."""
        while self._rlen and not self._read_notified and self.Connected:
            before = self._rlen
            self._read_notified = True
            self._fire(seRead)
            if self._rlen >= before:
                break
        if not self.Connected or self._disconnecting:
            return
        if self.AllowHalfClose:
            self._state = SocketState.ssHalfClosed
            self._fire(seHalfClose)
        else:
            self._disconnect(graceful=True)

    def Close(self) -> None:
        """Close the connection: OnDisconnect fires (once), queued data is still delivered."""
        self._disconnect(graceful=True)

    def Disconnect(self, Socket: Optional[int] = None) -> None:
        """VCL-compatible spelling of :meth:`Close` (``Socket`` must be this socket's handle)."""
        if Socket is None or Socket == self.SocketHandle:
            self._disconnect(graceful=True)

    def _disconnect(self, graceful: bool) -> None:
        with self._lock:
            if self._disconnecting or self._state == SocketState.ssClosed:
                return
            self._disconnecting = True
            try:
                self._cancel_pending()
                self._fire(seDisconnect)
            finally:
                self._release(graceful)
                self._disconnecting = False
            self._after_disconnect()

    def _cancel_pending(self) -> None:  # ClientWinSocket cancels a pending lookup here
        pass

    def _after_disconnect(self) -> None:  # ServerClientWinSocket leaves Connections here
        pass

    def _release(self, graceful: bool) -> None:
        """Detach the OS socket from this object and close it, flushing the queue if graceful."""
        sock = self._sock
        self._sock = None
        self._state = SocketState.ssClosed
        self._remote_host = None
        queue = self._squeue
        pump = self._pump
        self._reset_buffers()
        if sock is None:
            return
        if pump is not None and not self._blocking:
            pump.unregister(sock.fileno())
        if graceful and queue and pump is not None and not self._blocking:
            _Closer(sock, queue, pump)
            return
        for item in queue:
            if isinstance(item, _Stream):
                item.close()
        _close_quietly(sock, graceful)


def _close_quietly(sock: socket.socket, graceful: bool) -> None:
    """Close an OS socket; a graceful close first drains unread input so Linux sends FIN, not RST."""
    try:
        if graceful:
            sock.setblocking(False)
            for _ in range(64):
                if not sock.recv(RECEIVE_CHUNK):
                    break
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
    except OSError:
        pass
    sock.close()


class _Closer:
    """Finishes a graceful close in the background: flush the queue, then close the OS socket."""

    def __init__(self, sock: socket.socket, queue: deque[Any], pump: Pump) -> None:
        from PySide6.QtCore import QTimer
        self._sock = sock
        self._queue = queue
        self._pump = pump
        self._fd = sock.fileno()
        _CLOSERS.add(self)
        pump.register(self._fd, self._on_ready, WRITE)
        QTimer.singleShot(CLOSE_FLUSH_TIMEOUT_MS, pump, self._give_up)

    def _on_ready(self, events: int) -> None:
        queue = self._queue
        sock = self._sock
        while queue:
            item = queue[0]
            if item is _SHUTDOWN or item is _DROP:
                queue.popleft()
                continue
            if isinstance(item, _Stream):
                try:
                    chunk = item.next_chunk()
                except Exception:
                    chunk = None
                if chunk is None:
                    queue.popleft()
                    item.close()
                    continue
            else:
                chunk = item
            try:
                sent = sock.send(chunk)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._finish(graceful=False)
                return
            if isinstance(item, _Stream):
                item.pending = chunk[sent:]
                if sent < len(chunk):
                    return
            elif sent < len(chunk):
                queue[0] = memoryview(chunk)[sent:]
                return
            else:
                queue.popleft()
        self._finish(graceful=True)

    def _give_up(self) -> None:
        if self in _CLOSERS:
            self._finish(graceful=False)

    def _finish(self, graceful: bool) -> None:
        if self not in _CLOSERS:
            return
        _CLOSERS.discard(self)
        self._pump.unregister(self._fd)
        for item in self._queue:
            if isinstance(item, _Stream):
                item.close()
        self._queue.clear()
        _close_quietly(self._sock, graceful)


_CLOSERS: set[_Closer] = set()


class ClientWinSocket(CustomWinSocket):
    """The socket of a ClientSocket: looks up, connects, then reads and writes."""

    def __init__(self, sock: Optional[socket.socket] = None) -> None:
        super().__init__(sock)
        self._client_type = ClientType.ctNonBlocking
        self._lookup: Optional[Lookup] = None
        self._lookup_state = LookupState.lsIdle
        self._addresses: list[AddrInfo] = []
        self._connect_error: Optional[OSError] = None

    @property
    def ClientType(self) -> ClientType:
        """ctNonBlocking (events) or ctBlocking (calls block); not changeable while connected."""
        return self._client_type

    @ClientType.setter
    def ClientType(self, value: Union[ClientType, int]) -> None:
        value = ClientType(int(value))
        if value != self._client_type:
            if self.Connected:
                raise ESocketError("Can't change value while socket is active")
            self._client_type = value

    @property
    def LookupState(self) -> LookupState:
        """Progress of the asynchronous host lookup."""
        return self._lookup_state

    def Open(self, Host: str, Address: str, Service: str, Port: int,
             Block: Optional[bool] = None) -> None:
        """Connect: Host (looked up off-thread) beats Address; Service beats Port.

        Non-blocking: OnLookup fires now; with a numeric Address OnConnecting too, and the rest
        follows from the event loop. A missing address, or a bad numeric address or service, is
        reported at once (OnError(eeLookup), OnDisconnect) and raised unless the handler set
        ``ErrorCode.value = 0``.
        """
        if self._state != SocketState.ssClosed:
            raise ESocketError("Socket already open")
        if Block is not None and Block != (self._client_type == ClientType.ctBlocking):
            self._client_type = ClientType.ctBlocking if Block else ClientType.ctNonBlocking
        self._blocking = self._client_type == ClientType.ctBlocking
        if self._pump is None and not self._blocking:
            self._pump = current_pump()
        self._state = SocketState.ssLookup
        self._fire(seLookup)
        if self._state != SocketState.ssLookup:
            return  # closed from OnLookup
        port: Union[int, str] = Service if Service else Port
        if Host:
            if self._blocking:
                self._lookup_blocking(Host, port)
                return
            self._lookup_state = LookupState.lsLookupAddress
            assert self._pump is not None
            self._lookup = lookup_async(self._pump, Host, port, self._lookup_done)
            return
        if not Address:
            self._lookup_failed(None, "", synchronous=True)
            return
        try:
            infos = lookup_numeric(Address, port)
        except socket.gaierror as exc:
            api = "getservbyname" if exc.errno == getattr(socket, "EAI_SERVICE", None) else \
                "inet_pton"
            self._lookup_failed(exc, api, synchronous=True)
            return
        self._connect(infos)

    def _lookup_blocking(self, host: str, port: Union[int, str]) -> None:
        raise NotImplementedError("ctBlocking arrives with the blocking-modes work")

    def _lookup_done(self, infos: Optional[list[AddrInfo]], error: Optional[OSError]) -> None:
        self._lookup = None
        self._lookup_state = LookupState.lsIdle
        if self._state != SocketState.ssLookup:
            return
        if error is not None or not infos:
            self._lookup_failed(error, "ASync Lookup", synchronous=False)
            return
        self._connect(infos)

    def _lookup_failed(self, exc: Optional[BaseException], api: str, synchronous: bool) -> None:
        code = wsa_code(exc) if exc is not None else WSAENOADDRESS
        left = self._report_error(eeLookup, code)
        self._disconnect(graceful=False)
        if not left:
            return
        if exc is None:
            err = ESocketError("No address specified", WSAENOADDRESS)
        else:
            err = ESocketError.from_code(left, api, getattr(exc, "errno", None))
        if synchronous:
            raise err
        HandleException(err)

    def _cancel_pending(self) -> None:
        if self._lookup is not None:
            self._lookup.cancel()
            self._lookup = None
            self._lookup_state = LookupState.lsIdle

    # -- connecting ------------------------------------------------------------------------
    def _connect(self, infos: list[AddrInfo]) -> None:
        self._addresses = list(infos)
        self._connect_error = None
        self._state = SocketState.ssConnecting
        self._try_next_address(first=True)

    def _try_next_address(self, first: bool = False) -> None:
        while self._addresses and self._state == SocketState.ssConnecting:
            family, type_, proto, _, sockaddr = self._addresses.pop(0)
            try:
                sock = socket.socket(family, type_, proto)
            except OSError as exc:
                self._connect_error = exc
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
            if first:
                first = False
                self._fire(seConnecting)
                if self._state != SocketState.ssConnecting or self._sock is not sock:
                    return  # closed from OnConnecting
            if self._blocking:
                if self._connect_blocking(sock, sockaddr):
                    return
                continue
            sock.setblocking(False)
            err = sock.connect_ex(sockaddr)
            if err == 0 or err in _CONNECT_PENDING:
                self._attach(WRITE)
                return
            self._connect_error = OSError(err, errno.errorcode.get(err, str(err)))
            self._sock = None
            sock.close()
        if self._state == SocketState.ssConnecting:
            error = self._connect_error or OSError(errno.ECONNREFUSED, "Connection refused")
            if self._blocking:
                self._fail(eeConnect, error, "connect", raise_=True)
            else:
                assert self._pump is not None
                self._pump.call_soon(self._connect_failed_later, error)

    def _connect_blocking(self, sock: socket.socket, sockaddr: Any) -> bool:
        raise NotImplementedError("ctBlocking arrives with the blocking-modes work")

    def _connect_failed_later(self, error: OSError) -> None:
        if self._state == SocketState.ssConnecting and self._sock is None:
            self._fail(eeConnect, error, "connect")

    def _on_connect_ready(self) -> None:
        sock = self._sock
        assert sock is not None
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err == 0:
            try:
                sock.getpeername()
            except OSError as exc:
                if exc.errno == errno.ENOTCONN:
                    return  # spurious readiness: still connecting
                err = exc.errno or errno.ECONNREFUSED
        if err:
            assert self._pump is not None
            self._pump.unregister(sock.fileno())
            self._sock = None
            sock.close()
            self._connect_error = OSError(err, errno.errorcode.get(err, str(err)))
            if self._addresses:
                self._try_next_address()
            else:
                self._fail(eeConnect, self._connect_error, "connect")
            return
        self._addresses = []
        self._state = SocketState.ssConnected
        self._update_interest()
        self._fire(seConnect)
        if self._state == SocketState.ssConnected and not self._squeue:
            self._fire(seWrite)


class ServerClientWinSocket(CustomWinSocket):
    """The server's end of one accepted connection.

    ``ServerClientWinSocket(Socket, ServerWinSocket)`` is what an OnGetSocket handler calls
    (``Socket`` is the handle it was given); subclasses may add state and methods.
    """

    def __init__(self, Socket: Union[int, socket.socket], ServerWinSocket: "ServerWinSocket") -> None:
        if isinstance(Socket, socket.socket):
            sock = Socket
        else:
            sock = ServerWinSocket._pending.pop(Socket, None) or socket.socket(fileno=Socket)
        super().__init__(sock)
        self._server = ServerWinSocket
        self.AllowHalfClose = ServerWinSocket.AllowHalfClose
        self._event_sink = ServerWinSocket._client_event
        self._error_sink = ServerWinSocket._client_error
        self._blocking = ServerWinSocket.ServerType == ServerType.stThreadBlocking
        ServerWinSocket._connections.append(self)
        if not self._blocking:
            sock.setblocking(False)
            self._pump = ServerWinSocket._pump
            self._attach(READ)

    @property
    def ServerWinSocket(self) -> "ServerWinSocket":
        """The listening socket that accepted this connection."""
        return self._server

    def _after_disconnect(self) -> None:
        self._server._remove(self)


class ServerWinSocket(CustomWinSocket):
    """The listening socket of a ServerSocket: accepts clients and keeps ``Connections``."""

    def __init__(self, sock: Optional[socket.socket] = None) -> None:
        super().__init__(sock)
        self._server_type = ServerType.stNonBlocking
        self._connections: list[ServerClientWinSocket] = []
        self._pending: dict[int, socket.socket] = {}
        self.ThreadCacheSize = 0
        #: Where the server reports client notifications (set by the ServerSocket component).
        self.client_event_sink: EventSink = _no_event
        self.client_error_sink: ErrorSink = _no_error
        #: Asked for each accepted handle: returns the ServerClientWinSocket to use, or None.
        self.get_socket_hook: Callable[[int], Optional[ServerClientWinSocket]] = lambda fd: None
        #: Told about each new client after OnGetSocket (fires OnAccept in the component).
        self.accept_hook: Callable[[ServerClientWinSocket], None] = lambda client: None

    @property
    def ServerType(self) -> ServerType:
        """stNonBlocking or stThreadBlocking; not changeable while listening."""
        return self._server_type

    @ServerType.setter
    def ServerType(self, value: Union[ServerType, int]) -> None:
        value = ServerType(int(value))
        if value != self._server_type:
            if self.Connected:
                raise ESocketError("Can't change value while socket is active")
            self._server_type = value

    @property
    def Connections(self) -> list[ServerClientWinSocket]:
        """The live client connections (a copy; a closed client leaves it as soon as its
        OnClientDisconnect handler has returned)."""
        return list(self._connections)

    @property
    def ActiveConnections(self) -> int:
        """How many clients are connected."""
        return len(self._connections)

    def _client_event(self, client: CustomWinSocket, event: int) -> None:
        self.client_event_sink(client, event)

    def _client_error(self, client: CustomWinSocket, event: ErrorEvent, code: Var[int]) -> None:
        self.client_error_sink(client, event, code)

    def _remove(self, client: ServerClientWinSocket) -> None:
        try:
            self._connections.remove(client)
        except ValueError:
            pass

    # -- listening -------------------------------------------------------------------------
    def Listen(self, Address: str, Service: str, Port: int, QueueSize: int = socket.SOMAXCONN) -> None:
        """Bind and listen. '' listens on every interface, IPv6 and IPv4 alike.

        Errors (port in use, unknown service, bad address) raise ``ESocketError`` to the caller;
        OnListen fires after bind, before ``listen()``, as in the VCL.
        """
        if self._state != SocketState.ssClosed:
            raise ESocketError("Can't listen on an open socket")
        port: Union[int, str] = Service if Service else Port
        if isinstance(port, str) and not port.isdigit():
            try:
                port = socket.getservbyname(port, "tcp")
            except OSError as exc:
                raise ESocketError.from_code(10109, "getservbyname") from exc
        sock = self._bind(Address, int(port))
        self._sock = sock
        self._blocking = self._server_type == ServerType.stThreadBlocking
        self._state = SocketState.ssListening
        self._fire(seListen)
        if self._sock is not sock:
            return  # closed from OnListen
        try:
            sock.listen(QueueSize)
        except OSError as exc:
            self._release(graceful=False)
            raise ESocketError.from_os_error(exc, "listen") from exc
        if not self._blocking:
            sock.setblocking(False)
            self._attach(READ)

    def _bind(self, address: str, port: int) -> socket.socket:
        if address:
            try:
                infos = socket.getaddrinfo(address, port, socket.AF_UNSPEC, socket.SOCK_STREAM,
                                           0, socket.AI_PASSIVE)
            except socket.gaierror as exc:
                raise ESocketError.from_os_error(exc, "getaddrinfo") from exc
            family, type_, proto, _, sockaddr = infos[0]
            candidates = [(family, sockaddr, False)]
        else:
            candidates = []
            if socket.has_ipv6:
                candidates.append((socket.AF_INET6, ("::", port, 0, 0), True))
            candidates.append((socket.AF_INET, ("0.0.0.0", port), False))
        last: Optional[OSError] = None
        for family, sockaddr, dual in candidates:
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
            except OSError as exc:
                last = exc
                continue
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if dual:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                sock.bind(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                last = exc
                if exc.errno == errno.EADDRINUSE:
                    break
        assert last is not None
        raise ESocketError.from_os_error(last, "bind") from last

    def _on_ready(self, events: int) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(64):
            try:
                conn, _addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                self._accept_failed(exc)
                return
            self._accepted(conn)
            if self._sock is not sock:
                return

    def _accept_failed(self, exc: OSError) -> None:
        """Out of descriptors or similar: report, and pause accepting briefly (no busy loop)."""
        from PySide6.QtCore import QTimer
        HandleException(ESocketError.from_os_error(exc, "accept"))
        sock = self._sock
        if sock is not None and self._pump is not None:
            self._pump.modify(sock.fileno(), 0)
            QTimer.singleShot(100, self._pump, self._resume_accept)

    def _resume_accept(self) -> None:
        if self._sock is not None and self._pump is not None:
            self._pump.modify(self._sock.fileno(), READ)

    def _accepted(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        fd = conn.fileno()
        self._pending[fd] = conn
        try:
            client = self.get_socket_hook(fd)
            if client is None:
                client = ServerClientWinSocket(conn, self)
        except BaseException:
            if self._pending.pop(fd, None) is conn:
                conn.close()
            raise
        self._pending.pop(fd, None)
        self.accept_hook(client)
        if client.Connected:
            client._fire(seConnect)
        if client.Connected and not client._squeue and not client._blocking:
            client._fire(seWrite)

    def _release(self, graceful: bool) -> None:
        super()._release(graceful)

    def Close(self) -> None:
        """Stop listening: every client is closed (OnClientDisconnect each), the port is freed."""
        with self._lock:
            if self._state == SocketState.ssClosed or self._disconnecting:
                return
            for client in reversed(list(self._connections)):
                client.Close()
            self._disconnect(graceful=False)
