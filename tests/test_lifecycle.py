"""The life cycle state machine, without sockets: the table, the events, Connected and State.

Modelled on h11's test_state.py: every entry of the transition table is stepped, every pair
that is not in it must raise, the typical sequences are written out as event lists, and a
hypothesis state machine drives random input sequences while checking the invariants the
module promises (one OnDisconnect per connection and nothing after it, no OnConnect after a
failure, ``Connected`` from the phase before the end).
"""
from __future__ import annotations

import itertools

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from sockcomp._lifecycle import (
    CONNECTED_PHASES,
    TRANSITIONS,
    Input,
    Lifecycle,
    LifecycleError,
    Phase,
    seHalfClose,
)
from sockcomp.enums import (
    SocketState,
    seConnect,
    seConnecting,
    seDisconnect,
    seListen,
    seLookup,
)

P, I = Phase, Input  # noqa: E741
NEW_CONNECTION = (I.OPEN, I.ACCEPT, I.LISTEN)
ENDING = (P.FAILED, P.DISCONNECTING)
#: Any phase other than the ones the tests step from, so a copied ``prior`` is visible.
SENTINEL_PRIOR = P.SEND_SHUT

# The pairs the table does not list, apart from the one decided in step() (PEER_FIN in
# CONNECTED, which depends on AllowHalfClose).
DISALLOWED = [(phase, what) for phase, what in itertools.product(Phase, Input)
              if (phase, what) not in TRANSITIONS
              and not (phase is P.CONNECTED and what is I.PEER_FIN)]


def _id(pair: tuple[Phase, Input]) -> str:
    return f"{pair[0].name}-{pair[1].name}"


def at(phase: Phase, prior: Phase = SENTINEL_PRIOR, half_close: bool = False) -> Lifecycle:
    life = Lifecycle(phase, prior)
    life.allow_half_close = half_close
    return life


def events(inputs: list[Input], life: Lifecycle | None = None) -> list[int]:
    """The events ``inputs`` fire in order (None results left out)."""
    life = Lifecycle() if life is None else life
    fired = [life.step(what) for what in inputs]
    return [event for event in fired if event is not None]


# -- the table, entry by entry ------------------------------------------------------------------

def test_the_table_is_not_trivially_small() -> None:
    # a sanity check on the parametrisation below: both lists cover all 13 x 14 pairs
    assert len(TRANSITIONS) + len(DISALLOWED) + 1 == len(Phase) * len(Input)
    assert len(DISALLOWED) > 50


@pytest.mark.parametrize("pair", sorted(TRANSITIONS), ids=_id)
@pytest.mark.parametrize("half_close", [False, True])
def test_every_transition_gives_its_phase_and_event(pair: tuple[Phase, Input],
                                                    half_close: bool) -> None:
    phase, what = pair
    target, event = TRANSITIONS[pair]
    life = at(phase, half_close=half_close)
    life.generation = 5
    assert life.allows(what)
    assert life.step(what) == event
    assert life.phase is target
    # generation counts the connections begun, and nothing else
    assert life.generation == (6 if what in NEW_CONNECTION else 5)
    # prior: the phase before the end began, kept while already ending
    if target in ENDING and phase not in ENDING:
        assert life.prior is phase
    else:
        assert life.prior is SENTINEL_PRIOR


@pytest.mark.parametrize("pair", DISALLOWED, ids=_id)
def test_every_pair_outside_the_table_raises_and_changes_nothing(
        pair: tuple[Phase, Input]) -> None:
    phase, what = pair
    life = at(phase)
    life.generation = 3
    assert not life.allows(what)
    with pytest.raises(LifecycleError, match=f"{what.name}.*{phase.name}"):
        life.step(what)
    assert (life.phase, life.prior, life.generation) == (phase, SENTINEL_PRIOR, 3)


