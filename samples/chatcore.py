"""The chat protocol shared by the samples: plain UTF-8 lines, relayed by the server to everyone.

Any line-based tool (``nc``, ``telnet``, ``socat``) can take part. A client sends
``"<nick>: <text>\\n"``; the server sends every line it receives to every connected client
(the sender included, so each client sees the conversation in one order).

Every sample follows the same rules, the safe way to write a line server or client:

* **The component cuts the lines** (``Framing = fmLine``): one ``OnLineReceived`` /
  ``OnClientLineReceived`` per line, and a last line without a line end is still delivered when
  the peer closes. No hand-written splitting.
* **Lines are bounded** (``MaxFrameSize = MAX_LINE``, ``FrameOverflow = foDiscard``): a longer line
  is reported as ``OnError``/``OnClientError(eeReceive, 10040)`` and skipped, up to its end. It is
  never relayed, not even a piece of it, and the connection goes on.
* **Memory per client is bounded** (server: ``SendQueueLimit = SEND_QUEUE_LIMIT``): a client
  that stops reading fills its queue, ``SendBuf`` then accepts less than the line
  (:func:`send_line` returns False) and the server drops that client, telling the others.
* **Errors are shown with their text** (:func:`error_text`, ``Socket.LastErrorMessage``), and
  peers as ``[::1]:5000`` or ``127.0.0.1:5000`` (:func:`peer_name`).

``ChatServer`` and ``ChatClient`` are the headless versions (``chat_console.py``,
``chat_server.py --no-gui``, the demo of ``chat_async.py``); the windows in ``chat_server.py``
and ``chat_client.py`` do the same with the components on their Designer forms.
"""
from __future__ import annotations

from typing import Any, Optional

from PySide6.QtCore import QObject, QTimer, Signal

from sockcomp import (ClientSocket, CustomWinSocket, ErrorEvent, ServerSocket, ServerWinSocket,
                      eeLookup, eeReceive, fmLine, foDiscard)

MAX_LINE = 4 * 1024              # MaxFrameSize: the longest chat line, in bytes (without "\n")
SEND_QUEUE_LIMIT = 256 * 1024    # SendQueueLimit: bytes that may wait for one slow client
LINE_TOO_LONG = 10040            # the ErrorCode of a line over MaxFrameSize (WSAEMSGSIZE)


def peer_name(sock: CustomWinSocket) -> str:
    """``127.0.0.1:5000``, or ``[::1]:5000`` for IPv6 (the port is not part of the address)."""
    address = sock.RemoteAddress
    return f"[{address}]:{sock.RemotePort}" if ":" in address else f"{address}:{sock.RemotePort}"


def error_text(sock: CustomWinSocket, event: int, code: int) -> str:
    """What an OnError handler shows: the category, the code and the text, e.g.
    ``eeConnect error 10061: Connection refused``. ``LastErrorMessage`` is set inside OnError."""
    return f"{ErrorEvent(event).name} error {code}: {sock.LastErrorMessage}"


def send_line(sock: CustomWinSocket, line: str) -> bool:
    """Queue one line for ``sock``. False when it did not fit: the socket's send queue is at
    ``SendQueueLimit`` (the peer does not read what it is sent), or it is not connected."""
    data = (line + "\n").encode("utf-8")
    return sock.SendBuf(data) == len(data)


