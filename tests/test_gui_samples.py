"""The GUI chat samples, driven like a user drives them (offscreen windows, qtbot typing and
clicking), talking over real loopback sockets to each other, to ``nc`` and to the headless
server.
"""
from __future__ import annotations

import os
import queue
import shutil
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QApplication

from sockcomp import ServerType

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
sys.path.insert(0, str(SAMPLES))

from chat_client import ChatClientWindow  # noqa: E402
from chat_server import ChatServerWindow  # noqa: E402
from chatcore import MAX_LINE  # noqa: E402

from .test_samples_safety import flood_until_dropped  # noqa: E402

ENV = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONUNBUFFERED="1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_lines(window) -> list[str]:
    return window.ui.logView.toPlainText().splitlines()


def start_server(qtbot, server_type=ServerType.stNonBlocking, port: int = 0) -> ChatServerWindow:
    server = ChatServerWindow(port, server_type)
    qtbot.addWidget(server)
    server.show()
    qtbot.mouseClick(server.ui.startButton, Qt.MouseButton.LeftButton)
    assert server.server.Active, log_lines(server)
    assert not server.ui.startButton.isEnabled() and server.ui.stopButton.isEnabled()
    return server


def start_client(qtbot, port: int, nick: str, reconnect_ms: int = 2000) -> ChatClientWindow:
    client = ChatClientWindow("127.0.0.1", port, reconnect_ms=reconnect_ms)
    qtbot.addWidget(client)
    client.show()
    client.ui.nickEdit.clear()
    qtbot.keyClicks(client.ui.nickEdit, nick)
    qtbot.mouseClick(client.ui.connectButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: client.ui.stateLabel.text().startswith("connected"), timeout=5000)
    assert client.ui.sendButton.isEnabled()
    return client


def type_text(qtbot, widget, text: str) -> None:
    """Type ``text`` key by key. QTest's keyClicks handles ASCII only (it asserts on other
    characters), so anything else is typed as the key event a keyboard layout would send."""
    for ch in text:
        if ch.isascii():
            qtbot.keyClicks(widget, ch)
        else:
            for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
                QApplication.sendEvent(widget, QKeyEvent(kind, Qt.Key.Key_unknown,
                                                         Qt.KeyboardModifier.NoModifier, ch))


def type_and_send(qtbot, client: ChatClientWindow, text: str) -> None:
    type_text(qtbot, client.ui.inputEdit, text)
    qtbot.mouseClick(client.ui.sendButton, Qt.MouseButton.LeftButton)
    assert client.ui.inputEdit.text() == ""


@pytest.mark.parametrize("server_type", [ServerType.stNonBlocking, ServerType.stThreadBlocking],
                         ids=["stNonBlocking", "stThreadBlocking"])
def test_two_client_windows_chat_through_the_server_window(qtbot, server_type) -> None:
    server = start_server(qtbot, server_type)
    port = server.server.Socket.LocalPort
    assert server.ui.statusLabel.text() == \
        f"listening on port {port} ({ServerType(server_type).name})"
    alice = start_client(qtbot, port, "alice")
    bob = start_client(qtbot, port, "bob")
    # the server lists both clients with their address and port
    qtbot.waitUntil(lambda: server.ui.clientList.topLevelItemCount() == 2, timeout=5000)
    rows = {(server.ui.clientList.topLevelItem(i).text(0),
             server.ui.clientList.topLevelItem(i).text(1)) for i in range(2)}
    assert rows == {("127.0.0.1", str(alice.socket.Socket.LocalPort)),
                    ("127.0.0.1", str(bob.socket.Socket.LocalPort))}
    type_and_send(qtbot, alice, "hello bob, Grüße aus Köln")
    qtbot.waitUntil(lambda: "alice: hello bob, Grüße aus Köln" in log_lines(bob), timeout=5000)
    assert "alice: hello bob, Grüße aus Köln" in log_lines(alice)  # relayed to the sender too
    assert "alice: hello bob, Grüße aus Köln" in log_lines(server)
    # Enter in the input line sends (a connection drawn in Designer: returnPressed → click)
    type_text(qtbot, bob.ui.inputEdit, "привет, alice")
    qtbot.keyClick(bob.ui.inputEdit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "bob: привет, alice" in log_lines(alice), timeout=5000)
    # the operator broadcasts (Enter in the broadcast line clicks Broadcast)
    qtbot.keyClicks(server.ui.broadcastEdit, "server closing soon")
    qtbot.keyClick(server.ui.broadcastEdit, Qt.Key.Key_Return)
    for client in (alice, bob):
        qtbot.waitUntil(lambda c=client: "server: server closing soon" in log_lines(c),
                        timeout=5000)
    # bob leaves: the list shrinks
    qtbot.mouseClick(bob.ui.connectButton, Qt.MouseButton.LeftButton)
    assert bob.ui.stateLabel.text() == "disconnected" and not bob.ui.sendButton.isEnabled()
    qtbot.waitUntil(lambda: server.ui.clientList.topLevelItemCount() == 1, timeout=5000)
    assert server.ui.clientList.topLevelItem(0).text(1) == str(alice.socket.Socket.LocalPort)
    alice.disconnect_from_server()
    qtbot.mouseClick(server.ui.stopButton, Qt.MouseButton.LeftButton)
    assert not server.server.Active and server.ui.statusLabel.text() == "stopped"


