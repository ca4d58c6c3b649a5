"""Console chat: a demo conversation, a headless relay server, or an interactive client.

    python samples/chat_console.py                       # demo: server + two clients, then exit
    python samples/chat_console.py --server --port 5000  # a real relay server (Ctrl+C stops)
    python samples/chat_console.py --client localhost 5000 --nick alice   # type lines to chat

The protocol is plain UTF-8 lines, so ``nc localhost 5000`` can join too. The client reconnects
by itself when the server goes away; lines typed meanwhile are kept and sent once it is back.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from PySide6.QtCore import QCoreApplication, QSocketNotifier, QTimer  # noqa: E402

from chatcore import MAX_LINE, ChatClient, ChatServer  # noqa: E402
from quitsignals import quit_on_signals  # noqa: E402
from sockcomp import ESocketError  # noqa: E402


def run_demo(app: QCoreApplication) -> int:
    server = ChatServer()
    server.log.connect(lambda text: print(f"[server] {text}"))
    port = server.start(0, "127.0.0.1")
    alice, bob = ChatClient("alice"), ChatClient("bob")
    script = [(alice, "hello, anyone here?"), (bob, "hi alice — Grüße aus Köln 👋"),
              (alice, "TClientSocket lives on in Python!")]
    seen: list[str] = []

    def on_line(who: str, line: str) -> None:
        print(f"[{who} sees] {line}")
        seen.append(line)
        if len(seen) % 2 == 0:  # both clients have it (in either order): next line
            say_next()

    def say_next() -> None:
        if script:
            client, text = script.pop(0)
            client.say(text)
        else:
            alice.close()
            bob.close()
            server.stop()
            QTimer.singleShot(0, app.quit)

    alice.lineReceived.connect(lambda line: on_line("alice", line))
    bob.lineReceived.connect(lambda line: on_line("bob", line))
    ready = []

    def on_state(who: str, state: str) -> None:
        print(f"[{who}] {state}")
        if state == "connected":
            ready.append(who)
            if len(ready) == 2:
                say_next()

    alice.stateChanged.connect(lambda s: on_state("alice", s))
    bob.stateChanged.connect(lambda s: on_state("bob", s))
    alice.connect_to("127.0.0.1", port)
    bob.connect_to("127.0.0.1", port)
    QTimer.singleShot(10_000, lambda: (print("demo timed out"), app.exit(1)))
    return app.exec()


def run_server(app: QCoreApplication, port: int) -> int:
    server = ChatServer()
    server.log.connect(lambda text: print(text, flush=True))
    try:
        server.start(port)
    except ESocketError as exc:  # e.g. the port is in use (10048): say so in one line
        print(f"cannot listen on port {port}: {exc}", file=sys.stderr)
        return 1
    code = app.exec()
    server.stop()  # Ctrl+C: every client sees an orderly close
    return code


def run_client(app: QCoreApplication, host: str, port: int, nick: str,
               reconnect_ms: int = 1000) -> int:
    client = ChatClient(nick, reconnect_ms=reconnect_ms)
    client.lineReceived.connect(lambda line: print(line, flush=True))
    client.stateChanged.connect(lambda state: print(f"* {state}", flush=True))
    # a wrong host name cannot get better by retrying: stop (after app.exec() has started)
    client.gaveUp.connect(lambda text: QTimer.singleShot(0, lambda: app.exit(1)))
    stdin = QSocketNotifier(sys.stdin.fileno(), QSocketNotifier.Type.Read)

    def on_stdin() -> None:
        line = sys.stdin.readline()
        if not line:
            stdin.setEnabled(False)
            client.close()
            app.quit()
            return
        result = client.say(line.rstrip("\n"))
        if result == "kept":  # AutoReconnect keeps what is sent between connections
            print("* not connected: the line is kept, it will be sent once reconnected",
                  flush=True)
        elif result == "too long":
            print(f"* not sent: longer than {MAX_LINE} bytes", flush=True)
        elif result == "not sent":
            print("* not connected: the line was not sent", flush=True)

    stdin.activated.connect(on_stdin)
    client.connect_to(host, port)
    code = app.exec()
    client.close()
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", action="store_true", help="run a relay server")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--client", nargs=2, metavar=("HOST", "PORT"), help="join a server")
    parser.add_argument("--nick", default=os.environ.get("USER", "guest"))
    parser.add_argument("--reconnect-ms", type=int, default=1000,
                        help="(client) first delay before reconnecting, doubling up to 30 s")
    args = parser.parse_args(argv)
    app = QCoreApplication(sys.argv[:1])
    quit_on_signals(app)  # Ctrl+C and SIGTERM end app.exec(): the clean-up after it runs
    if args.server:
        return run_server(app, args.port)
    if args.client:
        return run_client(app, args.client[0], int(args.client[1]), args.nick,
                          args.reconnect_ms)
    return run_demo(app)


if __name__ == "__main__":
    sys.exit(main())
