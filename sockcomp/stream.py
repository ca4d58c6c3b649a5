"""``WinSocketStream``: timed blocking reads and writes on a blocking socket (``TWinSocketStream``).

It works on a ``ctBlocking`` client's socket and on the sockets a ``stThreadBlocking`` server
hands to its threads, and refuses a non-blocking socket. It is an :class:`io.RawIOBase`, so
``io.BufferedReader(stream).readline()`` works. Use it in the thread that may wait: a worker's
``ClientExecute``, or the thread that owns a ctBlocking client.

**Timeout versus end of stream.** ``Read`` returns ``b''`` only at end of stream: the peer has
closed, or the socket was closed or shut down (server shutdown does that). A read that waits
``TimeOut`` ms without any data raises :class:`ESocketTimeout`, which is both an
``ESocketError`` (``ErrorCode`` 10060) and a :class:`TimeoutError`. ScktComp returned 0 for
both, which could not be told apart. The documented Delphi pattern still works unchanged: wait
with ``WaitForData``, then ``Read``.
"""
from __future__ import annotations

import errno
import io
import threading
from typing import Any

from .errors import WSAETIMEDOUT, ESocketError, error_text
from .winsock import CustomWinSocket

__all__ = ["WinSocketStream", "ESocketTimeout"]


def _io_error(operation: str, error: ESocketError) -> ESocketError:
    """The VCL's ``sSocketIOError``: ``Read error 10054, Connection reset by peer``."""
    return ESocketError(f"{operation} error {error.ErrorCode}, "
                        f"{error_text(error.errno, error.ErrorCode)}",
                        error.ErrorCode, error.errno, error.API)


class ESocketTimeout(ESocketError, TimeoutError):
    """A WinSocketStream read or write waited ``TimeOut`` ms in vain (ErrorCode 10060)."""


class WinSocketStream(io.RawIOBase):
    """Blocking I/O with timeouts on a blocking socket: ``TWinSocketStream(Socket, TimeOut)``."""

    # Slots, not the instance dict io's base type provides: Python cannot specialise attribute
    # reads on such a dict, which made Read + Write cost a worker ~3,400 instructions more per
    # message (bench/hotpath.py --count --worker). The dict still takes any other attribute.
    __slots__ = ("_socket", "_timeout", "_wait_ms")

    def __init__(self, Socket: CustomWinSocket, TimeOut: int) -> None:
        super().__init__()
        if Socket.ASyncStyles:
            raise ESocketError("Socket must be in blocking mode")
        self._socket = Socket
        self.TimeOut = TimeOut

    @property
    def TimeOut(self) -> int:
        """Milliseconds a Read or Write may wait (a negative value waits not at all)."""
        return self._timeout

    @TimeOut.setter
    def TimeOut(self, value: int) -> None:
        self._timeout = int(value)
        self._wait_ms = max(self._timeout, 0)  # what the calls use, worked out once

    @property
    def Socket(self) -> CustomWinSocket:
        """The socket object this stream reads and writes."""
        return self._socket

    def WaitForData(self, Timeout: int) -> bool:
        """True when data (or end of stream) can be read within ``Timeout`` ms. A character
        held back by ``ReceiveText`` (its other bytes not yet here) is not new data."""
        return self._socket.wait_readable(max(int(Timeout), 0))

    def Read(self, Count: int) -> bytes:
        """Read up to ``Count`` bytes, waiting at most ``TimeOut`` ms.

        Returns ``b''`` at end of stream; raises :class:`ESocketTimeout` when the wait expires.
        Returns ``b''`` too when the serving thread is terminated (server shutdown).
        """
        if Count <= 0:
            return b""
        try:
            data = self._socket.read_wait(Count, self._wait_ms)
        except ESocketError as error:
            raise _io_error("Read", error) from error
        if data is not None:
            return data
        if getattr(threading.current_thread(), "Terminated", False):
            return b""
        raise ESocketTimeout(f"Read timed out after {self.TimeOut} ms", WSAETIMEDOUT,
                             errno.ETIMEDOUT, "recv")

    def Write(self, Buffer: Any) -> int:
        """Write ``Buffer``, waiting at most ``TimeOut`` ms in all; returns bytes written.

        Raises :class:`ESocketTimeout` when nothing could be written in time; bytes that had
        not gone out when the time ran out are not sent later.
        """
        if not (Buffer if type(Buffer) is bytes else len(memoryview(Buffer))):
            return 0
        try:
            written = self._socket.write_wait(Buffer, self._wait_ms)
        except ESocketError as error:
            raise _io_error("Write", error) from error
        if written == 0 and self._socket.Connected:
            raise ESocketTimeout(f"Write timed out after {self.TimeOut} ms", WSAETIMEDOUT,
                                 errno.ETIMEDOUT, "send")
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
