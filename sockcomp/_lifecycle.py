"""The life cycle of one socket object: its phases, the transitions, and the VCL event each fires.

Everything that decides *where a connection is* lives here, and nothing else does: no sockets,
no Qt, no threads (h11's ``_state.py`` is the model). The non-blocking path, the blocking
client, thread mode and the server's client sockets all drive the same :class:`Lifecycle`, so
the event order is written once, in :data:`TRANSITIONS`, and is tested without sockets.

A driver reports what happened as an :class:`Input`; :meth:`Lifecycle.step` moves to the next
:class:`Phase` and returns the :class:`~sockcomp.enums.SocketEvent` that transition fires (or
``None``). An input the table does not allow in the current phase raises
:class:`LifecycleError`: a driver bug, never a network condition. Inputs that may legitimately
arrive late (a close after the connection already ended, a failure found while ending) are in
the table as no-ops, so drivers need no guards of their own.

The invariants the table guarantees (and the tests check, by hypothesis, over random input
sequences):

* every connection fires ``seDisconnect`` at most once, and nothing after it;
* ``seConnect`` never follows a failure: a failed lookup, connect or handshake goes to
  ``FAILED`` and from there only to ``DISCONNECTING``, whatever an OnError handler did to its
  ``ErrorCode``;
* ``Connected`` is true exactly in the phases of :data:`CONNECTED_PHASES`; in ``FAILED`` and
  ``DISCONNECTING`` it is what it was in the last phase before the connection began to end
  (so it stays False inside the OnDisconnect of a connect that failed).

Phases of a connection: ``CLOSED → LOOKUP → CONNECTING → (HANDSHAKING) → CONNECTED`` for a
client, ``CLOSED → ACCEPTED → (HANDSHAKING) → CONNECTED`` for a server's client, then
``HALF_CLOSED`` (the peer finished sending, with AllowHalfClose) or ``SEND_SHUT`` (we did,
``Shutdown(SD_SEND)``), then ``DISCONNECTING`` (OnDisconnect is running: the socket is still
open and writable), ``CLOSING`` (bytes accepted before are still being flushed) and ``CLOSED``.
A listening socket goes ``CLOSED → ANNOUNCING`` (OnListen is running) ``→ LISTENING``.
"""
from __future__ import annotations

from enum import IntEnum
from typing import Optional

from .enums import (
    SocketState,
    seConnect,
    seConnecting,
    seDisconnect,
    seListen,
    seLookup,
)

__all__ = [
    "Phase", "Input", "Lifecycle", "LifecycleError", "TRANSITIONS", "CONNECTED_PHASES",
    "LIVE_PHASES", "READ_PHASES", "WRITE_PHASES", "SEND_PHASES", "seHalfClose",
]

#: sockcomp's extra notification: the peer finished sending and ``AllowHalfClose`` is on.
seHalfClose = 8


class Phase(IntEnum):
    """Where a socket object is in its life cycle (finer than the public SocketState)."""

    CLOSED = 0
    LOOKUP = 1          # Open(): resolving the host or service
    CONNECTING = 2      # TCP connect in progress (one address after another)
    ACCEPTED = 3        # a server's client: TCP is up, OnClientConnect not fired yet
    HANDSHAKING = 4     # TCP is up, TLS is negotiating
    CONNECTED = 5
    HALF_CLOSED = 6     # the peer finished sending (AllowHalfClose); we may still send
    SEND_SHUT = 7       # we finished sending (Shutdown(SD_SEND)); still receiving
    FAILED = 8          # an error was found: OnError runs, then DISCONNECTING
    DISCONNECTING = 9   # OnDisconnect runs: still open, still writable
    CLOSING = 10        # OnDisconnect is over; queued bytes are still being flushed
    ANNOUNCING = 11     # a listener between listen() and the end of OnListen
    LISTENING = 12

    # hashed as the int it is (Enum's own hash is a Python call): the phase sets are checked
    # on every event
    __hash__ = int.__hash__


class Input(IntEnum):
    """What a driver tells the life cycle."""

    OPEN = 0          # Open() was called
    RESOLVED = 1      # an address to try is known (again, for the next address)
    HANDSHAKE = 2     # TCP is up and TLS starts
    ESTABLISHED = 3   # the connection is usable (after TLS when on)
    ACCEPT = 4        # a server created this object for an accepted connection
    PEER_FIN = 5      # the peer finished sending and every byte before it was offered
    SHUT_SEND = 6     # Shutdown(SD_SEND) was called
    FAIL = 7          # an error ended (or will end) the connection
    CLOSE = 8         # the connection ends: Close(), peer gone, or after FAIL
    FLUSHING = 9      # released while bytes are still queued: flush them in the background
    RELEASED = 10     # released, nothing left to send
    FLUSHED = 11      # the background flush finished (or gave up)
    LISTEN = 12       # listen() succeeded
    LISTENED = 13     # OnListen returned

    __hash__ = int.__hash__  # (phase, input) keys of the table hash fast (see Phase)


