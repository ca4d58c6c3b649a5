"""The chat client in async style (``sockcomp.aio`` under ``qasync``), same line protocol as
``chatcore.py``: the client sends ``"<nick>: <text>\\n"``, the server relays every line to all.

    python samples/chat_async.py                                   # demo: relay server + two
                                                                   #   async clients, then exit
    python samples/chat_async.py --client localhost 5000 --nick you   # console: type lines
    python samples/chat_async.py --gui localhost 5000 --nick you      # window, @asyncSlot buttons

The demo's server is chatcore's callback-style ``ChatServer``: the async clients and the
callback components share one Qt event loop. Start a standalone server with
``python samples/chat_console.py --server --port 5000``.

Reads are bounded like the callback samples' lines: ``limit=MAX_LINE`` makes ``readline``
drop a longer line whole (``ValueError``) instead of growing a buffer. Ctrl+C cancels the
running coroutine, whose ``finally`` blocks close the connection. The qasync loop is closed
(``with QEventLoop(app) as loop``) while the application still exists: a loop left for the
garbage collector is closed at exit, after Qt has deleted the objects it uses, and prints
"Exception ignored in BaseEventLoop.__del__ … Signal source has been deleted".
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any, AsyncIterator, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import qasync  # noqa: E402  (imported after PySide6 below is fine too: one binding installed)

from chatcore import MAX_LINE, ChatServer  # noqa: E402
from quitsignals import quit_on_signals  # noqa: E402
from sockcomp import ESocketError, aio  # noqa: E402


class AsyncChatClient:
    """Connect, ``await say(text)``, ``async for line in lines()``, ``await close()``."""

    def __init__(self, nick: str) -> None:
        self.nick = nick
        self.conn: Optional[aio.AsyncSocket] = None

    async def connect(self, host: str, port: int, timeout: float = 10.0) -> None:
        # limit=MAX_LINE: a line that never ends raises instead of growing the buffer
        self.conn = await aio.open_connection(host, port, connect_timeout=timeout,
                                              limit=MAX_LINE)

    async def say(self, text: str) -> None:
        assert self.conn is not None
        self.conn.write(f"{self.nick}: {text}\n".encode("utf-8"))
        await self.conn.drain()                      # honour the send queue's backpressure

    async def readline(self) -> Optional[str]:
        """The next line (without its end), or None when the server has gone."""
        assert self.conn is not None
        while True:
            try:
                raw = await self.conn.readline()
            except ValueError:                       # longer than MAX_LINE: dropped whole
                continue
            if not raw:
                return None
            return raw.decode("utf-8", "replace").rstrip("\r\n")

    async def lines(self) -> AsyncIterator[str]:
        while (line := await self.readline()) is not None:
            yield line

    async def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            await self.conn.wait_closed()


# ---------------------------------------------------------------------------- demo
async def demo() -> int:
    server = ChatServer()
    server.log.connect(lambda text: print(f"[server] {text}"))
    port = server.start(0, "127.0.0.1")
    alice, bob = AsyncChatClient("alice"), AsyncChatClient("bob")
    await asyncio.gather(alice.connect("127.0.0.1", port), bob.connect("127.0.0.1", port))
    print("[alice] connected\n[bob] connected")
    script = [(alice, "hello, anyone here?"), (bob, "hi alice — Grüße aus Köln 👋"),
              (alice, "TClientSocket lives on in Python!")]
    for speaker, text in script:
        await speaker.say(text)
        for who, client in (("alice", alice), ("bob", bob)):  # everyone sees every line
            print(f"[{who} sees] {await client.readline()}")
    await asyncio.gather(alice.close(), bob.close())
    server.stop()
    return 0


# ---------------------------------------------------------------------------- console client
async def console(host: str, port: int, nick: str) -> int:
    client = AsyncChatClient(nick)
    try:
        await client.connect(host, port)
    except ESocketError as exc:
        print(f"* {exc}", file=sys.stderr)
        return 1
    print("* connected", flush=True)
    loop = asyncio.get_running_loop()
    typed: asyncio.Queue[bytes] = asyncio.Queue()
    fd = sys.stdin.fileno()
    loop.add_reader(fd, lambda: typed.put_nowait(os.read(fd, 4096)))

    async def send_typed() -> None:
        pending = b""
        while chunk := await typed.get():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                await client.say(line.decode("utf-8", "replace"))
        assert client.conn is not None
        client.conn.write_eof()                     # stdin closed: we are done talking

    sender = asyncio.ensure_future(send_typed())
    try:
        async for line in client.lines():
            print(line, flush=True)
    except ESocketError as exc:
        print(f"* {exc}", flush=True)
    finally:
        loop.remove_reader(fd)
        sender.cancel()
        await client.close()
    print("* disconnected", flush=True)
    return 0


# ---------------------------------------------------------------------------- GUI client
async def gui(host: str, port: int, nick: str) -> int:
    from PySide6.QtWidgets import (QApplication, QHBoxLayout, QLabel, QLineEdit, QListWidget,
                                   QPushButton, QVBoxLayout, QWidget)

    closed = asyncio.Event()

    class ChatWindow(QWidget):
        def __init__(self) -> None:
            super().__init__()
            self.setWindowTitle(f"sockcomp async chat — {nick}")
            self.client = AsyncChatClient(nick)
            self.status = QLabel("not connected")
            self.view = QListWidget()
            self.edit = QLineEdit()
            self.connect_button = QPushButton("Connect")
            self.send_button = QPushButton("Send")
            self.send_button.setEnabled(False)
            row = QHBoxLayout()
            row.addWidget(self.edit)
            row.addWidget(self.send_button)
            layout = QVBoxLayout(self)
            for widget in (self.status, self.view):
                layout.addWidget(widget)
            layout.addLayout(row)
            layout.addWidget(self.connect_button)
            self.connect_button.clicked.connect(self.on_connect)
            self.send_button.clicked.connect(self.on_send)
            self.edit.returnPressed.connect(self.on_send)

        @qasync.asyncSlot()
        async def on_connect(self) -> None:
            self.connect_button.setEnabled(False)
            self.status.setText("connecting…")
            try:
                await self.client.connect(host, port)
            except ESocketError as exc:       # 10061 refused, 10060 timed out, 11001, …
                self.status.setText(str(exc))
                self.connect_button.setEnabled(True)
                return
            self.status.setText("connected")
            self.send_button.setEnabled(True)
            try:
                async for line in self.client.lines():
                    self.view.addItem(line)
                    self.view.scrollToBottom()
                self.status.setText("server closed the connection")
            except ESocketError as exc:
                self.status.setText(str(exc))
            self.send_button.setEnabled(False)
            self.connect_button.setEnabled(True)

        @qasync.asyncSlot()
        async def on_send(self) -> None:
            text = self.edit.text()
            if text and self.send_button.isEnabled():
                self.edit.clear()
                await self.client.say(text)

        def closeEvent(self, event: Any) -> None:  # noqa: N802 (Qt name)
            closed.set()  # the coroutine below closes the connection, then the loop stops
            super().closeEvent(event)

    app = QApplication.instance()
    assert app is not None
    app.setQuitOnLastWindowClosed(False)  # gui() returning ends the program, not Qt
    window = ChatWindow()
    window.show()
    window.on_connect()
    try:
        await closed.wait()
    finally:  # the window was closed, or Ctrl+C cancelled us
        await window.client.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--client", nargs=2, metavar=("HOST", "PORT"))
    mode.add_argument("--gui", nargs=2, metavar=("HOST", "PORT"))
    parser.add_argument("--nick", default=os.environ.get("USER", "guest"))
    args = parser.parse_args()
    if args.gui:
        from PySide6.QtWidgets import QApplication
        app = QApplication(sys.argv)
        coro = gui(args.gui[0], int(args.gui[1]), args.nick)
    else:
        from PySide6.QtCore import QCoreApplication
        app = QCoreApplication(sys.argv)         # headless: no widgets needed
        coro = console(args.client[0], int(args.client[1]), args.nick) if args.client \
            else demo()
    # "with": the loop is closed here, while app exists (not at exit, after Qt's clean-up)
    with qasync.QEventLoop(app) as loop:
        task = loop.create_task(asyncio.wait_for(coro, None if args.gui or args.client
                                                 else 10))
        quit_on_signals(app, task.cancel)       # Ctrl+C: cancel; the finally blocks clean up
        try:
            return loop.run_until_complete(task)
        except asyncio.CancelledError:          # Ctrl+C
            return 0


if __name__ == "__main__":
    sys.exit(main())