class LineReader:
    """Reads a pipe in a thread (the Qt loop must keep running in the test thread)."""

    def __init__(self, stream) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            self.lines.put(raw.decode("utf-8").rstrip("\n"))

    def has(self, text: str) -> bool:
        while not self.lines.empty():
            self.seen.append(self.lines.get_nowait())
        return text in self.seen

    def count(self, part: str) -> int:
        self.has("")
        return sum(part in line for line in self.seen)


def nc_command(port: int) -> list[str]:
    if shutil.which("nc"):
        return ["nc", "127.0.0.1", str(port)]
    # the same thing in Python, for machines without netcat
    return [sys.executable, "-c",
            "import socket,sys,threading\n"
            f"s=socket.create_connection(('127.0.0.1',{port}))\n"
            "threading.Thread(target=lambda:[sys.stdout.buffer.write(b) or sys.stdout.flush()"
            " for b in iter(lambda:s.recv(4096),b'')],daemon=True).start()\n"
            "for line in sys.stdin.buffer: s.sendall(line)\n"]


def test_nc_user_and_client_window_chat_through_the_server_window(qtbot) -> None:
    server = start_server(qtbot)
    port = server.server.Socket.LocalPort
    client = start_client(qtbot, port, "alice")
    nc = subprocess.Popen(nc_command(port), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          env=ENV)
    try:
        reader = LineReader(nc.stdout)
        qtbot.waitUntil(lambda: server.ui.clientList.topLevelItemCount() == 2, timeout=5000)
        nc.stdin.write("nc: здравствуйте 🎉 ça va?\r\n".encode())  # telnet-style line end
        nc.stdin.flush()
        qtbot.waitUntil(lambda: "nc: здравствуйте 🎉 ça va?" in log_lines(client), timeout=5000)
        type_and_send(qtbot, client, "hi nc — ünïcödé ✓")
        qtbot.waitUntil(lambda: reader.has("alice: hi nc — ünïcödé ✓"), timeout=5000)
        assert reader.has("nc: здравствуйте 🎉 ça va?")  # nc gets its own line back, too
    finally:
        nc.kill()
        nc.wait(timeout=10)
    qtbot.waitUntil(lambda: server.ui.clientList.topLevelItemCount() == 1, timeout=5000)
    client.disconnect_from_server()
    server.stop()


def test_client_reconnects_by_itself_when_the_server_returns(qtbot) -> None:
    port = free_port()
    server = start_server(qtbot, port=port)
    client = start_client(qtbot, port, "alice", reconnect_ms=100)
    states: list[str] = []
    client.stateShown.connect(states.append)
    qtbot.mouseClick(server.ui.stopButton, Qt.MouseButton.LeftButton)  # the server goes away
    qtbot.waitUntil(lambda: not client.ui.sendButton.isEnabled(), timeout=5000)
    # the LinkTimer keeps trying: refused attempts are reported, then retried
    qtbot.waitUntil(lambda: sum(s.startswith("no connection") for s in states) >= 3,
                    timeout=10000)
    # the error with its text, not a bare code
    assert "* eeConnect error 10061: Connection refused" in log_lines(client)
    assert client.ui.connectButton.text() == "Dis&connect"  # still wanted
    qtbot.mouseClick(server.ui.startButton, Qt.MouseButton.LeftButton)  # back, same port
    qtbot.waitUntil(lambda: client.ui.stateLabel.text().startswith("connected"), timeout=10000)
    type_and_send(qtbot, client, "back again")
    qtbot.waitUntil(lambda: "alice: back again" in log_lines(client), timeout=5000)
    # Disconnect by the user stops the retries
    qtbot.mouseClick(client.ui.connectButton, Qt.MouseButton.LeftButton)
    server.stop()
    assert not client.socket.Reconnecting and client.ui.stateLabel.text() == "disconnected"


