"""Chat client window: a Designer form (chat_client.ui) with a ClientSocket component on it.

    python samples/chat_client.py                          # connect to localhost:5000 by hand
    python samples/chat_client.py --host chat.lan --port 5000 --nick alice --connect

The form was made in Qt Designer with the sockcomp plugin (``python -m sockcomp.designer
samples/chat_client.ui``). The component ``clientSocket1`` sits on the form; its events arrive in
the ``on_clientSocket1_On…`` methods below through ``connectSlotsByName``, the way Delphi binds
``ClientSocket1Connect`` to the OnConnect event in the Object Inspector.

When the server goes away the client keeps trying to get back, every ``--reconnect-ms``
milliseconds and backing off (``AutoReconnect``, the "LinkTimer" of the classic Delphi heartbeat
articles, built in), until the user presses Disconnect. Bad input is not retried: an empty host
is refused before ``Open()``, and a host name that does not resolve (``OnError(eeLookup, …)``)
stops the attempts with the error's text.

The component cuts the received stream into lines (``Framing = fmLine``, one
``OnLineReceived`` each) and skips a line over ``MaxFrameSize`` (``foDiscard``,
``OnError(eeReceive, 10040)``); see chatcore.py.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from PySide6.QtCore import Signal, Slot  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

from chatcore import LINE_TOO_LONG, MAX_LINE, error_text, peer_name  # noqa: E402
from formloader import load_form  # noqa: E402
from quitsignals import quit_on_signals  # noqa: E402
from sockcomp import ESocketError, eeLookup, eeReceive, fmLine, foDiscard  # noqa: E402


class ChatClientWindow(QWidget):
    """The chat client: host/port/nick, Connect/Disconnect, log, input line, auto-reconnect."""

    lineShown = Signal(str)      # every line added to the log (for tests and scripts)
    stateShown = Signal(str)     # every state text shown

    def __init__(self, host: Optional[str] = None, port: Optional[int] = None,
                 nick: Optional[str] = None, reconnect_ms: int = 2000,
                 parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.ui = load_form("chat_client.ui", self)
        self.socket = self.ui.clientSocket1
        if host is not None:
            self.ui.hostEdit.setText(host)
        if port is not None:
            self.ui.portSpin.setValue(port)
        if nick is not None:
            self.ui.nickEdit.setText(nick)
        self._wanted = False  # the user asked to be connected (the button says Disconnect)
        self._stopped_state = "disconnected"  # what OnDisconnect shows when not retrying
        # One UTF-8 line per message: one OnLineReceived per line (the last one too, if the
        # server closes after it without "\n"). A longer line than MaxFrameSize is
        # OnError(eeReceive, 10040) and skipped; the connection stays.
        # (Framing and MaxFrameSize can also be set in Designer's property editor.)
        self.socket.Framing = fmLine
        self.socket.MaxFrameSize = MAX_LINE
        self.socket.FrameOverflow = foDiscard
        # the seed's LinkTimer, built in: reopen after the link drops, backing off to 30 s
        self.socket.AutoReconnect = True
        self.socket.ReconnectInterval = reconnect_ms
        self.socket.ReconnectMaxInterval = max(reconnect_ms, 30_000)

    # --- user actions
    def use_tls(self, ca_file: str = "") -> None:
        """Encrypt: verify the server against ``ca_file`` (or the system's trust store)."""
        self.socket.UseTLS = True
        self.socket.TLSCAFile = ca_file

    def connect_to_server(self) -> None:
        host = self.ui.hostEdit.text().strip()
        if not host:  # bad input, not a network failure: say so and do not even try
            self._stop("no host: type the server's name or address")
            self.ui.hostEdit.setFocus()
            return
        self._wanted = False
        self._stopped_state = "disconnected"
        self.socket.Close()  # the new connection replaces the current one, if any
        self.socket.Host = host
        self.socket.Port = self.ui.portSpin.value()
        self._wanted = True
        self.ui.connectButton.setText("Dis&connect")
        self._open()

    def disconnect_from_server(self) -> None:
        self._stop("disconnected")

    def say(self, text: str) -> bool:
        """Send one line; False (and a note in the log) if it is longer than MAX_LINE."""
        nick = self.ui.nickEdit.text().strip() or "guest"
        line = f"{nick}: {text}"
        if len(line.encode("utf-8")) > MAX_LINE:
            self._show_line(f"* not sent: longer than {MAX_LINE} bytes")
            return False
        self.socket.Socket.SendText(line + "\n")
        return True

    @Slot()
    def on_connectButton_clicked(self) -> None:
        if self._wanted:
            self.disconnect_from_server()
        else:
            self.connect_to_server()

    @Slot()
    def on_sendButton_clicked(self) -> None:
        text = self.ui.inputEdit.text()
        if text and self.socket.Socket.Connected and self.say(text):
            self.ui.inputEdit.clear()

    # --- the component's events (auto-connected by name)
    @Slot(object, object)
    def on_clientSocket1_OnConnecting(self, Sender: Any, Socket: Any) -> None:
        self._show_state(f"connecting to {Sender.Host or Sender.Address}:{Sender.Port}…")

    @Slot(object, object)
    def on_clientSocket1_OnConnect(self, Sender: Any, Socket: Any) -> None:
        self.ui.sendButton.setEnabled(True)
        self._show_state(f"connected to {peer_name(Socket)}")

    @Slot(object, object, object)
    def on_clientSocket1_OnLineReceived(self, Sender: Any, Socket: Any, Line: str) -> None:
        self._show_line(Line.rstrip("\r"))

    @Slot(object, object)
    def on_clientSocket1_OnDisconnect(self, Sender: Any, Socket: Any) -> None:
        self.ui.sendButton.setEnabled(False)
        if self._wanted:
            self._show_state("no connection — retrying")
        else:
            self._show_state(self._stopped_state)

    @Slot(object, object, object, object)
    def on_clientSocket1_OnError(self, Sender: Any, Socket: Any, ErrorEvent: Any,
                                 ErrorCode: Any) -> None:
        if ErrorEvent == eeReceive and ErrorCode.value == LINE_TOO_LONG:  # foDiscard: skipped
            self._show_line(f"* a line longer than {MAX_LINE} bytes was skipped")
        else:  # e.g. "* eeConnect error 10061: Connection refused"
            self._show_line(f"* {error_text(Socket, ErrorEvent, ErrorCode.value)}")
        if ErrorEvent == eeLookup:
            # the host name does not resolve (11001) or is missing (1110): retrying cannot
            # help, so stop here (Close() also stops AutoReconnect) and say why
            self._stop(f"cannot connect: {Socket.LastErrorMessage}")
        ErrorCode.value = 0  # handled: OnDisconnect follows (and AutoReconnect retries)

    @Slot(object, object)
    def on_clientSocket1_OnReconnect(self, Sender: Any, Socket: Any) -> None:
        self._show_state(f"reconnecting (attempt {Sender.ReconnectAttempt})…")

    # --- internals
    def _open(self) -> None:
        try:
            self.socket.Open()
        except ESocketError as exc:
            self._stop(f"cannot connect: {exc}")

    def _stop(self, state: str) -> None:
        """Not connected, not retrying: the button offers Connect, the state says ``state``."""
        self._wanted = False
        self._stopped_state = state
        self.socket.Close()  # also stops AutoReconnect (OnDisconnect fires if it was open)
        self.ui.connectButton.setText("&Connect")
        self._show_state(state)

    def _show_line(self, line: str) -> None:
        self.ui.logView.appendPlainText(line)
        self.lineShown.emit(line)

    def _show_state(self, text: str) -> None:
        self.ui.stateLabel.setText(text)
        self.stateShown.emit(text)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--nick", default=os.environ.get("USER", "guest"))
    parser.add_argument("--connect", action="store_true", help="connect at start")
    parser.add_argument("--reconnect-ms", type=int, default=2000)
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    parser.add_argument("--tls-ca", default="", help="CA file to verify the server with")
    args = parser.parse_args(argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    quit_on_signals(app)  # Ctrl+C in the terminal closes the window cleanly
    window = ChatClientWindow(args.host, args.port, args.nick, args.reconnect_ms)
    if args.tls or args.tls_ca:
        window.use_tls(args.tls_ca)
    window.show()
    if args.connect:
        window.connect_to_server()
    code = app.exec()
    window.disconnect_from_server()  # an orderly close for the server
    return code


if __name__ == "__main__":
    sys.exit(main())
