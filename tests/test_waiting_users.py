"""Threads waiting on a blocking socket count as its users, without a lock: a close from another
thread leaves the descriptor to the last user out, and exactly one thread closes it.

The interleavings that matter are forced where they can happen: a close between a user's
entry and its check of ``_closed``, and a user leaving between a close's count of the users and
its decision. The users list is swapped for one that runs the other side at those points.
"""
from __future__ import annotations

import socket
import threading
from typing import Any, Callable, Iterator, Optional

import pytest

from sockcomp import _blocking, _transport
from sockcomp._blocking import WaitingTransport


class HookedUsers(list):
    """The transport's users list, running ``on_append`` after an entry goes in and
    ``on_count`` after a close has counted the users (before it acts on the count)."""

    on_append: Optional[Callable[[], None]] = None
    on_count: Optional[Callable[[], None]] = None

    def append(self, item: Any) -> None:
        super().append(item)
        hook, self.on_append = self.on_append, None
        if hook is not None:
            hook()

    def __len__(self) -> int:
        count = super().__len__()
        hook, self.on_count = self.on_count, None
        if hook is not None:
            hook()
        return count


@pytest.fixture
def closes(monkeypatch) -> list[socket.socket]:
    """Every descriptor close the transports make, in order."""
    made: list[socket.socket] = []
    real = _transport.close_quietly

    def counted(sock: socket.socket, graceful: bool, drain: bool = True) -> None:
        made.append(sock)
        real(sock, graceful, drain)

    monkeypatch.setattr(_transport, "close_quietly", counted)
    monkeypatch.setattr(_blocking, "close_quietly", counted)
    return made


@pytest.fixture
def pair() -> Iterator[tuple[WaitingTransport, socket.socket]]:
    ours, peer = socket.socketpair()
    peer.settimeout(5)
    transport = WaitingTransport(ours, None, None, threading.RLock(), served_by_worker=True)
    transport._users = HookedUsers()
    yield transport, peer
    peer.close()
    ours.close()


def test_a_close_while_a_thread_waits_leaves_the_descriptor_to_it(pair, closes) -> None:
    t, peer = pair
    assert t._enter()
    t._close(graceful=True)
    assert closes == [] and t.sock.fileno() != -1  # still in use: only shut down
    assert peer.recv(1) == b""                      # the shutdown reached the peer
    t._leave()
    assert closes == [t.sock]


def test_the_last_of_two_waiters_closes(pair, closes) -> None:
    t, _ = pair
    assert t._enter() and t._enter()
    t._close(graceful=False)
    t._leave()
    assert closes == []
    t._leave()
    assert closes == [t.sock]


def test_a_close_between_entering_and_the_check_ends_the_entry(pair, closes) -> None:
    t, _ = pair
    t._users.on_append = lambda: t._close(graceful=True)  # another thread's close, right then
    assert t._enter() is False
    assert closes == [t.sock] and not t._users


def test_entering_after_a_close_fails_and_closes_nothing_more(pair, closes) -> None:
    t, _ = pair
    t._close(graceful=True)
    assert closes == [t.sock]
    assert t._enter() is False
    assert closes == [t.sock] and not t._users


def test_a_user_leaving_while_a_close_decides_still_gets_the_descriptor_closed(pair,
                                                                               closes) -> None:
    """The close counted one user; before it acts on that, the user leaves in its thread (and
    may wait for the lock the close holds). Whoever finds the close due last closes, once."""
    t, _ = pair
    assert t._enter()
    leaver = threading.Thread(target=t._leave)

    def user_leaves_now() -> None:
        leaver.start()
        leaver.join(0.5)  # it either finished or waits for the close's lock: both are cases

    t._users.on_count = user_leaves_now
    t._close(graceful=True)
    leaver.join(5)
    assert not leaver.is_alive()
    assert closes == [t.sock] and not t._users
