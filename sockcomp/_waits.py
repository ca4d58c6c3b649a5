"""Waiting on the network, for the threads that may wait: worker threads and ctBlocking callers.

Every OS socket sockcomp makes is non-blocking; a "blocking" call is a non-blocking attempt
followed by :func:`wait_fd` until the socket is ready, the deadline passes, or the calling
thread is woken. The component's thread never calls it in stThreadBlocking mode (a handler
works on buffers there), so it never freezes the GUI.

A thread that must be woken from its waits (a ServerClientThread being terminated, or whose
application just made room in a full receive buffer) registers a :class:`WakeUp` with
:func:`set_thread_wake`; closing a socket from another thread wakes its waiters without one,
by shutting the socket down first. A cached ServerClientThread waits for its next connection at
a :class:`Doorbell`, which the server rings.
"""
from __future__ import annotations

import os
import select
import threading
import time
from typing import Any, Optional

__all__ = ["WakeUp", "Doorbell", "wait_fd", "set_thread_wake", "thread_wake", "thread_state",
           "READY_READ", "READY_WRITE", "Deadline"]

READY_READ = select.POLLIN | select.POLLPRI
READY_WRITE = select.POLLOUT
_HANGUP = select.POLLERR | select.POLLHUP | select.POLLNVAL


class _ThreadState(threading.local):
    """Per-thread state; the class attribute is every thread's default, so reading it never
    raises (``getattr`` with a default costs an exception where it is missing)."""

    wake: Optional[WakeUp] = None


#: The calling thread's state: ``thread_state.wake`` is :func:`thread_wake` without the call,
#: for the read that runs once per message in every worker. Set it with :func:`set_thread_wake`.
thread_state = _ThreadState()


class WakeUp:
    """A flag another thread can raise to end a wait at once (an eventfd or a pipe).

    A wait in :func:`wait_fd` watches :attr:`fd`; a thread blocked in a read that no
    descriptor can end (a blocking ``recv``) sets :attr:`blocked_read` for the time of the call
    and checks :attr:`signalled` after setting it, so :meth:`set` either finds the reader or the
    thread finds the flag.
    """

    __slots__ = ("signalled", "blocked_read", "_r", "_w", "fd", "_guard", "_closed")

    def __init__(self) -> None:
        #: True from :meth:`set` until :meth:`clear`.
        self.signalled = False
        #: What the owner is blocked reading from, while it is (anything with ``shut_read()``,
        #: which :meth:`set` calls from the setting thread to end the read). An object, not a
        #: bound method: the read sets it once per message and would make a new one each time.
        self.blocked_read: Any = None
        if hasattr(os, "eventfd"):
            self._r = self._w = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        else:  # pragma: no cover - platforms without eventfd
            self._r, self._w = os.pipe()
            os.set_blocking(self._r, False)
            os.set_blocking(self._w, False)
        self.fd = self._r
        # set() comes from other threads, close() from the owner as it ends: once closed, the
        # descriptor numbers may already name another file, which set() must not write to
        self._guard = threading.Lock()
        self._closed = False

    def set(self) -> None:
        """Wake the thread now (and its next wait too, until :meth:`clear`); after
        :meth:`close` only the flag is raised."""
        self.signalled = True
        with self._guard:
            if not self._closed:
                try:
                    os.write(self._w, (1).to_bytes(8, "little"))
                except OSError:
                    pass  # already signalled (pipe full)
        reader = self.blocked_read
        if reader is not None:
            reader.shut_read()

    def clear(self) -> None:
        """Take the signal back (the woken thread has seen it)."""
        self.signalled = False
        try:
            while os.read(self._r, 64):
                pass
        except OSError:
            pass

    def close(self) -> None:
        """Close the descriptors (the owner, as it ends); later calls of :meth:`set` write
        nothing."""
        with self._guard:
            if self._closed:
                return
            self._closed = True
            for fd in {self._r, self._w}:
                try:
                    os.close(fd)
                except OSError:
                    pass


class Doorbell:
    """Lets one waiting thread through once per ring: :meth:`ring` (any thread, as often as
    it likes) opens the door, :meth:`wait` blocks until it is open and closes it again.

    It is :class:`threading.Event`'s ``set`` / ``wait`` + ``clear`` as one lock: a lock held
    means closed. The Event's Condition takes a lock for each of the three calls and makes a
    fourth for every wait; a server hands each connection to a cached worker this way, and
    those lock hand-overs between the two threads were system calls per connection.
    """

    __slots__ = ("_closed",)

    def __init__(self) -> None:
        self._closed = threading.Lock()
        self._closed.acquire()

    def ring(self) -> None:
        """Open the door (a no-op while it is open)."""
        try:
            self._closed.release()
        except RuntimeError:
            pass  # open already: one ring lets one wait through

    def wait(self) -> None:
        """Block until the door is open, then close it behind this thread."""
        self._closed.acquire()


def set_thread_wake(wake: Optional[WakeUp]) -> None:
    """Make ``wake`` end the calling thread's waits (None: no such flag)."""
    thread_state.wake = wake


def thread_wake() -> Optional[WakeUp]:
    """The calling thread's WakeUp, if it has one."""
    return thread_state.wake


class Deadline:
    """Milliseconds left of a wait (``None``: no limit). The clock starts at the first
    question, so a call that needs no wait never reads it."""

    __slots__ = ("_timeout", "_end")

    def __init__(self, timeout_ms: Optional[float]) -> None:
        self._timeout = None if timeout_ms is None or timeout_ms < 0 else timeout_ms
        self._end: Optional[float] = None

    def _end_time(self) -> Optional[float]:
        if self._timeout is None:
            return None
        if self._end is None:
            self._end = time.monotonic() + self._timeout / 1000
        return self._end

    def remaining_ms(self) -> Optional[int]:
        end = self._end_time()
        if end is None:
            return None
        return max(int((end - time.monotonic()) * 1000 + 0.999), 0)

    @property
    def expired(self) -> bool:
        end = self._end_time()
        return end is not None and time.monotonic() >= end


def wait_fd(fd: int, events: int, timeout_ms: Optional[int], use_wake: bool = True) -> int:
    """Wait until ``fd`` is ready for ``events`` (READY_READ / READY_WRITE); returns the ready
    bits (an error or hang-up counts as ready), 0 when the time ran out or the thread was
    woken (``use_wake``). ``timeout_ms`` None waits without limit."""
    poller = select.poll()
    if fd >= 0:
        poller.register(fd, events)  # with events 0: only errors and hang-ups
    wake = thread_wake() if use_wake else None
    if wake is not None:
        poller.register(wake.fd, select.POLLIN)
    try:
        ready = poller.poll(timeout_ms)
    except OSError:
        return events  # the descriptor went away: the next call reports it
    result = 0
    for ready_fd, bits in ready:
        if ready_fd == fd:
            result |= bits & (events | _HANGUP)
    return result
