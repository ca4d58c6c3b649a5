"""``WinSocketStream``: timed blocking reads and writes on a blocking socket (``TWinSocketStream``).

It works on a ``ctBlocking`` client's socket and on the sockets a ``stThreadBlocking`` server
hands to its threads, and refuses a non-blocking socket. It is an :class:`io.RawIOBase`, so
``io.BufferedReader(stream).readline()`` works.

**Timeout versus end of stream.** ``Read`` returns ``b''`` only at end of stream: the peer has
closed, or the socket was closed or shut down (server shutdown does that). A read that waits
``TimeOut`` ms without any data raises :class:`ESocketTimeout`, which is both an
``ESocketError`` (``ErrorCode`` 10060) and a :class:`TimeoutError`. ScktComp returned 0 for both,
which could not be told apart. The documented Delphi pattern still works unchanged: wait with
``WaitForData``, then ``Read``.
"""
from __future__ import annotations

import errno
import io
import select
import socket
import ssl
import threading
from typing import Any, Optional

from .enums import SocketState, eeReceive, eeSend
from .errors import WSAETIMEDOUT, ESocketError
from .winsock import CustomWinSocket

__all__ = ["WinSocketStream", "ESocketTimeout"]


class ESocketTimeout(ESocketError, TimeoutError):
    """A WinSocketStream read or write waited ``TimeOut`` ms in vain (ErrorCode 10060)."""


class WinSocketStream(io.RawIOBase):
    """Blocking I/O with timeouts on a blocking socket: ``TWinSocketStream(Socket, TimeOut)``."""

    def __init__(self, Socket: CustomWinSocket, TimeOut: int) -> None:
        super().__init__()
        if not Socket._blocking:
            raise ESocketError("Socket must be in blocking mode")
        self._socket = Socket
        #: Milliseconds a Read or Write may wait.
        self.TimeOut = int(TimeOut)

    @property
    def Socket(self) -> CustomWinSocket:
        """The socket object this stream reads and writes."""
        return self._socket

    def _wake_fd(self) -> Optional[int]:
        thread = threading.current_thread()
        wake = getattr(thread, "_wake_r", None)
        try:
            return wake.fileno() if wake is not None else None
        except OSError:
            return None

    def _poll(self, event: int, timeout_ms: int) -> bool:
        """Wait for ``event`` on the socket; False on timeout or when the thread is terminated."""
        sock = self._socket._sock
        if sock is None:
            return True  # closed: the next call reports end of stream
        poller = select.poll()
        poller.register(sock, event)
        wake = self._wake_fd()
        if wake is not None:
            poller.register(wake, select.POLLIN)
        for fd, _ in poller.poll(max(timeout_ms, 0)):
            if fd != wake:
                return True
        return False

    def WaitForData(self, Timeout: int) -> bool:
        """True when data (or end of stream) can be read within ``Timeout`` ms."""
        if self._socket._rlen or self._socket._eof:
            return True
        return self._poll(select.POLLIN, Timeout)

    def Read(self, Count: int) -> bytes:
        """Read up to ``Count`` bytes, waiting at most ``TimeOut`` ms.

        Returns ``b''`` at end of stream; raises :class:`ESocketTimeout` when the wait expires.
        Returns ``b''`` too when the serving thread is terminated (server shutdown).
        """
        sock_obj = self._socket
        if Count <= 0:
            return b""
        if sock_obj._rlen:
            return sock_obj.ReceiveBytes(Count)
        if sock_obj._eof or sock_obj._sock is None:
            return b""
        data = self._try_recv(Count)
        if data is not None:
            return data
        if not self._poll(select.POLLIN, self.TimeOut):
            if getattr(threading.current_thread(), "Terminated", False):
                return b""
            raise ESocketTimeout(f"Read timed out after {self.TimeOut} ms", WSAETIMEDOUT,
                                 errno.ETIMEDOUT, "recv")
        sock = sock_obj._sock
        if sock is None:
            return b""
        try:
            if isinstance(sock, ssl.SSLSocket):
                data = sock.recv(Count)  # readable: a blocking read of the record that came
            else:
                data = sock.recv(Count, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return self.Read(Count)
        except OSError as exc:
            if sock_obj.State == SocketState.ssClosed:
                return b""
            sock_obj._fail(eeReceive, exc, "recv", raise_=True)
            return b""
        if not data:
            sock_obj._eof = True
        return data

    def _try_recv(self, count: int) -> Optional[bytes]:
        """Read without waiting: bytes, b'' at end of stream, None when nothing is there yet."""
        return self._socket._blocking_recv(count, wait=False)

    def Write(self, Buffer: Any) -> int:
        """Write ``Buffer`` waiting at most ``TimeOut`` ms in all; returns bytes written.

        Raises :class:`ESocketTimeout` when nothing could be written in time.
        """
        view = memoryview(Buffer).cast("B")
        written = 0
        sock_obj = self._socket
        if isinstance(sock_obj._sock, ssl.SSLSocket):  # TLS: no MSG_DONTWAIT; send it all
            return sock_obj._blocking_send(view)
        while written < len(view):
            sock = sock_obj._sock
            if sock is None:
                break
            try:  # the common case: the kernel takes it at once, no wait needed
                with sock_obj._send_lock:
                    written += sock.send(view[written:], socket.MSG_DONTWAIT)
                continue
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                sock_obj._fail(eeSend, exc, "send", raise_=True)
                break
            if not self._poll(select.POLLOUT, self.TimeOut):
                if written:
                    break
                raise ESocketTimeout(f"Write timed out after {self.TimeOut} ms", WSAETIMEDOUT,
                                     errno.ETIMEDOUT, "send")
            try:
                with sock_obj._send_lock:
                    written += sock.send(view[written:], socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except OSError as exc:
                sock_obj._fail(eeSend, exc, "send", raise_=True)
                break
        return written

    def Seek(self, Offset: int, Origin: int = 0) -> int:
        """Streams over sockets have no position: always 0 (as the VCL)."""
        return 0

    # -- io.RawIOBase ------------------------------------------------------------------------
    def readable(self) -> bool:
        """Always True (io.RawIOBase)."""
        return True

    def writable(self) -> bool:
        """Always True (io.RawIOBase)."""
        return True

    def readinto(self, buffer: Any) -> int:
        """io.RawIOBase read: :meth:`Read` into ``buffer``; 0 at end of stream."""
        data = self.Read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def write(self, b: Any) -> int:
        """io.RawIOBase write: :meth:`Write`."""
        return self.Write(b)
