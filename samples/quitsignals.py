"""Ctrl+C (SIGINT) and SIGTERM quit a Qt application cleanly, at once, without a polling timer.

    app = QApplication(sys.argv)
    quit_on_signals(app)
    code = app.exec()          # returns when Ctrl+C is pressed…
    server.Close()             # …so the clean-up after it runs: clients see an orderly close
    sys.exit(code)

Why it needs code: Python runs a signal handler only when it executes Python code, and a Qt
program spends its time inside ``app.exec()`` (C++), so ``signal.signal(SIGINT, handler)`` alone
waits until some event happens to run Python. Hence the usual ``QTimer`` that wakes Python every
200 ms, and ``signal.signal(SIGINT, SIG_DFL)``, which kills the process on the spot: no clean-up,
connections reset, exit status -2.

Here ``signal.set_wakeup_fd`` makes the C-level handler write a byte to a socket pair, a
``QSocketNotifier`` on the other end wakes the Qt loop at once, and Python then runs the handler,
which calls ``app.quit()``. Works on Linux, macOS and Windows (a socket pair there too).
"""
from __future__ import annotations

import signal
import socket
from typing import Any, Callable, Optional

from PySide6.QtCore import QCoreApplication, QSocketNotifier, QTimer

__all__ = ["quit_on_signals"]

_keep: list[Any] = []  # the socket pair and the notifier live as long as the program


def quit_on_signals(app: QCoreApplication, on_signal: Optional[Callable[[], Any]] = None,
                    signums: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
    """Make ``signums`` (default SIGINT and SIGTERM) call ``app.quit()``, or ``on_signal()``
    (an asyncio program cancels its main task instead). Call it once, from the main thread,
    after creating the application."""
    # quit() outside app.exec() does nothing: a signal that comes before exec() starts (or
    # between two exec() calls) must still count, so the quit is queued as an event
    handler = on_signal or (lambda: QTimer.singleShot(0, app.quit))
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read)

    def drain() -> None:  # running this Python code is what lets the handler below run
        try:
            while reader.recv(512):
                pass
        except BlockingIOError:
            pass

    notifier.activated.connect(drain)
    for signum in signums:
        signal.signal(signum, lambda *_: handler())
    _keep.extend((reader, writer, notifier))
