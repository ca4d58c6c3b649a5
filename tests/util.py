"""Test helpers: record component events in order, make throw-away peers."""
from __future__ import annotations

import socket
import threading
from typing import Any, Callable, Optional

from PySide6.QtCore import QObject, SignalInstance


class EventLog:
    """Connects to every ``On*`` signal of the given components and records them in order.

    ``log.names()`` gives the event names in firing order; ``log.events`` the
    ``(name, args)`` tuples. Pass ``snapshot`` to record extra state at the moment
    each event fires (e.g. ``lambda name, args: comp.Active``).
    """

    def __init__(self, *components: QObject, snapshot=None) -> None:
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        self.snapshots: list[Any] = []
        self._snapshot = snapshot
        for comp in components:
            for name in dir(type(comp)):
                if not name.startswith("On"):
                    continue
                sig = getattr(comp, name)
                if isinstance(sig, SignalInstance):
                    sig.connect(self._recorder(name))

    def _recorder(self, name: str):
        def record(*args: Any) -> None:
            self.events.append((name, args))
            if self._snapshot is not None:
                self.snapshots.append(self._snapshot(name, args))

        return record

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    def count(self, name: str) -> int:
        return self.names().count(name)

    def args(self, name: str, index: int = 0) -> tuple[Any, ...]:
        return [a for n, a in self.events if n == name][index]


def os_socket(winsock: Any) -> socket.socket:
    """A duplicate of a socket object's OS socket (for getsockopt): close it after use."""
    return socket.fromfd(winsock.SocketHandle, socket.AF_INET, socket.SOCK_STREAM)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: Every pump a test made, for the rest of the session. A dropped pump is garbage in a cycle
#: (its notifiers' slots are its own methods), which Python's collector may free in any thread,
#: a test's peer thread included; a QObject destroyed outside its own thread leaves Qt's event
#: loop with dangling socket notifiers (a crash in the next iteration's check).
_KEPT: list[Any] = []


def kept(pump: Any) -> Any:
    """``pump``, kept alive until the session ends (see ``_KEPT``); returns it."""
    _KEPT.append(pump)
    return pump


class Job:
    """Runs ``fn(*args)`` in a plain thread (a peer that blocks); the test waits for it with
    the Qt loop running, so the component under test keeps serving meanwhile."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(fn, args), daemon=True,
                                       name="test-job")
        self.thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            self.result = fn(*args)
        except BaseException as exc:  # re-raised in the test's thread by wait()
            self.error = exc
        finally:
            self.done.set()

    def wait(self, qtbot, timeout: int = 5000) -> Any:
        """``fn``'s result (its exception raised here), waiting at most ``timeout`` ms."""
        qtbot.waitUntil(self.done.is_set, timeout=timeout)
        self.thread.join(2)
        if self.error is not None:
            raise self.error
        return self.result


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """``n`` bytes from a blocking socket, or fewer if the stream ends first."""
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def recv_until_eof(sock: socket.socket) -> bytes:
    """Everything a blocking socket receives until the peer closes."""
    out = bytearray()
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return bytes(out)
        out += chunk


class Watchdog:
    """A QTimer in the component's thread that records the longest gap between its ticks.

    How "the GUI does not freeze" is asserted: start it, run the scenario, then
    ``assert dog.longest_ms < 100``. A tick that comes late means the thread was busy (or blocked)
    for that long. ``ticks`` counts the ticks seen, so a test can also check that the loop ran.
    """

    def __init__(self, interval_ms: int = 5) -> None:
        import time

        from PySide6.QtCore import Qt, QTimer

        self._clock = time.monotonic
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self._last = 0.0
        self.longest_ms = 0.0
        self.ticks = 0

    def start(self) -> "Watchdog":
        self._last = self._clock()
        self.longest_ms = 0.0
        self.ticks = 0
        self._timer.start()
        return self

    def stop(self) -> float:
        """Stop ticking; returns the longest gap (ms), including the one up to now."""
        self._tick()
        self._timer.stop()
        return self.longest_ms

    def _tick(self) -> None:
        now = self._clock()
        self.longest_ms = max(self.longest_ms, (now - self._last) * 1000)
        self._last = now
        self.ticks += 1


class SendInterleaver:
    """Stands in for a transport's stream and runs ``during()`` inside the first kernel send
    that takes only part of its bytes, after the kernel took them: another thread's calls land
    in the middle of a send from the component's thread. Everything else is the stream's."""

    def __init__(self, stream: Any, during: Callable[[], None]) -> None:
        self._stream = stream
        self._during = during
        self.fired = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def send(self, data: Any) -> int:
        sent = self._stream.send(data)
        if not self.fired and sent < len(data):
            self.fired = True
            self._during()
        return int(sent)
