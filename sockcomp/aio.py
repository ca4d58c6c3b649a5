"""``sockcomp.aio``: awaitable sockets for asyncio code running under ``qasync.QEventLoop``.

A thin layer over the same components (``ClientSocket``/``ServerSocket``), not a second socket
implementation: it connects to their signals and completes futures from them. It reads like
``asyncio.open_connection``/``asyncio.start_server``, with one object for both directions::

    import asyncio, qasync
    from PySide6.QtCore import QCoreApplication
    from sockcomp import aio

    async def main():
        async with await aio.open_connection("example.org", 80) as conn:
            conn.write(b"HEAD / HTTP/1.0\\r\\n\\r\\n")
            await conn.drain()
            print(await conn.read())          # until the server closes

    app = QCoreApplication([])
    qasync.run(main())                        # or QEventLoop(app).run_until_complete(main())

Rules the layer keeps:

* **Errors are exceptions.** ``OnError``/``OnClientError`` are answered with
  ``ErrorCode.value = 0`` (nothing reaches the application hook) and the awaiting call raises
  :class:`sockcomp.ESocketError` with the same WSA code (10061 refused, 10054 reset, 10060
  timed out, 11001 host not found, …). Bytes that arrived before an error are still returned
  first.
* **Bounded memory.** Reading pulls from the socket object only while fewer than ``2 * limit``
  bytes are buffered here (more when ``readexactly(n)`` needs it); beyond that the component
  stops being read and TCP flow control slows the peer down. ``readline``/``readuntil`` raise
  instead of growing past ``limit``. ``drain()`` waits while more than the write high-water mark
  (64 KiB by default) is queued in ``Socket.SendQueueLength``, until ``OnWrite`` (queue empty).
* **Half-close.** Connections run with ``AllowHalfClose = True``: the peer's FIN makes reads
  return ``b''`` (``at_eof()``), and the connection stays open for replies until ``close()``.
* **Cancellation is clean.** A cancelled read consumes nothing (the bytes stay buffered for the
  next read); a cancelled ``open_connection`` closes the half-open socket; a cancelled
  ``drain``/``wait_*`` changes nothing.
* **No qasync cost in the core.** Signal handlers only move bytes and resolve futures; they run
  in the loop's thread (Qt's), so they call ``future.set_result`` directly.

Everything must be used from the thread that runs the event loop.
"""
from __future__ import annotations

import asyncio
import errno as _errno
import ipaddress
from collections import deque
from typing import Any, AsyncIterator, Awaitable, Callable, Optional, Union

from .components import ClientSocket, ServerSocket
from .enums import SD_SEND, ErrorEvent
from .errors import ESocketError
from .var import Var
from .winsock import CustomWinSocket

__all__ = [
    "AsyncSocket", "AsyncServer", "open_connection", "start_server", "DEFAULT_LIMIT",
    "DEFAULT_WRITE_HIGH_WATER", "IncompleteReadError", "LimitOverrunError",
]

#: Default line/chunk limit (as asyncio's streams): 64 KiB.
DEFAULT_LIMIT = 64 * 1024
#: ``drain()`` waits while more than this many bytes wait in the send queue.
DEFAULT_WRITE_HIGH_WATER = 64 * 1024

# asyncio's own exceptions, so existing ``except asyncio.IncompleteReadError`` code keeps working.
IncompleteReadError = asyncio.IncompleteReadError
LimitOverrunError = asyncio.LimitOverrunError

WSAENOTCONN = 10057

#: Connections and servers that are open: kept alive here, as asyncio's selector keeps an open
#: transport (and through its futures the waiting tasks) alive. Components do not keep
#: themselves alive (dropping the last reference to one closes it), so this layer does.
_OPEN: set[Any] = set()

_API = {
    ErrorEvent.eeGeneral: "", ErrorEvent.eeSend: "send", ErrorEvent.eeReceive: "recv",
    ErrorEvent.eeConnect: "connect", ErrorEvent.eeDisconnect: "recv",
    ErrorEvent.eeAccept: "accept", ErrorEvent.eeLookup: "getaddrinfo",
}


