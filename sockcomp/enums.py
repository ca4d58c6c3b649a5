"""The VCL enumerations, with their Delphi member names and ordinal values.

Every enum is an :class:`enum.IntEnum`, so ``ErrorEvent.eeConnect == 3`` as in Delphi, and each
member is also exported at module level (``sockcomp.eeConnect``), the way Pascal code names them.

The enums are declared inside :class:`ScktComp`, a QObject named after the Delphi unit, which
registers them with Qt's meta-object system: the components derive from it, so their Qt
properties are typed with these enums (``ClientSocket.metaObject()`` knows ``ClientType`` with
its member names), and QML reads them as ``ClientSocket.ctBlocking``. ``sockcomp.ClientType``
and ``ScktComp.ClientType`` are the same class.
"""
from __future__ import annotations

import socket
from enum import IntEnum

from PySide6.QtCore import QEnum, QObject

__all__ = [
    "ScktComp", "ClientType", "ServerType", "ErrorEvent", "SocketEvent", "LookupState",
    "SocketState", "FramingMode", "FrameOverflow", "AsyncStyle", "AsyncStyles",
    "asRead", "asWrite", "asOOB", "asAccept", "asConnect", "asClose",
    "lsIdle", "lsLookupAddress", "lsLookupService", "DEFAULT_ASYNC_STYLES",
    "ctNonBlocking", "ctBlocking", "stNonBlocking", "stThreadBlocking",
    "eeGeneral", "eeSend", "eeReceive", "eeConnect", "eeDisconnect", "eeAccept", "eeLookup",
    "seLookup", "seConnecting", "seConnect", "seDisconnect", "seListen", "seAccept", "seWrite",
    "seRead", "SD_RECEIVE", "SD_SEND", "SD_BOTH",
]


class ScktComp(QObject):
    """The enumerations of the Delphi unit ScktComp (and sockcomp's own), registered with Qt.

    The base class of the components, so that their properties and QML see the enums.
    """

    @QEnum
    class ClientType(IntEnum):
        """How a ClientSocket talks to its socket: by events (default) or by blocking calls."""

        ctNonBlocking = 0
        ctBlocking = 1

    @QEnum
    class ServerType(IntEnum):
        """How a ServerSocket serves clients: by events in its own thread, or a thread per
        client."""

        stNonBlocking = 0
        stThreadBlocking = 1

    @QEnum
    class ErrorEvent(IntEnum):
        """What a socket was doing when an error occurred (the ``ErrorEvent`` of OnError)."""

        eeGeneral = 0
        eeSend = 1
        eeReceive = 2
        eeConnect = 3
        eeDisconnect = 4
        eeAccept = 5
        eeLookup = 6

    @QEnum
    class SocketEvent(IntEnum):
        """The notifications a socket object reports to the component that owns it."""

        seLookup = 0
        seConnecting = 1
        seConnect = 2
        seDisconnect = 3
        seListen = 4
        seAccept = 5
        seWrite = 6
        seRead = 7

    @QEnum
    class LookupState(IntEnum):
        """Progress of the asynchronous name lookup of a client socket."""

        lsIdle = 0
        lsLookupAddress = 1
        lsLookupService = 2

    @QEnum
    class SocketState(IntEnum):
        """Life cycle of a socket object (beyond the VCL, after Qt's
        QAbstractSocket.SocketState).

        ``ssHandshaking``: TCP is up, TLS is negotiating. ``ssHalfClosed``: the peer has finished
        sending and the socket is kept open (``AllowHalfClose``). ``ssSendShutdown``: this side
        has finished sending (``Shutdown(SD_SEND)``) and still receives. ``ssClosing``: the
        connection is ending: OnDisconnect is running (``Connected`` still True, sends still
        accepted), or bytes accepted before are still being flushed (``Connected`` False). The
        transitions are those of :mod:`sockcomp._lifecycle`.
        """

        ssClosed = 0
        ssLookup = 1
        ssConnecting = 2
        ssConnected = 3
        ssListening = 4
        ssHalfClosed = 5
        ssClosing = 6
        ssHandshaking = 7
        ssSendShutdown = 8

    @QEnum
    class AsyncStyle(IntEnum):
        """One notification of ``ASyncStyles`` (``TAsyncStyle``): a socket whose set is empty
        is blocking."""

        asRead = 0
        asWrite = 1
        asOOB = 2
        asAccept = 3
        asConnect = 4
        asClose = 5

    @QEnum
    class FramingMode(IntEnum):
        """How a socket cuts its input into messages (beyond the VCL)."""

        fmNone = 0
        fmLine = 1
        fmPacket = 2

    @QEnum
    class FrameOverflow(IntEnum):
        """What happens to a message longer than ``MaxFrameSize``."""

        foClose = 0
        foDiscard = 1


ClientType = ScktComp.ClientType
ServerType = ScktComp.ServerType
ErrorEvent = ScktComp.ErrorEvent
SocketEvent = ScktComp.SocketEvent
LookupState = ScktComp.LookupState
SocketState = ScktComp.SocketState
FramingMode = ScktComp.FramingMode
FrameOverflow = ScktComp.FrameOverflow
AsyncStyle = ScktComp.AsyncStyle
#: ``TAsyncStyles``: a set of AsyncStyle (Pascal's ``[asRead, asWrite]``).
AsyncStyles = frozenset

ctNonBlocking = ClientType.ctNonBlocking
ctBlocking = ClientType.ctBlocking
stNonBlocking = ServerType.stNonBlocking
stThreadBlocking = ServerType.stThreadBlocking
eeGeneral = ErrorEvent.eeGeneral
eeSend = ErrorEvent.eeSend
eeReceive = ErrorEvent.eeReceive
eeConnect = ErrorEvent.eeConnect
eeDisconnect = ErrorEvent.eeDisconnect
eeAccept = ErrorEvent.eeAccept
eeLookup = ErrorEvent.eeLookup
seLookup = SocketEvent.seLookup
seConnecting = SocketEvent.seConnecting
seConnect = SocketEvent.seConnect
seDisconnect = SocketEvent.seDisconnect
seListen = SocketEvent.seListen
seAccept = SocketEvent.seAccept
seWrite = SocketEvent.seWrite
seRead = SocketEvent.seRead
asRead = AsyncStyle.asRead
asWrite = AsyncStyle.asWrite
asOOB = AsyncStyle.asOOB
asAccept = AsyncStyle.asAccept
asConnect = AsyncStyle.asConnect
asClose = AsyncStyle.asClose
lsIdle = LookupState.lsIdle
lsLookupAddress = LookupState.lsLookupAddress
lsLookupService = LookupState.lsLookupService

#: A connection's ``ASyncStyles`` by default (``[asRead, asWrite, asConnect, asClose]``).
DEFAULT_ASYNC_STYLES: frozenset[AsyncStyle] = frozenset((asRead, asWrite, asConnect, asClose))

#: ``Shutdown(how)`` values, named as in Winsock.
SD_RECEIVE = socket.SHUT_RD
SD_SEND = socket.SHUT_WR
SD_BOTH = socket.SHUT_RDWR
