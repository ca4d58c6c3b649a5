"""Chat relay server: a window made in Qt Designer (chat_server.ui), or a headless service.

    python samples/chat_server.py                        # window; press Start
    python samples/chat_server.py --port 5000 --start    # window, listening at once
    python samples/chat_server.py --no-gui --port 5000   # headless service (Ctrl+C stops)
    python samples/chat_server.py --no-gui --type thread # one thread per client

Every line a client sends is relayed to every client (the sender too), so ``nc localhost 5000``
and ``telnet`` users chat with the sample clients. The window shows the connected clients with
their address and port, a log, and lets the operator broadcast while the server runs.
ServerType can be ``stNonBlocking`` (all clients served by events in the GUI thread) or
``stThreadBlocking`` (a thread per client; the events still arrive in the GUI thread).

What keeps it safe whatever the clients send (see chatcore.py): the component cuts the lines
(``Framing = fmLine``), a line over ``MaxFrameSize`` is reported and skipped, never relayed
(``FrameOverflow = foDiscard``, ``OnClientError(eeReceive, 10040)``), and a client that stops
reading is dropped once ``SendQueueLimit`` bytes wait for it, so it cannot make the server's
memory grow.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from PySide6.QtCore import QCoreApplication, Signal, Slot  # noqa: E402
from PySide6.QtWidgets import QApplication, QTreeWidgetItem, QWidget  # noqa: E402

from chatcore import (LINE_TOO_LONG, MAX_LINE, SEND_QUEUE_LIMIT, ChatServer,  # noqa: E402
                      error_text, peer_name, send_line)
from formloader import load_form  # noqa: E402
from quitsignals import quit_on_signals  # noqa: E402
from sockcomp import ESocketError, ServerType, eeReceive, fmLine, foDiscard  # noqa: E402

TYPES = {"nonblocking": ServerType.stNonBlocking, "thread": ServerType.stThreadBlocking}
LOG_WIDTH = 200  # characters of a chat line the log shows


def elide(line: str) -> str:
    """A long line shortened for the log: laying out a line of thousands of characters takes
    the log view tens of milliseconds, so a client sending long lines would slow the window."""
    return line if len(line) <= LOG_WIDTH else f"{line[:LOG_WIDTH]}… ({len(line)} characters)"


class ChatServerWindow(QWidget):
    """Port, ServerType, Start/Stop, connected clients, log, broadcast."""

    lineShown = Signal(str)  # every line added to the log (for tests and scripts)

    def __init__(self, port: Optional[int] = None, server_type: Optional[int] = None,
                 parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.ui = load_form("chat_server.ui", self)
        self.server = self.ui.serverSocket1
        if port is not None:
            self.ui.portSpin.setValue(port)
        if server_type is not None:
            self.ui.serverTypeCombo.setCurrentIndex(int(server_type))
        self._items: dict[int, QTreeWidgetItem] = {}
        # One UTF-8 line per message. The component cuts the stream into lines itself: one
        # OnClientLineReceived per line (a last line without "\n" too, when the client leaves).
        # A line longer than MaxFrameSize is OnClientError(eeReceive, 10040) and, with
        # foDiscard, skipped up to its end: never relayed, and the client stays connected.
        # (Framing and MaxFrameSize can also be set in Designer's property editor.)
        self.server.Framing = fmLine
        self.server.MaxFrameSize = MAX_LINE
        self.server.FrameOverflow = foDiscard
        # A client that stops reading must not make the server keep the whole chat for it:
        # at most SEND_QUEUE_LIMIT bytes wait per client, then broadcast() drops it.
        self.server.SendQueueLimit = SEND_QUEUE_LIMIT

    # --- operator actions
    def start(self) -> None:
        self.server.Port = self.ui.portSpin.value()
        self.server.ServerType = self.ui.serverTypeCombo.currentIndex()
        try:
            self.server.Open()
        except ESocketError as exc:  # e.g. port in use
            self._log(f"* cannot listen on port {self.server.Port}: {exc}")
            self.ui.statusLabel.setText(f"stopped — {exc}")

    def stop(self) -> None:
        self.server.Close()  # every client gets OnClientDisconnect
        self.ui.statusLabel.setText("stopped")
        self._set_running(False)

    def broadcast(self, line: str) -> None:
        """Send ``line`` to every client. A client whose send queue is full (SendBuf accepted
        less than the line, or -1: SendQueueLimit is reached) does not read: drop it."""
        slow = [client for client in self.server.Socket.Connections
                if not send_line(client, line)]
        for client in slow:
            self.drop(client)

    def drop(self, client: Any) -> None:
        """Disconnect a client that does not read, and tell the others (and the log)."""
        if not client.Connected:
            return  # already gone (dropped while the others were told about another one)
        who = peer_name(client)
        self._log(f"* {who} dropped: it does not read ({client.SendQueueLength} bytes waiting)")
        client.Close(True)  # ForceClosed: abortive, so its queued bytes are freed at once
        self.broadcast(f"* {who} was dropped: it did not read its messages")

    @Slot()
    def on_startButton_clicked(self) -> None:
        self.start()

    @Slot()
    def on_stopButton_clicked(self) -> None:
        self.stop()

    @Slot()
    def on_broadcastButton_clicked(self) -> None:
        text = self.ui.broadcastEdit.text()
        if text and self.server.Active:  # the button is disabled while stopped anyway
            line = f"server: {text}"
            self._log(line)
            self.broadcast(line)
            self.ui.broadcastEdit.clear()

    # --- the component's events (auto-connected by name)
    @Slot(object, object)
    def on_serverSocket1_OnListen(self, Sender: Any, Socket: Any) -> None:
        kind = ServerType(int(Sender.ServerType)).name
        self.ui.statusLabel.setText(f"listening on port {Socket.LocalPort} ({kind})")
        self._log(f"* listening on port {Socket.LocalPort} ({kind})")
        self._set_running(True)

    @Slot(object, object)
    def on_serverSocket1_OnClientConnect(self, Sender: Any, Socket: Any) -> None:
        item = QTreeWidgetItem([Socket.RemoteAddress, str(Socket.RemotePort)])
        self._items[id(Socket)] = item
        self.ui.clientList.addTopLevelItem(item)
        self._log(f"* {peer_name(Socket)} joined")

    @Slot(object, object, object)
    def on_serverSocket1_OnClientLineReceived(self, Sender: Any, Socket: Any, Line: str) -> None:
        line = Line.rstrip("\r")  # telnet and Windows tools end lines with CR LF
        self._log(elide(line))
        self.broadcast(line)

    @Slot(object, object)
    def on_serverSocket1_OnClientDisconnect(self, Sender: Any, Socket: Any) -> None:
        item = self._items.pop(id(Socket), None)
        if item is not None:
            self.ui.clientList.takeTopLevelItem(self.ui.clientList.indexOfTopLevelItem(item))
        self._log(f"* {peer_name(Socket)} left")

    @Slot(object, object, object, object)
    def on_serverSocket1_OnClientError(self, Sender: Any, Socket: Any, ErrorEvent: Any,
                                       ErrorCode: Any) -> None:
        who = peer_name(Socket)
        if ErrorEvent == eeReceive and ErrorCode.value == LINE_TOO_LONG:
            # a line over MaxFrameSize: FrameOverflow = foDiscard skips it, the client stays
            self._log(f"* {who} sent a line longer than {MAX_LINE} bytes: dropped "
                      f"({LINE_TOO_LONG})")
            send_line(Socket, f"* your line was longer than {MAX_LINE} bytes: not relayed")
        else:  # LastErrorMessage says what happened, e.g. "Connection reset by peer"
            self._log(f"* {who} {error_text(Socket, ErrorEvent, ErrorCode.value)}")
        ErrorCode.value = 0  # handled: a client that vanishes is routine for a chat server

    # --- internals
    def _set_running(self, running: bool) -> None:
        self.ui.startButton.setEnabled(not running)
        self.ui.stopButton.setEnabled(running)
        self.ui.portSpin.setEnabled(not running)
        self.ui.serverTypeCombo.setEnabled(not running)
        self.ui.broadcastEdit.setEnabled(running)  # nobody to broadcast to while stopped
        self.ui.broadcastButton.setEnabled(running)

    def _log(self, line: str) -> None:
        self.ui.logView.appendPlainText(line)
        self.lineShown.emit(line)


def run_headless(port: int, server_type: int, address: str = "", tls_cert: str = "",
                 tls_key: str = "") -> int:
    """The relay as a service: no widgets, a QCoreApplication and chatcore.ChatServer."""
    app = QCoreApplication.instance() or QCoreApplication(sys.argv[:1])
    quit_on_signals(app)  # Ctrl+C and SIGTERM end app.exec(): the server stops cleanly
    server = ChatServer()
    server.server.ServerType = server_type
    if tls_cert:
        server.use_tls(tls_cert, tls_key)
    server.log.connect(lambda text: print(text, flush=True))
    try:
        server.start(port, address)
    except ESocketError as exc:  # e.g. the port is in use (10048): say so in one line
        print(f"cannot listen on port {port}: {exc}", file=sys.stderr)
        return 1
    code = app.exec()
    server.stop()
    return code


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--type", choices=sorted(TYPES), default="nonblocking",
                        help="ServerType: nonblocking (events) or thread (thread per client)")
    parser.add_argument("--address", default="", help="bind address ('' = every interface)")
    parser.add_argument("--no-gui", action="store_true", help="run headless, as a service")
    parser.add_argument("--start", action="store_true", help="(window) start listening at once")
    parser.add_argument("--tls-cert", default="", help="serve TLS with this PEM certificate")
    parser.add_argument("--tls-key", default="", help="its private key ('' = in the cert file)")
    args = parser.parse_args(argv)
    if args.no_gui:
        return run_headless(args.port, TYPES[args.type], args.address, args.tls_cert,
                            args.tls_key)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    quit_on_signals(app)  # Ctrl+C in the terminal closes the window cleanly
    window = ChatServerWindow(args.port, TYPES[args.type])
    window.server.Address = args.address
    if args.tls_cert:
        window.server.UseTLS = True
        window.server.TLSCertFile, window.server.TLSKeyFile = args.tls_cert, args.tls_key
    window.show()
    if args.start:
        window.start()
        if window.server.Active:
            print(f"chat server window listening on port {window.server.Socket.LocalPort}",
                  flush=True)
    code = app.exec()
    window.stop()  # every client sees an orderly close
    return code


if __name__ == "__main__":
    sys.exit(main())