class LifecycleError(RuntimeError):
    """An input the current phase does not allow: a bug in a driver, not a network event."""


P, I = Phase, Input  # noqa: E741  (the table reads better with short names)
_LIVE = (P.LOOKUP, P.CONNECTING, P.ACCEPTED, P.HANDSHAKING, P.CONNECTED, P.HALF_CLOSED,
         P.SEND_SHUT)
_ENDED = (P.DISCONNECTING, P.CLOSING, P.CLOSED)

#: (phase, input) -> (next phase, event fired). ``PEER_FIN`` in CONNECTED depends on
#: AllowHalfClose and is decided in :meth:`Lifecycle.step`.
TRANSITIONS: dict[tuple[Phase, Input], tuple[Phase, Optional[int]]] = {
    (P.CLOSED, I.OPEN): (P.LOOKUP, seLookup),
    (P.CLOSING, I.OPEN): (P.LOOKUP, seLookup),   # the old flush goes on, detached
    (P.LOOKUP, I.RESOLVED): (P.CONNECTING, seConnecting),
    (P.CONNECTING, I.RESOLVED): (P.CONNECTING, None),  # the next address of the list
    (P.CONNECTING, I.HANDSHAKE): (P.HANDSHAKING, None),
    (P.CONNECTING, I.ESTABLISHED): (P.CONNECTED, seConnect),
    (P.CLOSED, I.ACCEPT): (P.ACCEPTED, None),
    (P.ACCEPTED, I.HANDSHAKE): (P.HANDSHAKING, None),
    (P.ACCEPTED, I.ESTABLISHED): (P.CONNECTED, seConnect),
    (P.HANDSHAKING, I.ESTABLISHED): (P.CONNECTED, seConnect),
    (P.SEND_SHUT, I.PEER_FIN): (P.DISCONNECTING, seDisconnect),  # both directions are done
    (P.CONNECTED, I.SHUT_SEND): (P.SEND_SHUT, None),
    (P.SEND_SHUT, I.SHUT_SEND): (P.SEND_SHUT, None),
    (P.HALF_CLOSED, I.SHUT_SEND): (P.DISCONNECTING, seDisconnect),  # both directions are done
    (P.FAILED, I.CLOSE): (P.DISCONNECTING, seDisconnect),
    (P.FAILED, I.FAIL): (P.FAILED, None),
    (P.DISCONNECTING, I.FLUSHING): (P.CLOSING, None),
    (P.DISCONNECTING, I.RELEASED): (P.CLOSED, None),
    (P.CLOSING, I.FLUSHED): (P.CLOSED, None),
    (P.CLOSED, I.LISTEN): (P.ANNOUNCING, seListen),
    (P.ANNOUNCING, I.LISTENED): (P.LISTENING, None),
    (P.ANNOUNCING, I.CLOSE): (P.DISCONNECTING, seDisconnect),
    (P.LISTENING, I.CLOSE): (P.DISCONNECTING, seDisconnect),
    (P.LISTENING, I.FAIL): (P.LISTENING, None),  # a listener's error (accept) keeps it open
}
for _phase in _LIVE:
    TRANSITIONS[(_phase, I.FAIL)] = (P.FAILED, None)
    TRANSITIONS[(_phase, I.CLOSE)] = (P.DISCONNECTING, seDisconnect)
for _phase in _ENDED:  # late news about a connection that is already ending: nothing fires
    TRANSITIONS[(_phase, I.FAIL)] = (_phase, None)
    TRANSITIONS[(_phase, I.CLOSE)] = (_phase, None)
    TRANSITIONS[(_phase, I.PEER_FIN)] = (_phase, None)
    TRANSITIONS[(_phase, I.SHUT_SEND)] = (_phase, None)
TRANSITIONS[(P.FAILED, I.PEER_FIN)] = (P.FAILED, None)
TRANSITIONS[(P.FAILED, I.SHUT_SEND)] = (P.FAILED, None)
del _phase

#: Phases in which ``Connected`` is true (FAILED and DISCONNECTING: see ``Lifecycle.prior``).
CONNECTED_PHASES = frozenset({P.ACCEPTED, P.CONNECTED, P.HALF_CLOSED, P.SEND_SHUT,
                              P.LISTENING})
