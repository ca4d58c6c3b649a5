"""Run inside a network namespace by test_vanished_peer.py: the sockcomp side of the test.

    python vanish_probe.py client-nonblocking|client-blocking|server HOST PORT

Keepalive is on (1 s idle, 0.5 s interval, 2 probes). Every event is printed as one JSON line
(``{"event": ..., "t": monotonic, ...}``) so the test can follow from outside the namespace.
"""
from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from PySide6.QtCore import QCoreApplication, QTimer  # noqa: E402

import sockcomp  # noqa: E402
from sockcomp import ClientSocket, ESocketError, ServerSocket, WinSocketStream, ctBlocking  # noqa: E402


def say(event: str, **data: object) -> None:
    print(json.dumps({"event": event, "t": time.monotonic(), **data}), flush=True)


def keepalive(component) -> None:
    component.KeepAlive = True
    component.KeepAliveTime, component.KeepAliveInterval, component.KeepAliveCount = 1000, 500, 2


def main() -> int:
    role, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    app = QCoreApplication([])
    sockcomp.SetExceptionHook(lambda exc: say("hook", code=getattr(exc, "ErrorCode", None)))
    if role == "server":
        srv = ServerSocket()
        srv.Address, srv.Port = host, port
        keepalive(srv)
        srv.OnListen.connect(lambda s, sock: say("OnListen"))
        srv.OnClientConnect.connect(lambda s, sock: say("OnClientConnect"))
        srv.OnClientRead.connect(lambda s, sock: say("OnClientRead", data=sock.ReceiveText()))
        srv.OnClientError.connect(
            lambda s, sock, e, c: say("OnClientError", ee=int(e), code=c.value))
        srv.OnClientDisconnect.connect(lambda s, sock: (say("OnClientDisconnect"), app.quit()))
        srv.Open()
        return app.exec()
    cli = ClientSocket()
    cli.Address, cli.Port = host, port
    keepalive(cli)
    cli.OnConnect.connect(lambda s, sock: say("OnConnect"))
    cli.OnRead.connect(lambda s, sock: say("OnRead", data=sock.ReceiveText()))
    cli.OnError.connect(lambda s, sock, e, c: say("OnError", ee=int(e), code=c.value))
    cli.OnDisconnect.connect(lambda s, sock: say("OnDisconnect"))
    if role == "client-nonblocking":
        cli.OnDisconnect.connect(lambda s, sock: app.quit())
        cli.Open()
        return app.exec()
    cli.ClientType = ctBlocking
    cli.Loaded()
    cli.Open()
    stream = WinSocketStream(cli.Socket, 60_000)
    try:
        while True:
            data = stream.Read(100)
            if not data:
                say("eof")
                break
            say("read", data=data.decode())
    except ESocketError as exc:
        say("raised", code=exc.ErrorCode)
    QTimer.singleShot(0, app.quit)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
