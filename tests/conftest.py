"""Shared fixtures: headless Qt, a capturing exception hook, event recording."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

import sockcomp  # noqa: E402


@pytest.fixture
def hook():
    """Replace the application exception hook; yields the list of exceptions it received."""
    caught: list[BaseException] = []
    previous = sockcomp.SetExceptionHook(caught.append)
    yield caught
    sockcomp.SetExceptionHook(previous)


@pytest.fixture(params=["epoll", "direct", "notifier"])
def pump_backend(request, qapp):
    """Run the test on each readiness backend: a fresh pump of that kind becomes this thread's.

    ``epoll`` is the Linux default (every socket in the epoll until it has been busy for a
    while); ``direct`` the same pump giving the test's few sockets notifiers of their own at
    once; ``notifier`` the fallback with one QSocketNotifier per socket.
    """
    from sockcomp import _pump
    from tests.util import kept

    previous = getattr(_pump._local, "pump", None)
    fresh = kept(_pump.NotifierPump() if request.param == "notifier" else
                 _pump.EpollPump(promote_after=0 if request.param == "direct" else
                                 _pump.PROMOTE_AFTER))
    _pump._local.pump = fresh
    yield request.param
    _pump._local.pump = previous


@pytest.fixture(autouse=True)
def _no_test_thread_outlives_its_test():
    """Peer threads a test started (plain ``threading.Thread`` s, not the library's workers)
    are given a moment to finish before the next test, so a lingering peer cannot steal the
    interpreter from a later test's timing (a watchdog's stall limit)."""
    import threading
    import time

    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    for thread in set(threading.enumerate()) - before:
        if thread.name.startswith("sockcomp-") or thread is threading.current_thread():
            continue
        thread.join(max(deadline - time.monotonic(), 0))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """A test's cyclic garbage is collected here, in the GUI thread, once the test and its
    fixtures are done (pytest has dropped their values by then).

    Python's collector runs in whichever thread happens to allocate, so garbage a test leaves
    would otherwise be freed later by a peer, worker or timeout thread of another test. Qt
    objects must be destroyed in their own thread: a third-party QObject with running timers
    (qasync's loop timer keeps them after ``close()``) destroyed elsewhere leaves them
    registered, and the GUI thread crashes when one comes due, tests later. sockcomp's own
    components defer their destruction to their thread (tests/test_destroyed_in_another_thread
    checks that with the collector run in a foreign thread on purpose).

    What survives is then frozen (``gc.freeze``), so each collection scans only what one test
    made: about a millisecond instead of 60 to 150 over the whole heap (the run took 6 minutes
    instead of 3). Survivors are imports, module fixtures and the kept pumps; a frozen cycle
    that dies later is never collected, a leak a test run can afford."""
    import gc

    yield
    gc.collect()
    gc.freeze()