@pytest.mark.parametrize("half_close", [False, True])
def test_allows_agrees_with_step_for_every_pair(half_close: bool) -> None:
    for phase, what in itertools.product(Phase, Input):
        life = at(phase, half_close=half_close)
        expected = life.allows(what)
        try:
            life.step(what)
        except LifecycleError:
            accepted = False
        else:
            accepted = True
        assert accepted is expected, (phase.name, what.name)


def test_the_table_only_fires_known_events() -> None:
    known = {None, seLookup, seConnecting, seConnect, seDisconnect, seListen}
    assert {event for _, event in TRANSITIONS.values()} <= known
    # OnDisconnect fires exactly on the way into DISCONNECTING from elsewhere
    for (phase, _), (target, event) in TRANSITIONS.items():
        entering = target is P.DISCONNECTING and phase is not P.DISCONNECTING
        assert (event == seDisconnect) is entering


# -- the peer's FIN in CONNECTED --------------------------------------------------------------

def test_peer_fin_with_allow_half_close_half_closes() -> None:
    life = at(P.CONNECTED, half_close=True)
    life.generation = 2
    assert life.allows(I.PEER_FIN)
    assert life.step(I.PEER_FIN) == seHalfClose
    assert life.phase is P.HALF_CLOSED
    assert life.connected
    assert life.state is SocketState.ssHalfClosed
    assert (life.prior, life.generation) == (SENTINEL_PRIOR, 2)
    # we may still send, and finishing that ends the connection
    assert life.step(I.SHUT_SEND) == seDisconnect
    assert life.phase is P.DISCONNECTING
    assert life.prior is P.HALF_CLOSED
    assert life.connected


def test_peer_fin_without_allow_half_close_disconnects() -> None:
    life = at(P.CONNECTED, half_close=False)
    life.generation = 2
    assert life.allows(I.PEER_FIN)
    assert life.step(I.PEER_FIN) == seDisconnect
    assert life.phase is P.DISCONNECTING
    assert life.prior is P.CONNECTED
    assert life.generation == 2
    assert life.connected  # inside OnDisconnect of a connection that was up
    assert life.state is SocketState.ssClosing


def test_seHalfClose_is_distinct_from_the_vcl_events() -> None:
    assert seHalfClose not in {seLookup, seConnecting, seConnect, seDisconnect, seListen}


# -- generation ---------------------------------------------------------------------------------

def test_generation_counts_open_accept_listen_only() -> None:
    life = Lifecycle()
    assert life.generation == 0
    steps = [
        (I.OPEN, 1), (I.RESOLVED, 1), (I.RESOLVED, 1), (I.ESTABLISHED, 1), (I.CLOSE, 1),
        (I.FLUSHING, 1), (I.OPEN, 2), (I.FAIL, 2), (I.CLOSE, 2), (I.RELEASED, 2),
        (I.ACCEPT, 3), (I.HANDSHAKE, 3), (I.ESTABLISHED, 3), (I.PEER_FIN, 3), (I.FAIL, 3),
        (I.RELEASED, 3), (I.LISTEN, 4), (I.LISTENED, 4), (I.FAIL, 4), (I.CLOSE, 4),
        (I.FLUSHING, 4), (I.FLUSHED, 4), (I.CLOSE, 4), (I.OPEN, 5),
    ]
    for what, generation in steps:
        life.step(what)
        assert life.generation == generation, what.name


def test_a_refused_input_does_not_count_a_generation() -> None:
    life = Lifecycle(P.CONNECTED)
    with pytest.raises(LifecycleError):
        life.step(I.OPEN)
    with pytest.raises(LifecycleError):
        life.step(I.ACCEPT)
    with pytest.raises(LifecycleError):
        life.step(I.LISTEN)
    assert life.generation == 0


# -- Connected and State ------------------------------------------------------------------------

