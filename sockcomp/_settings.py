"""Per-connection settings: what a socket object (or a server, for every client it accepts)
is told before a connection starts, each checked when it is set.

A :class:`ConnectionSettings` holds them; :class:`Setting` turns each into a property of the
socket object (``Socket.SendQueueLimit``…), and the components expose the same names as Qt
properties. A server's listening socket keeps the settings its accepted clients start with
(:meth:`ConnectionSettings.copy`).
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Optional

from .errors import ESocketError
from .framing import DEFAULT_MAX_FRAME, FrameOverflow, FramingMode

__all__ = ["ConnectionSettings", "Setting", "KEEPALIVE_RESOLUTION_MS", "check_count",
           "check_text", "check_port"]

#: The finest keepalive timing the platform takes, in ms: Linux and macOS set the idle time
#: and the probe interval in whole seconds (TCP_KEEPIDLE, TCP_KEEPINTVL), Windows in ms.
KEEPALIVE_RESOLUTION_MS = 1 if sys.platform == "win32" else 1000
#: The largest values Linux accepts (TCP_KEEPIDLE/TCP_KEEPINTVL 32767 s, TCP_KEEPCNT 127).
_KEEPALIVE_MAX_MS = 32767 * 1000
_KEEPALIVE_MAX_COUNT = 127


def check_count(value: Any, name: str, minimum: int = 0, maximum: Optional[int] = None,
                unit: str = "") -> int:
    """``value`` as an int in range, or ESocketError naming the property and the range."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or \
            (maximum is not None and value > maximum):
        limits = f">= {minimum}" if maximum is None else f"{minimum}..{maximum}"
        raise ESocketError(f"Invalid {name} {value!r}: must be an int {limits}{unit}")
    return int(value)


def check_text(value: Any, name: str) -> str:
    """``value`` as a str, or ESocketError."""
    if not isinstance(value, str):
        raise ESocketError(f"Invalid {name} {value!r}: must be a string")
    return value


