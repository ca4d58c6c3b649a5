"""Run the chat: a server window and two client windows, or the console demo without a display.

    python samples/chat.py               # windows if there is a display, else the console demo
    python samples/chat.py --auto        # windows, and alice and bob chat by themselves
    python samples/chat.py --console     # the console demo (chat_console.py)

The server listens on ``--port`` (default 5000; a free port if that one is taken), so
``nc localhost 5000`` can join the conversation from a terminal.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
from typing import Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

SCRIPT = [("alice", "hello, anyone here?"),
          ("bob", "hi alice — Grüße aus Köln 👋"),
          ("alice", "TClientSocket lives on in Python!"),
          ("bob", "and the form came out of Qt Designer")]


def has_display() -> bool:
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform.startswith(("offscreen", "minimal")):
        return False
    if sys.platform.startswith("linux") and not platform:
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def _port_or_free(port: int) -> int:
    with socket.socket(socket.AF_INET6 if socket.has_ipv6 else socket.AF_INET) as probe:
        try:
            probe.bind(("", port))
            return port
        except OSError:
            return 0


def run_windows(port: int, auto: bool, quit_after_ms: int = 0, exit_when_done: bool = False) -> int:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from chat_client import ChatClientWindow
    from chat_server import ChatServerWindow
    from quitsignals import quit_on_signals

    app = QApplication.instance() or QApplication(sys.argv[:1])
    quit_on_signals(app)  # Ctrl+C in the terminal closes the windows cleanly
    server = ChatServerWindow(_port_or_free(port))
    server.move(40, 40)
    server.show()
    server.start()
    if not server.server.Active:
        return 1
    actual = server.server.Socket.LocalPort
    print(f"chat server listening on port {actual} — join with: nc localhost {actual}",
          flush=True)
    clients = {}
    for i, nick in enumerate(("alice", "bob")):
        window = ChatClientWindow("localhost", actual, nick, reconnect_ms=1000)
        window.setWindowTitle(f"{window.windowTitle()} — {nick}")
        window.move(700, 40 + i * 440)
        window.show()
        window.connect_to_server()
        clients[nick] = window
    if auto:
        script = list(SCRIPT)
        connected: set[str] = set()

        def say_next() -> None:
            if script:
                nick, text = script.pop(0)
                clients[nick].ui.inputEdit.setText(text)
                clients[nick].ui.sendButton.click()
                QTimer.singleShot(400, say_next)

        def on_state(nick: str, text: str) -> None:
            if text.startswith("connected") and nick not in connected:
                connected.add(nick)
                if len(connected) == len(clients):
                    QTimer.singleShot(200, say_next)

        seen = {nick: 0 for nick in clients}

        def on_line(nick: str, line: str) -> None:
            print(f"[{nick} sees] {line}", flush=True)
            seen[nick] += 1
            if exit_when_done and all(n >= len(SCRIPT) for n in seen.values()):
                QTimer.singleShot(0, app.quit)

        for nick, window in clients.items():
            window.stateShown.connect(lambda text, nick=nick: on_state(nick, text))
            window.lineShown.connect(lambda line, nick=nick: on_line(nick, line))
    if quit_after_ms:
        QTimer.singleShot(quit_after_ms, app.quit)
    code = app.exec()
    for window in clients.values():
        window.disconnect_from_server()
    server.stop()
    return code


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--auto", action="store_true", help="let the clients chat by themselves")
    parser.add_argument("--console", action="store_true", help="run the console demo")
    parser.add_argument("--gui", action="store_true", help="windows even without a display")
    parser.add_argument("--quit-after-ms", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--exit-when-done", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.console or not (args.gui or has_display()):
        print("no display: running the console demo (chat_console.py)", flush=True)
        import chat_console
        return chat_console.main([])
    return run_windows(args.port, args.auto, args.quit_after_ms, args.exit_when_done)


if __name__ == "__main__":
    sys.exit(main())