#: Written out by hand (not taken from the module) for every phase but FAILED/DISCONNECTING.
PUBLIC = {
    P.CLOSED: (False, SocketState.ssClosed),
    P.LOOKUP: (False, SocketState.ssLookup),
    P.CONNECTING: (False, SocketState.ssConnecting),
    P.ACCEPTED: (True, SocketState.ssConnected),
    P.HANDSHAKING: (False, SocketState.ssHandshaking),
    P.CONNECTED: (True, SocketState.ssConnected),
    P.HALF_CLOSED: (True, SocketState.ssHalfClosed),
    P.SEND_SHUT: (True, SocketState.ssSendShutdown),
    P.CLOSING: (False, SocketState.ssClosing),
    P.ANNOUNCING: (False, SocketState.ssListening),
    P.LISTENING: (True, SocketState.ssListening),
}
#: The phases a connection can end from (the prior of FAILED and DISCONNECTING).
END_FROM = [P.LOOKUP, P.CONNECTING, P.ACCEPTED, P.HANDSHAKING, P.CONNECTED, P.HALF_CLOSED,
            P.SEND_SHUT, P.ANNOUNCING, P.LISTENING]


def test_public_covers_every_phase_but_the_ending_ones() -> None:
    assert set(PUBLIC) | set(ENDING) == set(Phase)


@pytest.mark.parametrize("phase", list(PUBLIC), ids=lambda p: p.name)
@pytest.mark.parametrize("prior", [P.CLOSED, P.CONNECTED], ids=lambda p: f"prior-{p.name}")
def test_connected_and_state_per_phase(phase: Phase, prior: Phase) -> None:
    life = at(phase, prior=prior)  # prior matters only while ending
    assert (life.connected, life.state) == PUBLIC[phase]
    assert life.ending is False


@pytest.mark.parametrize("prior", END_FROM, ids=lambda p: p.name)
def test_failed_reports_the_phase_before_the_failure(prior: Phase) -> None:
    life = at(P.FAILED, prior=prior)
    assert life.connected is PUBLIC[prior][0]
    assert life.state is PUBLIC[prior][1]
    assert life.ending and not life.live


@pytest.mark.parametrize("prior", END_FROM, ids=lambda p: p.name)
def test_disconnecting_reports_connected_from_before_the_end(prior: Phase) -> None:
    life = at(P.DISCONNECTING, prior=prior)
    assert life.connected is PUBLIC[prior][0]
    assert life.state is SocketState.ssClosing
    assert life.ending and not life.live


def test_connected_is_false_inside_ondisconnect_of_a_failed_connect() -> None:
    life = Lifecycle()
    for what in (I.OPEN, I.RESOLVED, I.FAIL):
        life.step(what)
    assert life.phase is P.FAILED
    assert not life.connected
    assert life.state is SocketState.ssConnecting  # OnError sees where it failed
    assert life.step(I.CLOSE) == seDisconnect
    assert not life.connected
    assert life.state is SocketState.ssClosing


def test_connected_is_true_inside_ondisconnect_of_a_connection_that_was_up() -> None:
    life = Lifecycle()
    for what in (I.OPEN, I.RESOLVED, I.ESTABLISHED, I.FAIL):
        life.step(what)
    assert life.phase is P.FAILED
    assert life.connected
    assert life.state is SocketState.ssConnected
    assert life.step(I.CLOSE) == seDisconnect
    assert life.connected
    # a late failure while OnDisconnect runs keeps it so
    assert life.step(I.FAIL) is None
    assert life.connected
    assert life.step(I.RELEASED) is None
    assert not life.connected
    assert life.state is SocketState.ssClosed


def test_prior_of_an_earlier_connection_does_not_leak_into_the_next() -> None:
    life = Lifecycle()
    events([I.OPEN, I.RESOLVED, I.ESTABLISHED, I.CLOSE, I.RELEASED], life)
    assert life.prior is P.CONNECTED
    events([I.OPEN, I.FAIL, I.CLOSE], life)
    assert life.prior is P.LOOKUP
    assert not life.connected


# -- typical sequences --------------------------------------------------------------------------

