"""Chat relay server: a window made in Qt Designer (chat_server.ui), or a headless service.

    python samples/chat_server.py                        # window; press Start
    python samples/chat_server.py --port 5000 --start    # window, listening at once
    python samples/chat_server.py --no-gui --port 5000   # headless service (Ctrl+C stops)
    python samples/chat_server.py --no-gui --type thread # one thread per client

Every line a client sends is relayed to every client (the sender too), so ``nc localhost 5000``
and ``telnet`` users chat with the sample clients. The window shows the connected clients with
their address and port, a log, and lets the operator broadcast. ServerType can be
``stNonBlocking`` (all clients served by events in the GUI thread) or ``stThreadBlocking`` (a
thread per client; the events still arrive in the GUI thread).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from PySide6.QtCore import QCoreApplication, QTimer, Signal, Slot  # noqa: E402
from PySide6.QtWidgets import QApplication, QTreeWidgetItem, QWidget  # noqa: E402

from chatcore import ChatServer, LineSplitter  # noqa: E402
from formloader import load_form  # noqa: E402
from sockcomp import ESocketError, ServerType  # noqa: E402

TYPES = {"nonblocking": ServerType.stNonBlocking, "thread": ServerType.stThreadBlocking}


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

    # --- operator actions
    def start(self) -> None:
        self.server.Port = self.ui.portSpin.value()
        self.server.ServerType = self.ui.serverTypeCombo.currentIndex()
        try:
            self.server.Open()
        except ESocketError as exc:  # e.g. port in use
            self._log(f"* cannot listen: {exc}")
            self.ui.statusLabel.setText(f"stopped — {exc}")

    def stop(self) -> None:
        self.server.Close()  # every client gets OnClientDisconnect
        self.ui.statusLabel.setText("stopped")
        self._set_running(False)

    def broadcast(self, line: str) -> None:
        data = (line + "\n").encode("utf-8")
        for client in self.server.Socket.Connections:
            client.SendBuf(data)

    @Slot()
    def on_startButton_clicked(self) -> None:
        self.start()

    @Slot()
    def on_stopButton_clicked(self) -> None:
        self.stop()

    @Slot()
    def on_broadcastButton_clicked(self) -> None:
        text = self.ui.broadcastEdit.text()
        if text:
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
        Socket.Data = LineSplitter()
        item = QTreeWidgetItem([Socket.RemoteAddress, str(Socket.RemotePort)])
        self._items[id(Socket)] = item
        self.ui.clientList.addTopLevelItem(item)
        self._log(f"* {Socket.RemoteAddress}:{Socket.RemotePort} joined")

    @Slot(object, object)
    def on_serverSocket1_OnClientRead(self, Sender: Any, Socket: Any) -> None:
        for line in Socket.Data.feed(Socket.ReceiveText()):
            self._log(line)
            self.broadcast(line)

    @Slot(object, object)
    def on_serverSocket1_OnClientDisconnect(self, Sender: Any, Socket: Any) -> None:
        item = self._items.pop(id(Socket), None)
        if item is not None:
            self.ui.clientList.takeTopLevelItem(self.ui.clientList.indexOfTopLevelItem(item))
        self._log(f"* {Socket.RemoteAddress}:{Socket.RemotePort} left")

    @Slot(object, object, object, object)
    def on_serverSocket1_OnClientError(self, Sender: Any, Socket: Any, ErrorEvent: Any,
                                       ErrorCode: Any) -> None:
        self._log(f"* {Socket.RemoteAddress}:{Socket.RemotePort} {ErrorEvent.name} error "
                  f"{ErrorCode.value}")
        ErrorCode.value = 0  # a client that vanishes is routine for a chat server

    # --- internals
    def _set_running(self, running: bool) -> None:
        self.ui.startButton.setEnabled(not running)
        self.ui.stopButton.setEnabled(running)
        self.ui.portSpin.setEnabled(not running)
        self.ui.serverTypeCombo.setEnabled(not running)

    def _log(self, line: str) -> None:
        self.ui.logView.appendPlainText(line)
        self.lineShown.emit(line)


def run_headless(port: int, server_type: int, address: str = "", tls_cert: str = "",
                 tls_key: str = "") -> int:
    """The relay as a service: no widgets, a QCoreApplication and chatcore.ChatServer."""
    app = QCoreApplication.instance() or QCoreApplication(sys.argv[:1])
    signal.signal(signal.SIGINT, lambda *_: app.quit())
    signal.signal(signal.SIGTERM, lambda *_: app.quit())
    wake = QTimer()
    wake.timeout.connect(lambda: None)  # Python code must run now and then for its
    wake.start(200)  # signal handlers: lets Ctrl+C / SIGTERM work while Qt waits
    server = ChatServer()
    server.server.ServerType = server_type
    if tls_cert:
        server.use_tls(tls_cert, tls_key)
    server.log.connect(lambda text: print(text, flush=True))
    try:
        server.start(port, address)
    except ESocketError as exc:
        print(f"cannot listen: {exc}", file=sys.stderr)
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
    window = ChatServerWindow(args.port, TYPES[args.type])
    window.server.Address = args.address
    if args.tls_cert:
        window.server.UseTLS = True
        window.server.TLSCertFile, window.server.TLSKeyFile = args.tls_cert, args.tls_key
    window.show()
    if args.start:
        window.start()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
