"""``CustomWinSocket``: the base of every socket object (client, server-client, listening).

A socket object coordinates one connection at a time (:mod:`sockcomp._connection`): its life
cycle decides the phase and which VCL event fires, its transport owns the OS socket, the TLS
layer and the send queue, its receive buffer holds what arrived (:mod:`sockcomp._receiving`),
and its send methods queue in order (:mod:`sockcomp._sending`). The components
(:mod:`sockcomp.components`) turn what it reports into Qt signals.

Delivery rules (Winsock's, which ScktComp inherits, with the library's fixes):

* **Reading.** Bytes are read into the receive buffer and ``seRead`` is reported once; again
  only after the application has read, and on a later turn, if bytes remain. A handler that
  never reads never makes OnRead spin. Past the high-water mark the socket stops reading, so
  TCP flow control slows the peer down; an error the kernel reports meanwhile still ends the
  connection at once.
* **Writing.** Send methods never lose or reorder data: what the kernel does not take is
  queued and flushed when the socket is writable. ``seWrite`` after the connection opens and
  whenever the queue has drained to ``SendQueueLowWater``.
* **Ending.** Every connection reports ``seDisconnect`` exactly once, and nothing after it. A
  peer's FIN comes after every byte before it was offered through ``seRead``, with the socket
  still writable: what the handler sends is flushed before the socket closes.
* **Threads.** In the component's thread nothing waits on the network. A blocking socket (a
  ``ctBlocking`` client, a ``stThreadBlocking`` server's client) waits in the threads allowed
  to: its worker, or any thread for a ctBlocking client. Calls from other threads are safe:
  sends queue in order and a pump-driven socket's pump flushes them; ``Close`` and
  ``Shutdown`` are handed to the component's thread.
"""
from __future__ import annotations

import socket
from typing import Any, Optional

from ._connection import ErrorSink, EventSink, FrameSink
from ._lifecycle import Input, seHalfClose
from ._receiving import FRAMES_PER_TURN, ReceiveSide
from ._recvbuffer import RECEIVE_HIGH_WATER
from ._sending import SendSide

__all__ = ["CustomWinSocket", "RECEIVE_HIGH_WATER", "seHalfClose", "EventSink", "ErrorSink",
           "FrameSink", "FRAMES_PER_TURN"]


def _plain_address(addr: str) -> str:
    """Show an IPv4-mapped IPv6 address (dual-stack listener) as plain dotted IPv4."""
    if addr.startswith("::ffff:") and "." in addr:
        return addr[7:]
    return addr.split("%", 1)[0] if addr.startswith("fe80") else addr


class CustomWinSocket(ReceiveSide, SendSide):
    """Base of every socket object: one connection at a time, its buffers, the VCL methods.

    ``CustomWinSocket(sock)`` wraps a connected OS socket, as the VCL's constructor does.
    ``RemoteAddress``/``RemotePort``/``LocalAddress``/``LocalPort`` are captured when the
    connection is made and stay valid in every event of it (OnError and OnDisconnect after a
    reset included); afterwards they read ``''`` / ``0`` / ``''`` / ``-1``. ``Data`` is the
    application's. See the module docstring for the delivery and thread rules.
    """

    def __init__(self, sock: Optional[socket.socket] = None) -> None:
        super().__init__(sock)
        if sock is not None and type(self) is CustomWinSocket:
            self._adopt(sock)

    def _adopt(self, sock: socket.socket) -> None:
        """``CustomWinSocket(sock)`` wraps a connected OS socket, as the VCL's constructor
        does: connected at once, read by this thread's pump, no events until sinks are set."""
        from ._pump import current_pump
        self._pump = current_pump()
        self._os_sock = None
        with self._mutex:
            self._life.step(Input.ACCEPT)
        transport = self._open_transport(sock)
        self._capture_addresses(sock)
        with self._mutex:
            self._life.step(Input.ESTABLISHED)
        transport.start_reading()

    # ------------------------------------------------------------------ addresses
    def _capture_addresses(self, sock: socket.socket, peer: Any = None) -> None:
        """Keep the peer's address for the whole connection (``getpeername`` fails after a
        reset); ``peer`` when known already (accept's result, the address connected to). The
        local address stays readable from the OS socket until it is released."""
        if peer is None:
            try:
                peer = sock.getpeername()
            except OSError:
                peer = None
        self._remote = peer

    def _local_name(self) -> Optional[tuple[Any, ...]]:
        sock = self._transport.sock if self._transport is not None else self._os_sock
        if sock is None:
            return None
        try:
            return sock.getsockname()
        except OSError:
            return None

    @property
    def LocalAddress(self) -> str:
        """Local IP address as text ('' without a connection)."""
        name = self._local_name()
        return _plain_address(name[0]) if name else ""

    @property
    def LocalHost(self) -> str:
        """This machine's host name ('' without a connection, as in the VCL)."""
        return socket.gethostname() if self._local_name() is not None else ""

    @property
    def LocalPort(self) -> int:
        """Local port, or -1 without a connection."""
        name = self._local_name()
        return int(name[1]) if name else -1

    @property
    def RemoteAddress(self) -> str:
        """The peer's IP address as text ('' when not connected)."""
        name = self._remote
        return _plain_address(name[0]) if name else ""

    @property
    def RemotePort(self) -> int:
        """The peer's port (0 when not connected)."""
        name = self._remote
        return int(name[1]) if name else 0

    @property
    def RemoteHost(self) -> str:
        """The peer's host name by reverse lookup ('' without one). Blocks the calling thread
        the first time; cached per connection."""
        if self._remote_host is None:
            addr = self.RemoteAddress
            if not addr:
                return ""
            try:
                self._remote_host = socket.gethostbyaddr(addr)[0]
            except OSError:
                self._remote_host = ""
        return self._remote_host