def _native_errno_table() -> dict[int, int]:
    """WSA code -> a native errno with that meaning (for the error text)."""
    try:
        from .errors import _ERRNO_TO_WSA  # private table; fall back quietly if it moves
    except ImportError:  # pragma: no cover
        return {}
    table: dict[int, int] = {}
    preferred = (_errno.ECONNRESET, _errno.EACCES)  # 10054 also comes from EPIPE, 10013 EPERM
    for native in preferred:
        if native in _ERRNO_TO_WSA:
            table[_ERRNO_TO_WSA[native]] = native
    for native, code in _ERRNO_TO_WSA.items():
        table.setdefault(code, native)
    return table


_WSA_TO_ERRNO = _native_errno_table()


def _error(code: int, event: Any) -> ESocketError:
    """The ESocketError an OnError with ``code`` stands for (same shape as the core raises)."""
    try:
        api = _API.get(ErrorEvent(int(event)), "")
    except ValueError:
        api = ""
    return ESocketError.from_code(code, api, _WSA_TO_ERRNO.get(code))


def _not_connected(api: str) -> ESocketError:
    return ESocketError.from_code(WSAENOTCONN, api, _errno.ENOTCONN)


def _wake(fut: Optional[asyncio.Future[Any]], exc: Optional[BaseException] = None) -> None:
    if fut is not None and not fut.done():
        if exc is None:
            fut.set_result(None)
        else:
            fut.set_exception(exc)