def test_client_window_with_the_headless_thread_server(qtbot) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(SAMPLES / "chat_server.py"), "--no-gui",
                             "--port", str(port), "--type", "thread"],
                            env=ENV, stdout=subprocess.PIPE)
    try:
        reader = LineReader(proc.stdout)
        qtbot.waitUntil(lambda: reader.has(f"listening on port {port}"), timeout=15000)
        client = start_client(qtbot, port, "bob")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
            qtbot.waitUntil(lambda: reader.count(" connected") == 2, timeout=5000)
            type_and_send(qtbot, client, "Grüße an alle 👋")
            qtbot.waitUntil(lambda: "bob: Grüße an alle 👋" in log_lines(client), timeout=5000)
            plain.settimeout(10)
            with plain.makefile(encoding="utf-8") as lines:
                assert lines.readline() == "bob: Grüße an alle 👋\n"
            plain.sendall("plain: 你好\n".encode())
            qtbot.waitUntil(lambda: "plain: 你好" in log_lines(client), timeout=5000)
        client.disconnect_from_server()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_chat_py_runs_the_windows_offscreen() -> None:
    out = subprocess.run([sys.executable, str(SAMPLES / "chat.py"), "--gui", "--auto",
                          "--exit-when-done", "--port", "0"],
                         env=ENV, capture_output=True, timeout=60)
    stdout = out.stdout.decode("utf-8")
    assert out.returncode == 0, out.stderr.decode()
    assert "[bob sees] alice: hello, anyone here?" in stdout
    assert "[alice sees] bob: hi alice — Grüße aus Köln 👋" in stdout
    assert "[alice sees] bob: and the form came out of Qt Designer" in stdout


def test_chat_py_falls_back_to_the_console_demo_without_a_display() -> None:
    out = subprocess.run([sys.executable, str(SAMPLES / "chat.py")], env=ENV,
                         capture_output=True, timeout=60)
    stdout = out.stdout.decode("utf-8")
    assert out.returncode == 0, out.stderr.decode()
    assert stdout.startswith("no display: running the console demo")
    assert "[bob sees] alice: TClientSocket lives on in Python!" in stdout


# ---------------------------------------------------------------------------- issue 19
SERVER_TYPES = pytest.mark.parametrize(
    "server_type", [ServerType.stNonBlocking, ServerType.stThreadBlocking],
    ids=["stNonBlocking", "stThreadBlocking"])