class ChatServer(QObject):
    """Relays every line to every client. ``log`` reports what happens, for a GUI or a console."""

    log = Signal(str)
    clientsChanged = Signal()

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.server = server = ServerSocket(self)
        server.Framing = fmLine                  # one OnClientLineReceived per line
        server.MaxFrameSize = MAX_LINE           # longer: OnClientError(eeReceive, 10040)…
        server.FrameOverflow = foDiscard         # …and the line is skipped; the client stays
        server.SendQueueLimit = SEND_QUEUE_LIMIT  # a client that does not read gets dropped
        server.OnListen.connect(
            lambda sender, sock: self.log.emit(f"listening on port {sock.LocalPort}"))
        server.OnClientConnect.connect(self._on_connect)
        server.OnClientLineReceived.connect(self._on_line)
        server.OnClientDisconnect.connect(self._on_disconnect)
        server.OnClientError.connect(self._on_error)

    def use_tls(self, cert_file: str, key_file: str = "") -> None:
        """Serve TLS with this certificate (and key, unless it is inside the cert file)."""
        self.server.UseTLS = True
        self.server.TLSCertFile, self.server.TLSKeyFile = cert_file, key_file

    def start(self, port: int, address: str = "") -> int:
        """Listen (``ESocketError`` if the port is in use); returns the port."""
        self.server.Address = address
        self.server.Port = port
        self.server.Open()
        return self.server.Socket.LocalPort

    def stop(self) -> None:
        self.server.Close()

    def broadcast(self, line: str) -> None:
        """Send ``line`` to every client; drop the ones whose send queue is full."""
        slow = [client for client in self.server.Socket.Connections
                if not send_line(client, line)]
        for client in slow:
            self.drop(client)

    def drop(self, client: CustomWinSocket) -> None:
        """Disconnect a client that does not read, and tell the others."""
        if not client.Connected:
            return  # already gone (dropped while the others were being told about another)
        who = peer_name(client)
        self.log.emit(f"{who} dropped: it does not read ({client.SendQueueLength} bytes "
                      f"waiting)")
        client.Close(True)  # ForceClosed: abortive, so its queued bytes are freed at once
        self.broadcast(f"* {who} was dropped: it did not read its messages")

    def _on_connect(self, sender: ServerWinSocket, sock: CustomWinSocket) -> None:
        self.log.emit(f"{peer_name(sock)} connected")
        self.clientsChanged.emit()

    def _on_line(self, sender: ServerWinSocket, sock: CustomWinSocket, line: str) -> None:
        line = line.rstrip("\r")  # telnet and Windows tools end lines with CR LF
        self.log.emit(line)
        self.broadcast(line)

    def _on_disconnect(self, sender: ServerWinSocket, sock: CustomWinSocket) -> None:
        self.log.emit(f"{peer_name(sock)} left")
        # the socket leaves Connections right after this handler: tell listeners afterwards
        QTimer.singleShot(0, self.clientsChanged.emit)

    def _on_error(self, sender: ServerWinSocket, sock: CustomWinSocket, event: int,
                  code: Any) -> None:
        if event == eeReceive and code.value == LINE_TOO_LONG:  # FrameOverflow = foDiscard
            self.log.emit(f"{peer_name(sock)} sent a line longer than {MAX_LINE} bytes: "
                          f"dropped ({LINE_TOO_LONG})")
            send_line(sock, f"* your line was longer than {MAX_LINE} bytes: not relayed")
        else:
            self.log.emit(f"{peer_name(sock)} {error_text(sock, event, code.value)}")
        code.value = 0  # handled: a client that vanishes is routine for a chat server


class ChatClient(QObject):
    """Connects to a chat server, sends ``nick: text`` lines and reports the lines it receives.

    It reconnects by itself (``AutoReconnect``) until :meth:`close`, except when the host name
    is wrong: then ``gaveUp`` is emitted, as retrying cannot help.
    """

    lineReceived = Signal(str)
    stateChanged = Signal(str)
    gaveUp = Signal(str)

    def __init__(self, nick: str, parent: Optional[QObject] = None,
                 reconnect_ms: int = 1000) -> None:
        super().__init__(parent)
        self.nick = nick
        self.client = client = ClientSocket(self)
        client.Framing = fmLine                  # one OnLineReceived per line
        client.MaxFrameSize = MAX_LINE           # longer: OnError(eeReceive, 10040), skipped
        client.FrameOverflow = foDiscard
        client.AutoReconnect = True              # lines said meanwhile wait for the connection
        client.ReconnectInterval = reconnect_ms
        client.ReconnectMaxInterval = max(reconnect_ms, 30_000)
        client.OnConnecting.connect(lambda *_: self.stateChanged.emit("connecting"))
        client.OnConnect.connect(lambda *_: self.stateChanged.emit("connected"))
        client.OnDisconnect.connect(lambda *_: self.stateChanged.emit("disconnected"))
        client.OnReconnect.connect(lambda sender, sock: self.stateChanged.emit(
            f"reconnecting (attempt {sender.ReconnectAttempt})"))
        client.OnLineReceived.connect(
            lambda sender, sock, line: self.lineReceived.emit(line.rstrip("\r")))
        client.OnError.connect(self._on_error)

    def use_tls(self, ca_file: str = "") -> None:
        """Connect with TLS, verifying the server against ``ca_file`` (or the system store)."""
        self.client.UseTLS = True
        self.client.TLSCAFile = ca_file

    def connect_to(self, host: str, port: int) -> None:
        self.client.Host = host
        self.client.Port = port
        self.client.Open()

    def say(self, text: str) -> str:
        """Send one line. Returns ``"sent"``; ``"kept"`` when not connected now: the line goes
        out after the next OnConnect (AutoReconnect keeps it); ``"not sent"`` when no
        connection is coming (closed, or the host was wrong); ``"too long"`` over MAX_LINE."""
        line = f"{self.nick}: {text}"
        if len(line.encode("utf-8")) > MAX_LINE:
            return "too long"
        connected = self.client.Socket.Connected
        if not send_line(self.client.Socket, line):
            return "not sent"
        return "sent" if connected else "kept"

    def close(self) -> None:
        self.client.Close()  # also stops AutoReconnect and forgets lines kept for it

    def _on_error(self, sender: ClientSocket, sock: CustomWinSocket, event: int,
                  code: Any) -> None:
        if event == eeReceive and code.value == LINE_TOO_LONG:  # FrameOverflow = foDiscard
            self.stateChanged.emit(f"a line longer than {MAX_LINE} bytes was skipped")
        else:
            self.stateChanged.emit(error_text(sock, event, code.value))
        if event == eeLookup:  # the host name is wrong (11001) or empty (1110): stop retrying
            self.client.Close()
            self.gaveUp.emit(sock.LastErrorMessage)
        code.value = 0  # handled: OnDisconnect follows, and AutoReconnect retries
