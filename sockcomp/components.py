"""The components: ``ClientSocket`` and ``ServerSocket``, QObjects that speak in VCL events.

A component owns one socket object (``Socket``) and turns its notifications into Qt signals
named like the Delphi events, with Delphi's arguments (``Sender``, ``Socket``, …). Properties
follow the VCL rules: Host beats Address, Service beats Port, and they cannot change while the
socket is active. All signals are emitted in the component's thread.

The classes live in :mod:`sockcomp.clientsocket` and :mod:`sockcomp.serversocket`, their
shared base in :mod:`sockcomp._component`; this module keeps the names together.
"""
from __future__ import annotations

from .clientsocket import ClientSocket
from .serversocket import ServerSocket

__all__ = ["ClientSocket", "ServerSocket"]
