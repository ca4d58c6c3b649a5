"""Chat client in QML (chat_qml.qml): sockcomp's ClientSocket as a QML type.

    .venv/bin/python samples/chat_server.py --no-gui --port 5000 &      # the relay
    .venv/bin/python samples/chat_qml.py --host localhost --port 5000 --nick alice --connect

The window is all QML: ``import Sockcomp`` gives ``ClientSocket`` with lower-case properties
(``host``, ``port``, ``framing``, ``autoReconnect``…) and the VCL events as handlers
(``onConnect``, ``onLineReceived``, ``onError``…). This file only registers the types
(``sockcomp.qml.register_qml_types``), passes the command line in and runs the engine. The
protocol is that of the other samples (UTF-8 lines), so it chats with chat_client.py and
``nc localhost 5000`` users.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Optional

from PySide6.QtCore import QObject, QTimer, QUrl
from PySide6.QtGui import QGuiApplication
from PySide6.QtQml import QQmlApplicationEngine
from PySide6.QtQuickControls2 import QQuickStyle

from sockcomp.qml import register_qml_types

QML_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chat_qml.qml")


def load(engine: QQmlApplicationEngine, host: str = "localhost", port: int = 5000,
         nick: str = "guest", connect: bool = False) -> QObject:
    """Register the sockcomp QML types, load chat_qml.qml into ``engine`` with these settings
    and return its window (``window.client`` is the ClientSocket). Raises RuntimeError when
    the QML does not load (the engine has printed why)."""
    register_qml_types()
    before = len(engine.rootObjects())
    engine.setInitialProperties({"host": host, "port": port, "nick": nick,
                                 "autoConnect": connect})
    engine.load(QUrl.fromLocalFile(QML_FILE))
    roots = engine.rootObjects()
    if len(roots) == before:
        raise RuntimeError(f"cannot load {QML_FILE}")
    return roots[-1]


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--nick", default=os.environ.get("USER", "guest"))
    parser.add_argument("--connect", action="store_true", help="connect at once")
    parser.add_argument("--style", help="Qt Quick Controls style: Fusion (default), Material, "
                                         "Universal, Basic…")
    args = parser.parse_args(argv)
    if args.style or not os.environ.get("QT_QUICK_CONTROLS_STYLE"):
        QQuickStyle.setStyle(args.style or "Fusion")
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    signal.signal(signal.SIGINT, lambda *_: app.quit())
    wake = QTimer()  # let Python run now and then, so Ctrl+C works while Qt waits
    wake.timeout.connect(lambda: None)
    wake.start(200)
    engine = QQmlApplicationEngine()
    try:
        load(engine, args.host, args.port, args.nick, args.connect)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