#: Phases of a connection that has not started to end (timeouts and errors apply).
LIVE_PHASES = frozenset(_LIVE)
#: Phases in which OnRead may fire (bytes arrived, or remain after a read).
READ_PHASES = frozenset({P.CONNECTED, P.SEND_SHUT, P.HALF_CLOSED})
#: Phases in which OnWrite may fire (connected, or queue drained).
WRITE_PHASES = frozenset({P.CONNECTED, P.HALF_CLOSED})
#: Phases in which send methods accept data (DISCONNECTING: OnDisconnect may still reply).
SEND_PHASES = frozenset({P.CONNECTED, P.HALF_CLOSED, P.DISCONNECTING})

_PUBLIC = {
    P.CLOSED: SocketState.ssClosed, P.LOOKUP: SocketState.ssLookup,
    P.CONNECTING: SocketState.ssConnecting, P.ACCEPTED: SocketState.ssConnected,
    P.HANDSHAKING: SocketState.ssHandshaking, P.CONNECTED: SocketState.ssConnected,
    P.HALF_CLOSED: SocketState.ssHalfClosed, P.SEND_SHUT: SocketState.ssSendShutdown,
    P.DISCONNECTING: SocketState.ssClosing, P.CLOSING: SocketState.ssClosing,
    P.ANNOUNCING: SocketState.ssListening, P.LISTENING: SocketState.ssListening,
}


# The members the methods below test, bound once: on Python 3.11 reading ``Phase.X`` goes
# through the enum's metaclass (about 180 ns; 30 on 3.13), and ``Connected`` is read in loops.
_CLOSED, _CONNECTED, _HALF_CLOSED = Phase.CLOSED, Phase.CONNECTED, Phase.HALF_CLOSED
_FAILED, _DISCONNECTING = Phase.FAILED, Phase.DISCONNECTING
_PEER_FIN, _OPEN, _ACCEPT, _LISTEN = Input.PEER_FIN, Input.OPEN, Input.ACCEPT, Input.LISTEN


class Lifecycle:
    """The phase of one socket object, moved only by :meth:`step`.

    ``generation`` counts the connections this object has begun (OPEN, ACCEPT, LISTEN):
    a callback that captured it knows whether it still talks about the current one.
    ``prior`` is the last phase before the connection began to end (FAILED, DISCONNECTING).
    ``allow_half_close`` chooses what the peer's FIN does in CONNECTED: OnHalfClose and
    HALF_CLOSED, or OnDisconnect. ``connected`` is the VCL's ``Connected``, worked out at each
    step rather than at each question (a worker's loop asks once per message).
    """

    __slots__ = ("phase", "prior", "generation", "allow_half_close", "connected")

    def __init__(self, phase: Phase = _CLOSED, prior: Phase = _CLOSED) -> None:
        self.phase = phase
        self.prior = prior
        self.generation = 0
        self.allow_half_close = False
        #: A connection (or a listener) is up: a phase of CONNECTED_PHASES, or ending from one.
        self.connected = (prior if phase is _FAILED or phase is _DISCONNECTING else phase) \
            in CONNECTED_PHASES

    def step(self, what: Input) -> Optional[int]:
        """Apply ``what``; returns the SocketEvent to fire (or None). Raises LifecycleError."""
        phase = self.phase
        if what is _PEER_FIN and phase is _CONNECTED:
            if self.allow_half_close:
                self.phase = _HALF_CLOSED
                return seHalfClose  # still connected
            self.prior = phase
            self.phase = _DISCONNECTING
            return seDisconnect  # still connected (inside OnDisconnect too, as the VCL)
        try:
            target, event = TRANSITIONS[(phase, what)]
        except KeyError:
            raise LifecycleError(f"{what.name} is not allowed in {phase.name}") from None
        if target is _FAILED or target is _DISCONNECTING:
            if phase is not _FAILED and phase is not _DISCONNECTING:
                self.prior = phase
            self.connected = self.prior in CONNECTED_PHASES
        else:
            self.connected = target in CONNECTED_PHASES
        if what is _OPEN or what is _ACCEPT or what is _LISTEN:
            self.generation += 1
        self.phase = target
        return event

    def allows(self, what: Input) -> bool:
        """Whether :meth:`step` would accept ``what`` now."""
        return (what is _PEER_FIN and self.phase is _CONNECTED) or \
            (self.phase, what) in TRANSITIONS

    @property
    def live(self) -> bool:
        """Opened and not ending: lookup, connect, handshake, connected, half-closed."""
        return self.phase in LIVE_PHASES

    @property
    def ending(self) -> bool:
        """The connection failed or is ending; nothing but OnError/OnDisconnect comes now."""
        return self.phase is _FAILED or self.phase is _DISCONNECTING

    @property
    def state(self) -> SocketState:
        """The public :class:`~sockcomp.enums.SocketState` of this phase."""
        phase = self.prior if self.phase is _FAILED else self.phase
        return _PUBLIC[phase]

    def __repr__(self) -> str:
        return f"<Lifecycle {self.phase.name} gen={self.generation}>"