def test_client_success_then_peer_closes() -> None:
    life = Lifecycle()
    assert events([I.OPEN, I.RESOLVED, I.ESTABLISHED, I.PEER_FIN, I.RELEASED], life) == \
        [seLookup, seConnecting, seConnect, seDisconnect]
    assert life.phase is P.CLOSED
    assert life.generation == 1


def test_client_tries_each_address_then_connects() -> None:
    assert events([I.OPEN, I.RESOLVED, I.RESOLVED, I.RESOLVED, I.ESTABLISHED, I.CLOSE,
                   I.RELEASED]) == [seLookup, seConnecting, seConnect, seDisconnect]


def test_client_refused() -> None:
    life = Lifecycle()
    assert events([I.OPEN, I.RESOLVED, I.FAIL, I.CLOSE], life) == \
        [seLookup, seConnecting, seDisconnect]
    assert life.phase is P.DISCONNECTING
    assert not life.connected


def test_client_lookup_fails() -> None:
    assert events([I.OPEN, I.FAIL, I.CLOSE, I.RELEASED]) == [seLookup, seDisconnect]


def test_client_tls_failure() -> None:
    life = Lifecycle()
    assert events([I.OPEN, I.RESOLVED, I.HANDSHAKE, I.FAIL, I.CLOSE], life) == \
        [seLookup, seConnecting, seDisconnect]
    assert not life.connected
    # whatever a handler did, the failed handshake cannot become a connection now
    assert not life.allows(I.ESTABLISHED)


def test_client_tls_success() -> None:
    assert events([I.OPEN, I.RESOLVED, I.HANDSHAKE, I.ESTABLISHED, I.SHUT_SEND, I.PEER_FIN,
                   I.RELEASED]) == [seLookup, seConnecting, seConnect, seDisconnect]


def test_server_client_closed_while_bytes_are_queued() -> None:
    life = Lifecycle()
    assert events([I.ACCEPT, I.ESTABLISHED, I.CLOSE, I.FLUSHING, I.FLUSHED], life) == \
        [seConnect, seDisconnect]
    assert life.phase is P.CLOSED
    assert life.generation == 1


def test_server_client_with_tls() -> None:
    life = Lifecycle()
    life.step(I.ACCEPT)
    assert life.connected and life.state is SocketState.ssConnected
    life.step(I.HANDSHAKE)
    assert life.state is SocketState.ssHandshaking
    assert life.step(I.ESTABLISHED) == seConnect
    assert life.connected


def test_listener() -> None:
    life = Lifecycle()
    assert life.step(I.LISTEN) == seListen
    assert life.phase is P.ANNOUNCING and not life.connected
    assert life.state is SocketState.ssListening
    assert life.step(I.LISTENED) is None
    assert life.connected
    assert life.step(I.FAIL) is None  # an accept error keeps the listener open
    assert life.phase is P.LISTENING
    assert events([I.CLOSE, I.RELEASED], life) == [seDisconnect]
    assert life.phase is P.CLOSED and life.generation == 1


def test_listener_closed_inside_onlisten() -> None:
    life = Lifecycle()
    assert events([I.LISTEN, I.CLOSE], life) == [seListen, seDisconnect]
    assert not life.connected  # it never got to LISTENING


def test_reopen_while_flushing() -> None:
    life = Lifecycle()
    assert events([I.OPEN, I.RESOLVED, I.ESTABLISHED, I.CLOSE, I.FLUSHING], life) == \
        [seLookup, seConnecting, seConnect, seDisconnect]
    assert life.phase is P.CLOSING
    assert not life.connected and life.state is SocketState.ssClosing
    assert life.step(I.OPEN) == seLookup
    assert life.phase is P.LOOKUP and life.generation == 2
    assert events([I.RESOLVED, I.ESTABLISHED], life) == [seConnecting, seConnect]