class SocketLines:
    """A plain client socket whose received lines a thread collects (the Qt loop keeps
    running in the test thread)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lines: list[bytes] = []
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        with self.sock.makefile("rb") as f:
            for line in iter(lambda: f.readline(4 * 1024 * 1024), b""):
                self.lines.append(line)

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(10)
        self.sock.close()


@SERVER_TYPES
def test_server_window_drops_an_oversized_line_instead_of_relaying_it(qtbot,
                                                                      server_type) -> None:
    server = start_server(qtbot, server_type)
    port = server.server.Socket.LocalPort
    watcher = SocketLines(socket.create_connection(("127.0.0.1", port), timeout=10))
    flooder = SocketLines(socket.create_connection(("127.0.0.1", port), timeout=10))
    try:
        qtbot.waitUntil(lambda: server.ui.clientList.topLevelItemCount() == 2, timeout=5000)
        flooder.sock.sendall(b"flood: before\n" + b"z" * (1 << 20) + b"\nflood: after\n")
        qtbot.waitUntil(lambda: b"flood: after\n" in watcher.lines, timeout=10000)
        assert watcher.lines == [b"flood: before\n", b"flood: after\n"]  # no piece of it
        flooder_port = flooder.sock.getsockname()[1]
        assert f"* 127.0.0.1:{flooder_port} sent a line longer than {MAX_LINE} bytes: " \
            "dropped (10040)" in log_lines(server)
        # the flooder was told, and stays connected: its next line went through
        qtbot.waitUntil(lambda: b"flood: after\n" in flooder.lines, timeout=5000)
        assert any(b"not relayed" in line for line in flooder.lines)
        assert server.ui.clientList.topLevelItemCount() == 2
    finally:
        watcher.close()
        flooder.close()
    server.stop()


@SERVER_TYPES
def test_server_window_drops_a_client_that_never_reads(qtbot, server_type) -> None:
    server = start_server(qtbot, server_type)
    port = server.server.Socket.LocalPort
    drops: list[str] = []
    server.lineShown.connect(lambda line: drops.append(line) if " dropped: " in line else None)

    def dropped() -> None:
        qtbot.waitUntil(lambda: len(drops) > 0, timeout=30000)
        waiting = int(drops[0].rsplit("(", 1)[1].split()[0])  # "… (262144 bytes waiting)"
        assert 0 < waiting <= server.server.SendQueueLimit, drops

    # stThreadBlocking: Close(True) on a client whose worker waits in a read closes with a
    # FIN, after what the kernel still holds (sockcomp's own queue is freed all the same)
    flood_until_dropped(port, dropped, lambda done: qtbot.waitUntil(done, timeout=15000),
                        reset=server_type == ServerType.stNonBlocking)
    qtbot.waitUntil(lambda: server.ui.clientList.topLevelItemCount() == 0, timeout=5000)
    # the log shows long lines shortened (laying them out would slow the window down)
    assert max(map(len, log_lines(server))) < 250
    server.stop()


def test_server_window_shows_error_text_and_ipv6_peers(qtbot) -> None:
    server = start_server(qtbot)
    port = server.server.Socket.LocalPort
    v6 = socket.create_connection(("::1", port), timeout=10)
    where = f"[::1]:{v6.getsockname()[1]}"
    qtbot.waitUntil(lambda: f"* {where} joined" in log_lines(server), timeout=5000)
    v6.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    v6.close()  # a reset
    qtbot.waitUntil(lambda: f"* {where} left" in log_lines(server), timeout=5000)
    assert f"* {where} eeDisconnect error 10054: Connection reset by peer" in log_lines(server)
    server.stop()


def test_server_window_broadcast_only_while_running(qtbot) -> None:
    server = ChatServerWindow(0)
    qtbot.addWidget(server)
    server.show()
    assert not server.ui.broadcastButton.isEnabled() and not server.ui.broadcastEdit.isEnabled()
    server.ui.broadcastEdit.setText("nobody hears this")
    qtbot.keyClick(server.ui.broadcastEdit, Qt.Key.Key_Return)
    server.on_broadcastButton_clicked()  # even when called directly
    assert log_lines(server) == []
    qtbot.mouseClick(server.ui.startButton, Qt.MouseButton.LeftButton)
    assert server.ui.broadcastButton.isEnabled() and server.ui.broadcastEdit.isEnabled()
    qtbot.mouseClick(server.ui.broadcastButton, Qt.MouseButton.LeftButton)
    assert "server: nobody hears this" in log_lines(server)
    qtbot.mouseClick(server.ui.stopButton, Qt.MouseButton.LeftButton)
    assert not server.ui.broadcastButton.isEnabled() and not server.ui.broadcastEdit.isEnabled()


def test_client_window_refuses_an_empty_host(qtbot) -> None:
    client = ChatClientWindow("", 5000)
    qtbot.addWidget(client)
    client.show()
    qtbot.mouseClick(client.ui.connectButton, Qt.MouseButton.LeftButton)
    assert client.ui.stateLabel.text() == "no host: type the server's name or address"
    assert client.ui.connectButton.text() == "&Connect"  # not stuck on Disconnect
    assert not client.socket.Active and not client.socket.Reconnecting


def test_client_window_stops_on_an_unknown_host(qtbot) -> None:
    client = ChatClientWindow("no-such-host.invalid", 5000, reconnect_ms=100)
    qtbot.addWidget(client)
    client.show()
    qtbot.mouseClick(client.ui.connectButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: client.ui.stateLabel.text().startswith("cannot connect: "),
                    timeout=10000)
    assert "(11001)" in client.ui.stateLabel.text()
    assert any(line.startswith("* eeLookup error 11001: ") for line in log_lines(client))
    # OnDisconnect has come and gone: no retry is scheduled, the button offers Connect
    assert not client.socket.Reconnecting and client.ui.connectButton.text() == "&Connect"


def test_client_window_skips_an_oversized_line_and_shows_an_unterminated_last_one(
        qtbot) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)
        client = start_client(qtbot, listener.getsockname()[1], "alice")
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"server: before\n" + b"w" * (1 << 20) + b"\nserver: after\n"
                         + "server: bye — без \\n".encode())
        qtbot.waitUntil(lambda: client.ui.stateLabel.text() == "no connection — retrying",
                        timeout=10000)
    assert log_lines(client) == ["server: before",
                                 f"* a line longer than {MAX_LINE} bytes was skipped",
                                 "server: after", "server: bye — без \\n"]
    client.disconnect_from_server()