def check_port(value: Any) -> int:
    """A TCP port (0..65535), or ESocketError."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ESocketError(f"Invalid port number {value!r}: must be 0..65535")
    return int(value)


def check_service(value: Any, name: str = "Service") -> str:
    """A service: a name (``'http'``) or a port number as digits (0..65535), or ''."""
    text = check_text(value, name)
    if text.isdigit() and int(text) > 65535:
        raise ESocketError(f"Invalid port number {text!r}: must be 0..65535")
    return text


def _round_keepalive(value: Any, name: str) -> int:
    ms = check_count(value, name, 1, _KEEPALIVE_MAX_MS, " (ms)")
    step = KEEPALIVE_RESOLUTION_MS
    return -(-ms // step) * step  # rounded up to what the platform can set


def _check_encoding(value: Any) -> str:
    import codecs
    value = check_text(value, "Encoding")
    try:
        codecs.lookup(value)
    except LookupError:
        raise ESocketError(f"Invalid Encoding {value!r}: unknown to Python's codecs") from None
    return value


def _check_line_end(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ESocketError(f"Invalid LineEnd {value!r}: must be a non-empty string")
    return value


#: name -> (default, checker). Keepalive times are rounded up to KEEPALIVE_RESOLUTION_MS.
_FIELDS: dict[str, tuple[Any, Callable[[Any], Any]]] = {
    "Encoding": ("utf-8", _check_encoding),
    "AllowHalfClose": (False, bool),
    "Framing": (FramingMode.fmNone, lambda v: FramingMode(int(v))),
    "LineEnd": ("\n", _check_line_end),
    "MaxFrameSize": (DEFAULT_MAX_FRAME, lambda v: check_count(v, "MaxFrameSize", 1)),
    "FrameOverflow": (FrameOverflow.foClose, lambda v: FrameOverflow(int(v))),
    "SendQueueLimit": (0, lambda v: check_count(v, "SendQueueLimit")),
    "SendQueueLowWater": (0, lambda v: check_count(v, "SendQueueLowWater")),
    "IdleTimeout": (0, lambda v: check_count(v, "IdleTimeout", unit=" (ms)")),
    "HandshakeTimeout": (60_000, lambda v: check_count(v, "HandshakeTimeout", unit=" (ms)")),
    "KeepAlive": (False, bool),
    "KeepAliveTime": (30_000, lambda v: _round_keepalive(v, "KeepAliveTime")),
    "KeepAliveInterval": (5_000, lambda v: _round_keepalive(v, "KeepAliveInterval")),
    "KeepAliveCount": (4, lambda v: check_count(v, "KeepAliveCount", 1, _KEEPALIVE_MAX_COUNT)),
}


#: What each setting means (the docstring of the socket's and the components' property).
DOCS = {
    "Encoding": "Text encoding of SendText/ReceiveText/SendLine and lines (default 'utf-8').",
    "AllowHalfClose": "When the peer finishes sending, fire OnHalfClose (OnClientHalfClose) "
                      "and keep the connection open until the application closes it "
                      "(beyond the VCL). Default False: the peer's FIN fires OnDisconnect, with "
                      "the socket still writable inside it.",
    "Framing": "fmNone (raw bytes: OnRead/ReceiveText), fmLine or fmPacket: one event per "
               "message (OnLineReceived / OnPacketReceived; server: OnClient…). Beyond the VCL.",
    "LineEnd": "What ends a line in fmLine mode and after SendLine (default '\\n').",
    "MaxFrameSize": "Longest line or packet accepted, in bytes (default 1 MiB); longer is "
                    "OnError(eeReceive, 10040).",
    "FrameOverflow": "foClose (default): an oversized message is OnError(eeReceive, 10040) "
                     "and the connection closes; foDiscard: reported, then skipped.",
    "SendQueueLimit": "Most bytes queued per connection (0: no limit). A send in the "
                      "component's thread accepts what fits and returns that count, -1 when "
                      "nothing fits; a waiting sender (worker, ctBlocking) waits instead.",
    "SendQueueLowWater": "OnWrite fires when the send queue has drained to this many bytes "
                         "(default 0: empty).",
    "IdleTimeout": "Milliseconds without traffic (a TLS handshake included) after which the "
                   "connection is closed with OnError(eeGeneral, 10060); 0: never. Set on a "
                   "live connection that had none, it counts from that moment.",
    "HandshakeTimeout": "Milliseconds a TLS handshake may take (default 60000; 0: no limit); "
                        "expiry is OnError(eeConnect, 10060). A client's ConnectTimeout, when "
                        "set, covers the handshake too.",
    "KeepAlive": "TCP keepalive probes detect a vanished peer: OnError(eeDisconnect, 10060), "
                 "then OnDisconnect.",
    "KeepAliveTime": "ms without traffic before the first keepalive probe (default 30000; "
                     "rounded up to whole seconds on Linux and macOS, and read back rounded).",
    "KeepAliveInterval": "ms between keepalive probes (default 5000; rounded up to whole "
                         "seconds on Linux and macOS).",
    "KeepAliveCount": "Unanswered probes before the peer is declared gone (default 4; "
                      "1..127).",
}


class ConnectionSettings:
    """The per-connection settings (see :data:`_FIELDS` for names and defaults).

    Defaults live on the class and an instance holds only what was set, so making one and
    copying one (a server does it for every client it accepts) cost a dictionary copy.
    """

    Encoding: str
    AllowHalfClose: bool
    Framing: FramingMode
    LineEnd: str
    MaxFrameSize: int
    FrameOverflow: FrameOverflow
    SendQueueLimit: int
    SendQueueLowWater: int
    IdleTimeout: int
    HandshakeTimeout: int
    KeepAlive: bool
    KeepAliveTime: int
    KeepAliveInterval: int
    KeepAliveCount: int

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            check = _FIELDS[name][1]
        except KeyError:
            raise AttributeError(f"no connection setting {name!r}") from None
        self.__dict__[name] = check(value)

    def copy(self) -> "ConnectionSettings":
        """An independent copy (what a server gives each accepted client)."""
        other = ConnectionSettings.__new__(ConnectionSettings)
        other.__dict__.update(self.__dict__)
        return other

    @property
    def KeepAliveDetectionTime(self) -> int:
        """Longest time (ms) from the last traffic until a dead peer is reported, from the
        values actually set: KeepAliveTime + KeepAliveCount × KeepAliveInterval."""
        return int(self.KeepAliveTime + self.KeepAliveCount * self.KeepAliveInterval)


for _name, (_default, _) in _FIELDS.items():  # the defaults, from the one table
    setattr(ConnectionSettings, _name, _default)


class Setting:
    """A property of a socket object stored in its ``settings`` (a ConnectionSettings); the
    owner's ``_settings_changed(name)`` runs after each change."""

    def __init__(self, name: str) -> None:
        self.__doc__ = DOCS[name]
        self.name = name

    def __get__(self, obj: Any, owner: Optional[type] = None) -> Any:
        if obj is None:
            return self
        return getattr(obj.settings, self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        setattr(obj.settings, self.name, value)
        obj._settings_changed(self.name)