def test_late_news_after_the_end_fires_nothing() -> None:
    life = Lifecycle()
    events([I.OPEN, I.RESOLVED, I.ESTABLISHED, I.CLOSE], life)
    assert events([I.FAIL, I.CLOSE, I.PEER_FIN, I.SHUT_SEND], life) == []
    assert life.phase is P.DISCONNECTING
    life.step(I.FLUSHING)
    assert events([I.FAIL, I.CLOSE, I.PEER_FIN, I.SHUT_SEND], life) == []
    assert life.phase is P.CLOSING
    life.step(I.FLUSHED)
    assert events([I.FAIL, I.CLOSE, I.PEER_FIN, I.SHUT_SEND], life) == []
    assert life.phase is P.CLOSED


# -- random sequences ---------------------------------------------------------------------------

class LifecycleMachine(RuleBasedStateMachine):
    """Random drivers: allowed inputs, and now and then any input (which must raise or step)."""

    def __init__(self) -> None:
        super().__init__()
        self.life = Lifecycle()
        self.generation = 0
        self.fired: list[int] = []   # events of the current connection
        self.failed = False          # a FAIL came in the current connection
        self.prior = P.CLOSED        # the model's own idea of Lifecycle.prior

    def apply(self, what: Input) -> None:
        life = self.life
        before = life.phase
        event = life.step(what)
        if what in NEW_CONNECTION:
            self.generation += 1
            self.fired = []
            self.failed = False
        if what is I.FAIL:
            self.failed = True
        if life.phase in ENDING and before not in ENDING:
            self.prior = before
        if event is None:
            return
        assert seDisconnect not in self.fired, (what.name, event, self.fired)
        if event == seConnect:
            assert not self.failed, "seConnect after a failure"
            assert seConnect not in self.fired, "a second seConnect"
        # OnDisconnect runs in DISCONNECTING, and only on the way into it
        assert (event == seDisconnect) == (life.phase is P.DISCONNECTING
                                           and before is not P.DISCONNECTING)
        self.fired.append(event)

    @initialize(half_close=st.booleans())
    def start(self, half_close: bool) -> None:
        self.life.allow_half_close = half_close

    @rule(half_close=st.booleans())
    def set_allow_half_close(self, half_close: bool) -> None:
        self.life.allow_half_close = half_close

    @rule(pick=st.integers(0, len(Input) - 1))
    def allowed_input(self, pick: int) -> None:
        choices = [what for what in Input if self.life.allows(what)]
        self.apply(choices[pick % len(choices)])

    @rule(pick=st.integers(0, len(Input) - 1))
    def progress(self, pick: int) -> None:
        # an allowed input that does not end the connection, when there is one: reaches the
        # deeper phases (HALF_CLOSED, SEND_SHUT, LISTENING) more often
        choices = [what for what in Input
                   if what not in (I.FAIL, I.CLOSE) and self.life.allows(what)]
        self.apply(choices[pick % len(choices)] if choices else I.CLOSE)

    @rule(what=st.sampled_from(Input))
    def any_input(self, what: Input) -> None:
        life = self.life
        if life.allows(what):
            self.apply(what)
            return
        before = (life.phase, life.prior, life.generation, life.connected)
        with pytest.raises(LifecycleError):
            life.step(what)
        assert (life.phase, life.prior, life.generation, life.connected) == before

    @invariant()
    def phase_is_a_phase(self) -> None:
        assert isinstance(self.life.phase, Phase)
        assert isinstance(self.life.state, SocketState)

    @invariant()
    def generation_counts_connections(self) -> None:
        assert self.life.generation == self.generation

    @invariant()
    def connected_follows_phase_or_prior(self) -> None:
        phase = self.life.phase
        expected = phase in CONNECTED_PHASES or (phase in ENDING
                                                 and self.prior in CONNECTED_PHASES)
        assert self.life.connected is expected

    @invariant()
    def close_is_always_allowed(self) -> None:
        # Close() may come at any time; it must never be a driver error
        assert self.life.allows(I.CLOSE)


LifecycleMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40,
                                              deadline=None)
TestLifecycleMachine = LifecycleMachine.TestCase