class AsyncSocket:
    """One connection, awaitable: the reader and the writer of asyncio streams in one object.

    Returned by :func:`open_connection` and handed to :func:`start_server` handlers. The
    component and socket object stay reachable (``component``, ``socket``) for anything the
    layer does not cover (addresses, ``SendStream``, keep-alive, …); do not read from
    ``socket`` directly, and do not connect handlers that reset ``ErrorCode`` expectations.
    """

    def __init__(self, component: Union[ClientSocket, ServerSocket], socket: CustomWinSocket,
                 limit: int = DEFAULT_LIMIT,
                 write_high_water: int = DEFAULT_WRITE_HIGH_WATER) -> None:
        if limit <= 0:
            raise ValueError("limit must be > 0")
        self._component = component
        self._socket = socket
        self._limit = limit
        self._high_water = max(0, write_high_water)
        self._buf = bytearray()
        self._want = 0              # readexactly(n) may buffer up to n
        self._skip_line = False     # readline() dropped the head of an overlong line
        self._eof = False           # the peer finished sending, or the connection ended
        self._closed = False        # OnDisconnect seen
        self._exc: Optional[ESocketError] = None
        self._read_waiter: Optional[asyncio.Future[None]] = None
        self._drain_waiters: deque[asyncio.Future[None]] = deque()
        self._eof_waiters: deque[asyncio.Future[None]] = deque()
        self._closed_waiters: deque[asyncio.Future[None]] = deque()
        self._connect_waiter: Optional[asyncio.Future[None]] = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("eof" if self._eof else "open")
        return (f"<AsyncSocket {state} {self._socket.LocalAddress}:{self._socket.LocalPort}"
                f" -> {self._socket.RemoteAddress}:{self._socket.RemotePort}"
                f" buffered={len(self._buf)}>")

    # ------------------------------------------------------------------ escape hatches
    @property
    def component(self) -> Union[ClientSocket, ServerSocket]:
        """The ClientSocket (client) or the ServerSocket that accepted this connection."""
        return self._component

    @property
    def socket(self) -> CustomWinSocket:
        """The socket object (ClientWinSocket / ServerClientWinSocket)."""
        return self._socket

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def peername(self) -> tuple[str, int]:
        """(RemoteAddress, RemotePort), ``('', 0)`` once closed."""
        return self._socket.RemoteAddress, self._socket.RemotePort

    @property
    def sockname(self) -> tuple[str, int]:
        """(LocalAddress, LocalPort), ``('', -1)`` once closed."""
        return self._socket.LocalAddress, self._socket.LocalPort

    def exception(self) -> Optional[ESocketError]:
        """The error that ended the connection, if one did."""
        return self._exc

    # ------------------------------------------------------------------ component events
    # (called from the Qt event loop, in the loop's thread: resolve futures directly)
    def _on_read(self) -> None:
        self._fill()
        _wake(self._read_waiter)

    def _on_write(self) -> None:
        if self._socket.SendQueueLength <= self._high_water:
            self._wake_all(self._drain_waiters)

    def _on_half_close(self) -> None:
        self._eof = True
        _wake(self._read_waiter)
        self._wake_all(self._eof_waiters)

    def _on_error(self, code: Var[int], event: Any) -> None:
        value = int(code.value or 0)
        code.value = 0  # the awaiting coroutine gets it, not the application hook
        if value and self._exc is None:
            self._exc = _error(value, event)

    def _on_disconnect(self) -> None:
        if self._closed:
            return
        sock = self._socket
        # rescue what the socket object still holds: its buffer is dropped after this event
        if sock.ReceiveLength():
            self._buf += sock.ReceiveBytes()
        self._closed = self._eof = True
        _OPEN.discard(self)
        exc = self._exc
        waiter = self._connect_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc if exc is not None else _not_connected("connect"))
        _wake(self._read_waiter)
        self._wake_all(self._drain_waiters)
        self._wake_all(self._eof_waiters)
        self._wake_all(self._closed_waiters)

    # ClientSocket signal slots: (Sender, Socket[, ErrorEvent, ErrorCode])
    def _slot_connect(self, _sender: Any, _sock: Any) -> None:
        _wake(self._connect_waiter)

    def _slot_read(self, _sender: Any, _sock: Any) -> None:
        self._on_read()

    def _slot_write(self, _sender: Any, _sock: Any) -> None:
        self._on_write()

    def _slot_half_close(self, _sender: Any, _sock: Any) -> None:
        self._on_half_close()

    def _slot_disconnect(self, _sender: Any, _sock: Any) -> None:
        self._on_disconnect()

    def _slot_error(self, _sender: Any, _sock: Any, event: Any, code: Var[int]) -> None:
        self._on_error(code, event)

    @staticmethod
    def _wake_all(waiters: deque[asyncio.Future[None]]) -> None:
        while waiters:
            _wake(waiters.popleft())

    # ------------------------------------------------------------------ reading
    def _fill(self) -> None:
        """Move bytes from the socket object into our buffer, up to the buffer bound."""
        room = max(2 * self._limit, self._want) - len(self._buf)
        if room > 0 and not self._closed and self._socket.ReceiveLength():
            self._buf += self._socket.ReceiveBytes(room)

    def _ended(self) -> bool:
        """No more bytes will come in (the buffer here may still hold some)."""
        return self._eof and (self._closed or not self._socket.ReceiveLength())

    async def _wait_for_data(self, name: str) -> None:
        if self._read_waiter is not None:
            raise RuntimeError(
                f"{name}() called while another coroutine is already waiting for incoming data")
        waiter = self._read_waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._read_waiter = None

    def _take(self, n: int) -> bytes:
        buf = self._buf
        if n >= len(buf):
            data = bytes(buf)
            buf.clear()
        else:
            data = bytes(buf[:n])
            del buf[:n]
        self._fill()
        return data

    def at_eof(self) -> bool:
        """True when the peer has finished sending and every byte has been read."""
        return not self._buf and self._ended()

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (at least one unless at EOF: then ``b''``); ``n < 0``: until EOF.

        Raises the connection's ``ESocketError`` (e.g. 10054 reset) once the bytes that arrived
        before the error have been read.
        """
        if n == 0:
            return b""
        self._skip_line = False
        if n < 0:
            blocks: list[bytes] = []
            while True:
                block = await self.read(self._limit)
                if not block:
                    return b"".join(blocks)
                blocks.append(block)
        self._fill()
        while not self._buf and not self._ended():
            await self._wait_for_data("read")
        if not self._buf and self._exc is not None:
            raise self._exc
        return self._take(n)

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes; ``IncompleteReadError`` (with the partial bytes) at EOF."""
        if n < 0:
            raise ValueError("readexactly size can not be less than zero")
        if n == 0:
            return b""
        self._skip_line = False
        self._fill()
        while len(self._buf) < n:
            if self._ended():
                if self._exc is not None:
                    raise self._exc
                partial = bytes(self._buf)
                self._buf.clear()
                raise IncompleteReadError(partial, n)
            self._want = n
            try:
                self._fill()
                if len(self._buf) < n:
                    await self._wait_for_data("readexactly")
            finally:
                self._want = 0
        return self._take(n)

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        """Bytes up to and including ``separator``.

        ``LimitOverrunError`` when more than ``limit`` bytes come without it (the data stays
        buffered; ``consumed`` says how much); ``IncompleteReadError`` at EOF.
        """
        seplen = len(separator)
        if seplen == 0:
            raise ValueError("Separator should be at least one-byte string")
        self._skip_line = False
        offset = 0
        buf = self._buf
        self._fill()
        while True:
            buflen = len(buf)
            if buflen - offset >= seplen:
                isep = buf.find(separator, offset)
                if isep != -1:
                    break
                offset = buflen + 1 - seplen
                if offset > self._limit:
                    raise LimitOverrunError(
                        "Separator is not found, and chunk exceed the limit", offset)
            if self._ended():
                if self._exc is not None:
                    raise self._exc
                partial = bytes(buf)
                buf.clear()
                raise IncompleteReadError(partial, None)
            await self._wait_for_data("readuntil")
        if isep > self._limit:
            raise LimitOverrunError("Separator is found, but chunk is longer than limit", isep)
        return self._take(isep + seplen)

    async def readline(self) -> bytes:
        """One line including ``b'\\n'`` (the partial last line at EOF, ``b''`` after it).

        A line longer than ``limit`` raises ``ValueError`` (as asyncio) and is discarded, all
        of it: unlike asyncio, the next ``readline()`` first skips the rest of that line, so
        its tail never shows up as a line of its own.
        """
        if self._skip_line:
            await self._skip_rest_of_line()
        try:
            return await self.readuntil(b"\n")
        except IncompleteReadError as exc:
            return exc.partial
        except LimitOverrunError as exc:
            if self._buf.startswith(b"\n", exc.consumed):
                del self._buf[:exc.consumed + 1]
            else:
                self._buf.clear()
                self._skip_line = True
            self._fill()
            raise ValueError(exc.args[0]) from None

    async def _skip_rest_of_line(self) -> None:
        buf = self._buf
        while True:
            self._fill()
            end = buf.find(b"\n")
            if end != -1:
                del buf[:end + 1]
                self._skip_line = False
                self._fill()
                return
            buf.clear()
            self._fill()
            if not buf:
                if self._ended():
                    self._skip_line = False
                    return
                await self._wait_for_data("readline")

    def __aiter__(self) -> "AsyncSocket":
        return self

    async def __anext__(self) -> bytes:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

    async def wait_eof(self) -> None:
        """Wait until the peer has finished sending (its FIN); buffered bytes stay readable.

        The FIN is only seen once the bytes before it are buffered, so read what the peer
        sends when it may exceed the buffer bound. Raises the connection's error, if any.
        """
        while not self._eof:
            waiter = asyncio.get_running_loop().create_future()
            self._eof_waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._eof_waiters:
                    self._eof_waiters.remove(waiter)
        if self._exc is not None:
            raise self._exc

    # ------------------------------------------------------------------ writing
    def write(self, data: Any) -> None:
        """Queue ``data`` (bytes-like); never blocks. Follow with ``await drain()``."""
        if self._exc is not None:
            raise self._exc
        if not data:
            return
        accepted = self._socket.SendBuf(data)
        if accepted > 0:
            return
        if self._exc is not None:
            raise self._exc
        raise _not_connected("send")

    def writelines(self, data: Any) -> None:
        for chunk in data:
            self.write(chunk)

    def set_write_buffer_limits(self, high: int = DEFAULT_WRITE_HIGH_WATER) -> None:
        """``drain()`` waits while more than ``high`` bytes are queued (0: until empty)."""
        self._high_water = max(0, int(high))

    def get_write_buffer_size(self) -> int:
        """Bytes accepted but not yet handed to the OS (``Socket.SendQueueLength``)."""
        return self._socket.SendQueueLength

    async def drain(self) -> None:
        """Wait while the send queue is above the high-water mark (until ``OnWrite``)."""
        if self._exc is not None:
            raise self._exc
        while not self._closed and self._socket.SendQueueLength > self._high_water:
            waiter = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._drain_waiters:
                    self._drain_waiters.remove(waiter)
        if self._exc is not None:
            raise self._exc

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        """Half-close: FIN after everything queued (``Shutdown(SD_SEND)``); reading goes on."""
        if self._exc is not None:
            raise self._exc
        self._socket.Shutdown(SD_SEND)

    # ------------------------------------------------------------------ closing
    def is_closing(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close gracefully (queued data is still delivered); pending reads see EOF."""
        if not self._closed:
            if isinstance(self._component, ClientSocket):
                self._component.Close()
            else:
                self._socket.Close()
        if not self._closed:  # the socket was already closed under us: end here too
            self._on_disconnect()

    def abort(self) -> None:
        """Close and drop whatever is still queued."""
        if not self._closed:
            hard = getattr(self._socket, "_disconnect", None)  # core has no public Abort()
            if hard is not None:
                hard(graceful=False)
            elif isinstance(self._component, ClientSocket):
                self._component.Close()
            else:
                self._socket.Close()
        if not self._closed:
            self._on_disconnect()

    async def wait_closed(self) -> None:
        """Wait until the connection has ended (after ``close()``, a reset, …). Never raises
        the connection's error: ``exception()`` has it."""
        while not self._closed:
            waiter = asyncio.get_running_loop().create_future()
            self._closed_waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._closed_waiters:
                    self._closed_waiters.remove(waiter)

    async def __aenter__(self) -> "AsyncSocket":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.close()
        await self.wait_closed()


def _split_host(host: Optional[str], address: Optional[str]) -> tuple[str, str]:
    """A numeric ``host`` goes to Address (no lookup thread needed)."""
    if host:
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return host, address or ""
        return "", host
    return "", address or ""


async def open_connection(host: Optional[str] = None, port: int = 0, *,
                          address: Optional[str] = None, service: Optional[str] = None,
                          connect_timeout: Optional[float] = None, limit: int = DEFAULT_LIMIT,
                          write_high_water: int = DEFAULT_WRITE_HIGH_WATER,
                          setup: Optional[Callable[[ClientSocket], Any]] = None) -> AsyncSocket:
    """Connect and return the :class:`AsyncSocket` once ``OnConnect`` has fired.

    ``host`` is a name or a numeric address (``address`` forces numeric, as ``Address``);
    ``service`` beats ``port`` (``"http"``). ``connect_timeout`` is in seconds, lookup
    included (``ConnectTimeout``); expiry raises ``ESocketError`` 10060. Failures raise
    ``ESocketError`` with the WSA code (10061 refused, 11001 host not found, 1110 no address).
    Cancelling the call closes the half-open socket. ``setup(component)`` runs just before
    ``Open()``, to set further properties (TLS, keep-alive, …) on the ClientSocket.
    """
    loop = asyncio.get_running_loop()
    comp = ClientSocket()
    comp.Loaded()
    name, numeric = _split_host(host, address)
    comp.Host = name
    comp.Address = numeric
    comp.Port = port
    if service:
        comp.Service = service
    if connect_timeout is not None and connect_timeout > 0:
        comp.ConnectTimeout = max(1, int(round(connect_timeout * 1000)))
    comp.AllowHalfClose = True
    if setup is not None:
        setup(comp)
    conn = AsyncSocket(comp, comp.Socket, limit, write_high_water)
    waiter = conn._connect_waiter = loop.create_future()
    # While the socket is open the AsyncSocket (and through its futures the waiting tasks)
    # must stay alive, as asyncio's selector keeps a transport alive: a fire-and-forget task
    # (qasync's @asyncSlot keeps no reference) would otherwise be garbage collected
    # mid-connect. Slots are bound methods, which PySide6 holds weakly; the strong reference
    # is _OPEN, dropped on OnDisconnect so nothing leaks after close.
    _OPEN.add(conn)
    comp.OnConnect.connect(conn._slot_connect)
    comp.OnRead.connect(conn._slot_read)
    comp.OnWrite.connect(conn._slot_write)
    comp.OnHalfClose.connect(conn._slot_half_close)
    comp.OnDisconnect.connect(conn._slot_disconnect)
    comp.OnError.connect(conn._slot_error)
    try:
        comp.Open()
        await waiter
    except BaseException:
        conn._connect_waiter = None
        waiter.cancel()  # no-op when done; else nobody would retrieve what abort() sets
        conn.abort()  # cancelled, timed out or failed: no half-open socket stays behind
        raise
    finally:
        conn._connect_waiter = None
    return conn


Handler = Callable[[AsyncSocket], Awaitable[Any]]


class AsyncServer:
    """A listening ServerSocket whose connections are served by coroutines.

    With a handler (``start_server(handler, …)``) each client runs ``handler(conn)`` in its own
    task; the connection is closed when the handler returns. Without one, take connections with
    ``await server.accept()`` or ``async for conn in server.connections()``.
    ``close()`` stops listening and closes every connection (as ``ServerSocket.Close``);
    ``wait_closed()`` then waits for the handler tasks to finish.
    """

    def __init__(self, component: ServerSocket, handler: Optional[Handler], limit: int,
                 write_high_water: int) -> None:
        self._component = component
        self._handler = handler
        self._limit = limit
        self._high_water = write_high_water
        self._conns: dict[CustomWinSocket, AsyncSocket] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._backlog: deque[AsyncSocket] = deque()
        self._accept_waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self._closed_waiters: deque[asyncio.Future[None]] = deque()
        self._loop = asyncio.get_running_loop()
        _OPEN.add(self)  # alive while listening (see open_connection)
        component.OnClientConnect.connect(self._on_client_connect)
        component.OnClientRead.connect(self._on_client_read)
        component.OnClientWrite.connect(self._on_client_write)
        component.OnClientHalfClose.connect(self._on_client_half_close)
        component.OnClientDisconnect.connect(self._on_client_disconnect)
        component.OnClientError.connect(self._on_client_error)

    def __repr__(self) -> str:
        return f"<AsyncServer port={self.port} connections={len(self._conns)}>"

    @property
    def component(self) -> ServerSocket:
        return self._component

    @property
    def port(self) -> int:
        """The port listened on (useful with ``port=0``); -1 once closed."""
        return self._component.Socket.LocalPort

    @property
    def connections_open(self) -> list[AsyncSocket]:
        """The connections currently open."""
        return list(self._conns.values())

    def is_serving(self) -> bool:
        return not self._closed

    # ------------------------------------------------------------------ component events
    def _on_client_read(self, _sender: Any, sock: CustomWinSocket) -> None:
        conn = self._conns.get(sock)
        if conn is not None:
            conn._on_read()

    def _on_client_write(self, _sender: Any, sock: CustomWinSocket) -> None:
        conn = self._conns.get(sock)
        if conn is not None:
            conn._on_write()

    def _on_client_half_close(self, _sender: Any, sock: CustomWinSocket) -> None:
        conn = self._conns.get(sock)
        if conn is not None:
            conn._on_half_close()

    def _on_client_error(self, _sender: Any, sock: CustomWinSocket, event: Any,
                         code: Var[int]) -> None:
        conn = self._conns.get(sock)
        if conn is not None:
            conn._on_error(code, event)

    def _on_client_connect(self, _sender: Any, sock: CustomWinSocket) -> None:
        conn = AsyncSocket(self._component, sock, self._limit, self._high_water)
        self._conns[sock] = conn
        if self._handler is not None:
            task = self._loop.create_task(self._serve(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._backlog.append(conn)
            if self._accept_waiters:
                _wake(self._accept_waiters.popleft())

    def _on_client_disconnect(self, _sender: Any, sock: CustomWinSocket) -> None:
        conn = self._conns.pop(sock, None)
        if conn is not None:
            conn._on_disconnect()

    async def _serve(self, conn: AsyncSocket) -> None:
        assert self._handler is not None
        try:
            await self._handler(conn)
        except Exception as exc:
            self._loop.call_exception_handler({
                "message": "Unhandled exception in sockcomp.aio client handler",
                "exception": exc, "connection": conn})
        finally:
            conn.close()

    # ------------------------------------------------------------------ accepting
    async def accept(self) -> AsyncSocket:
        """The next connection (handler-less servers); ``ESocketError`` once closed."""
        if self._handler is not None:
            raise RuntimeError("this server hands connections to its handler")
        while True:
            if self._backlog:
                return self._backlog.popleft()
            if self._closed:
                raise ESocketError("Server is closed", 0, None, "accept")
            waiter = self._loop.create_future()
            self._accept_waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._accept_waiters:
                    self._accept_waiters.remove(waiter)

    async def connections(self) -> AsyncIterator[AsyncSocket]:
        """``async for conn in server.connections():`` until the server is closed."""
        while True:
            try:
                conn = await self.accept()
            except ESocketError:
                if self._closed:
                    return
                raise
            yield conn

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Stop listening and close every connection (queued data is still delivered)."""
        if self._closed:
            return
        self._closed = True
        self._component.Close()
        _OPEN.discard(self)
        self._backlog.clear()
        AsyncSocket._wake_all(self._accept_waiters)
        AsyncSocket._wake_all(self._closed_waiters)

    async def wait_closed(self) -> None:
        """Wait for ``close()`` and then for every handler task to finish."""
        while not self._closed:
            waiter = self._loop.create_future()
            self._closed_waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._closed_waiters:
                    self._closed_waiters.remove(waiter)
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def serve_forever(self) -> None:
        """Wait until the server is closed; cancelling this closes it."""
        try:
            await self.wait_closed()
        except asyncio.CancelledError:
            self.close()
            raise

    async def __aenter__(self) -> "AsyncServer":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.close()
        await self.wait_closed()


async def start_server(handler: Optional[Handler] = None, host: str = "", port: int = 0, *,
                       service: Optional[str] = None, limit: int = DEFAULT_LIMIT,
                       write_high_water: int = DEFAULT_WRITE_HIGH_WATER,
                       setup: Optional[Callable[[ServerSocket], Any]] = None) -> AsyncServer:
    """Listen on ``host`` ('' = every interface, IPv4 and IPv6) and ``port`` (0 = any free).

    ``handler(conn)`` runs as a task per client (like ``asyncio.start_server``); pass
    ``None`` and use ``server.connections()``/``accept()`` instead. A port in use raises
    ``ESocketError`` 10048 here. ``setup(component)`` runs just before ``Open()``, to set
    further ServerSocket properties (TLS, …).
    """
    comp = ServerSocket()
    comp.Loaded()
    comp.Address = host or ""
    comp.Port = port
    if service:
        comp.Service = service
    comp.AllowHalfClose = True
    if setup is not None:
        setup(comp)
    server = AsyncServer(comp, handler, limit, write_high_water)
    comp.Open()
    return server
