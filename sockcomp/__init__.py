"""sockcomp — Delphi/C++Builder's socket components (ScktComp) as Qt components for Python.

``ClientSocket`` and ``ServerSocket`` are QObjects whose signals are named and ordered like the
VCL events (OnConnect, OnRead, OnClientRead, …); ``Socket`` gives the socket object with the
familiar data methods (SendText, ReceiveText, SendStream, …). See the README for the event
order, the error model and the differences from ScktComp.
"""
from __future__ import annotations

from .clientwinsock import ClientWinSocket
from .components import ClientSocket, ServerSocket
from .enums import (
    SD_BOTH,
    SD_RECEIVE,
    SD_SEND,
    AsyncStyle,
    ClientType,
    ErrorEvent,
    LookupState,
    ServerType,
    SocketEvent,
    SocketState,
    asAccept,
    asClose,
    asConnect,
    asOOB,
    asRead,
    asWrite,
    ctBlocking,
    ctNonBlocking,
    eeAccept,
    eeConnect,
    eeDisconnect,
    eeGeneral,
    eeLookup,
    eeReceive,
    eeSend,
    lsIdle,
    lsLookupAddress,
    lsLookupService,
    seAccept,
    seConnect,
    seConnecting,
    seDisconnect,
    seListen,
    seLookup,
    seRead,
    seWrite,
    stNonBlocking,
    stThreadBlocking,
)
from .errors import ESocketError, HandleException, SetErrorProc, SetExceptionHook
from .framing import FrameOverflow, FramingMode, fmLine, fmNone, fmPacket, foClose, foDiscard
from .serverwinsock import ServerClientWinSocket, ServerWinSocket
from .stream import ESocketTimeout, WinSocketStream
from .threads import ServerClientThread
from .var import Var
from .winsock import CustomWinSocket, seHalfClose

__version__ = "0.1.0"

__all__ = [
    "ClientSocket", "ServerSocket", "CustomWinSocket", "ClientWinSocket", "ServerWinSocket",
    "ServerClientWinSocket", "ServerClientThread", "WinSocketStream", "ESocketTimeout",
    "ESocketError", "Var", "ClientType", "ServerType", "ErrorEvent",
    "SocketEvent", "LookupState", "SocketState", "ctNonBlocking", "ctBlocking", "stNonBlocking",
    "stThreadBlocking", "eeGeneral", "eeSend", "eeReceive", "eeConnect", "eeDisconnect",
    "eeAccept", "eeLookup", "SD_RECEIVE", "SD_SEND", "SD_BOTH", "SetExceptionHook",
    "HandleException", "FramingMode", "FrameOverflow", "fmNone", "fmLine", "fmPacket", "foClose",
    "foDiscard", "seLookup", "seConnecting", "seConnect", "seDisconnect", "seListen",
    "seAccept", "seWrite", "seRead", "seHalfClose", "SetErrorProc", "AsyncStyle", "asRead",
    "asWrite", "asOOB", "asAccept", "asConnect", "asClose", "lsIdle", "lsLookupAddress",
    "lsLookupService",
]
