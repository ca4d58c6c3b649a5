"""The chat protocol shared by the samples: plain UTF-8 lines, relayed by the server to everyone.

Any line-based tool (``nc``, ``telnet``, ``socat``) can take part. A client sends
``"<nick>: <text>\\n"``; the server sends every line it receives to every connected client
(the sender included, so each client sees the conversation in one order).
"""
from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QObject, Signal

from sockcomp import ClientSocket, CustomWinSocket, ServerSocket, ServerWinSocket

MAX_LINE = 64 * 1024


class LineSplitter:
    """Collects text and hands out complete lines (without the line end)."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, text: str) -> list[str]:
        self._pending += text
        if len(self._pending) > MAX_LINE and "\n" not in self._pending:
            self._pending = ""  # a line that never ends: drop it rather than grow forever
            return []
        *lines, self._pending = self._pending.split("\n")
        return [line.rstrip("\r") for line in lines]


class ChatServer(QObject):
    """Relays every line to every client. ``log`` reports what happens, for a GUI or a console."""

    log = Signal(str)
    clientsChanged = Signal()

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.server = ServerSocket(self)
        self.server.OnListen.connect(
            lambda sender, sock: self.log.emit(f"listening on port {sock.LocalPort}"))
        self.server.OnClientConnect.connect(self._on_connect)
        self.server.OnClientRead.connect(self._on_read)
        self.server.OnClientDisconnect.connect(self._on_disconnect)
        self.server.OnClientError.connect(self._on_error)

    def use_tls(self, cert_file: str, key_file: str = "") -> None:
        """Serve TLS with this certificate (and key, unless it is inside the cert file)."""
        self.server.UseTLS = True
        self.server.TLSCertFile, self.server.TLSKeyFile = cert_file, key_file

    def start(self, port: int, address: str = "") -> int:
        self.server.Address = address
        self.server.Port = port
        self.server.Open()
        return self.server.Socket.LocalPort

    def stop(self) -> None:
        self.server.Close()

    def broadcast(self, line: str) -> None:
        data = (line + "\n").encode("utf-8")
        for client in self.server.Socket.Connections:
            client.SendBuf(data)

    def _on_connect(self, sender: ServerWinSocket, sock: CustomWinSocket) -> None:
        sock.Data = LineSplitter()
        self.log.emit(f"{sock.RemoteAddress}:{sock.RemotePort} connected")
        self.clientsChanged.emit()

    def _on_read(self, sender: ServerWinSocket, sock: CustomWinSocket) -> None:
        for line in sock.Data.feed(sock.ReceiveText()):
            self.log.emit(line)
            self.broadcast(line)

    def _on_disconnect(self, sender: ServerWinSocket, sock: CustomWinSocket) -> None:
        self.log.emit(f"{sock.RemoteAddress}:{sock.RemotePort} left")
        # the socket leaves Connections right after this handler: tell listeners afterwards
        from PySide6.QtCore import QTimer
        QTimer.singleShot(0, self.clientsChanged.emit)

    def _on_error(self, sender: ServerWinSocket, sock: CustomWinSocket, event: int, code) -> None:
        self.log.emit(f"client error {code.value}")
        code.value = 0  # a client that vanishes is routine for a chat server


class ChatClient(QObject):
    """Connects to a chat server, sends ``nick: text`` lines and reports the lines it receives."""

    lineReceived = Signal(str)
    stateChanged = Signal(str)

    def __init__(self, nick: str, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.nick = nick
        self.client = ClientSocket(self)
        self._lines = LineSplitter()
        self.client.OnConnecting.connect(lambda *_: self.stateChanged.emit("connecting"))
        self.client.OnConnect.connect(lambda *_: self.stateChanged.emit("connected"))
        self.client.OnDisconnect.connect(lambda *_: self.stateChanged.emit("disconnected"))
        self.client.OnRead.connect(self._on_read)
        self.client.OnError.connect(self._on_error)

    def use_tls(self, ca_file: str = "") -> None:
        """Connect with TLS, verifying the server against ``ca_file`` (or the system store)."""
        self.client.UseTLS = True
        self.client.TLSCAFile = ca_file

    def connect_to(self, host: str, port: int) -> None:
        self.client.Host = host
        self.client.Port = port
        self.client.Open()

    def say(self, text: str) -> None:
        self.client.Socket.SendText(f"{self.nick}: {text}\n")

    def close(self) -> None:
        self.client.Close()

    def _on_read(self, sender: ClientSocket, sock: CustomWinSocket) -> None:
        for line in self._lines.feed(sock.ReceiveText()):
            self.lineReceived.emit(line)

    def _on_error(self, sender: ClientSocket, sock: CustomWinSocket, event: int, code) -> None:
        self.stateChanged.emit(f"error {code.value}")
        code.value = 0
