"""``Synchronize``: worker threads run calls in the component's thread and wait for them.

In ``stThreadBlocking`` mode every event a worker raises is delivered in the component's
thread: the worker hands the call over through the thread's pump and waits until it has run,
so ``Var`` results come back and handlers need no locking (the VCL's ``Synchronize``).

While the component's thread itself waits for workers (a server ``Close()``), it keeps running
their calls (:meth:`Synchronizer.wait_until`), so shutdown cannot deadlock; and it knows which
workers are waiting on a call it is running right now (:meth:`Synchronizer.callers_running`):
those cannot end before that call returns, so a ``Close()`` made inside a handler does not wait
for them.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    from ._pump import Pump

__all__ = ["Synchronizer"]


class _Job:
    __slots__ = ("fn", "args", "done", "result", "error", "caller")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args
        self.done = threading.Event()
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self.caller = threading.current_thread()

    def run(self) -> None:
        try:
            self.result = self.fn(*self.args)
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()


class Synchronizer:
    """Runs calls from worker threads in the owner's (component's) thread, waiting for them."""

    def __init__(self, pump: "Pump") -> None:
        self._pump = pump
        self._queue: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._running: list[_Job] = []

    def in_owner_thread(self) -> bool:
        """True in the component's thread."""
        return self._pump.in_own_thread()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` in the owner's thread and return its result (or raise its error)."""
        if self._pump.in_own_thread():
            return fn(*args)
        job = _Job(fn, args)
        with self._cond:
            self._queue.append(job)
            self._cond.notify_all()
        self._pump.call_soon_threadsafe(self.drain)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def drain(self) -> None:
        """Run every pending call (owner's thread)."""
        while True:
            with self._cond:
                if not self._queue:
                    return
                job = self._queue.popleft()
            self._running.append(job)
            try:
                job.run()
            finally:
                self._running.remove(job)

    def callers_running(self) -> set[threading.Thread]:
        """Workers whose call is running in the owner's thread right now (they wait on it)."""
        return {job.caller for job in self._running}

    def notify(self) -> None:
        """Wake an owner blocked in :meth:`wait_until` (a worker's state changed)."""
        with self._cond:
            self._cond.notify_all()

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Owner's thread: wait for ``predicate`` while serving the workers' calls."""
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            with self._cond:
                if predicate():
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                if not self._queue:
                    self._cond.wait(min(remaining, 0.5))
