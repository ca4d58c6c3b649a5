"""Issue 19: the samples show the safe way. Each test runs a sample as users run it (a separate
process) and talks to it over real loopback sockets: plain sockets, ``nc``, the other samples.

No test sleeps to synchronise: each waits for a line the sample prints, or for a socket event.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional, Union

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
ENV = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONUNBUFFERED="1")
sys.path.insert(0, str(SAMPLES))

from chatcore import MAX_LINE  # noqa: E402  (the MaxFrameSize of every sample)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A program in its own process; a thread collects its stdout lines as they come."""

    def __init__(self, argv: list[str], stdin: bool = False) -> None:
        self.proc = subprocess.Popen(
            argv, env=ENV, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE)
        self.lines: list[str] = []
        self._pos = 0  # expect() consumes the lines up to its match
        self._eof = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def expect(self, want: Union[str, Callable[[str], bool]], timeout: float = 15) -> str:
        """The next line (after the last one expected) that is ``want`` or satisfies it."""
        match = want if callable(want) else (lambda line: line == want)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                while self._pos < len(self.lines):
                    line = self.lines[self._pos]
                    self._pos += 1
                    if match(line):
                        return line
                if self._eof:
                    raise AssertionError(f"{want!r} never came; output: {self._tail()}")
                if not self._cond.wait(max(deadline - time.monotonic(), 0)):
                    raise AssertionError(f"{want!r} not within {timeout} s; "
                                         f"output: {self._tail()}")

    def _tail(self) -> list[str]:
        return [line[:120] for line in self.lines[-10:]]

    def type(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode("utf-8"))
        self.proc.stdin.flush()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        code = self.proc.wait(timeout=10)
        self._thread.join(timeout=10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        return code

    def __enter__(self) -> "Process":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.stop()


class Sample(Process):
    """A sample script run as users run it."""

    def __init__(self, script: str, *args: object, stdin: bool = False) -> None:
        super().__init__([sys.executable, str(SAMPLES / script), *map(str, args)], stdin)


def headless_server(port: int, *extra: object) -> Sample:
    server = Sample("chat_server.py", "--no-gui", "--port", port, *extra)
    server.expect(f"listening on port {port}")
    return server


def read_line(f) -> bytes:
    return f.readline(4 * 1024 * 1024)


# ---------------------------------------------------------------------------- 1. framing
def test_an_oversized_line_from_nc_is_dropped_and_reported_not_relayed(tmp_path) -> None:
    """A 1 MiB line (nc reading a file) is reported (10040) and skipped: the other clients get
    the lines around it and not one byte of it, and the sender stays connected."""
    port = free_port()
    flood = tmp_path / "flood.txt"
    flood.write_bytes(b"nc: before\n" + b"x" * (1 << 20) + b"\nnc: after\n")
    with headless_server(port) as server, \
            socket.create_connection(("127.0.0.1", port), timeout=15) as watcher:
        server.expect(lambda line: line.endswith(" connected"))
        with open(flood, "rb") as stdin:
            nc = subprocess.run(["nc", "-N", "127.0.0.1", str(port)], stdin=stdin,
                                capture_output=True, timeout=30)
        received = watcher.makefile("rb")
        lines = [read_line(received), read_line(received)]
        assert [len(line) for line in lines] == [11, 10], "a fragment of the long line came"
        assert lines == [b"nc: before\n", b"nc: after\n"]
        report = server.expect(lambda line: "10040" in line)
        assert f"longer than {MAX_LINE} bytes" in report
        # nc got its own lines back and was told why the long one went nowhere
        out = nc.stdout.decode("utf-8").splitlines()
        assert out[0] == "nc: before" and out[-1] == "nc: after"
        assert any("not relayed" in line for line in out), out
        assert max(map(len, out)) < MAX_LINE


def test_an_unterminated_last_line_before_a_disconnect_is_relayed() -> None:
    port = free_port()
    with headless_server(port) as server, \
            socket.create_connection(("127.0.0.1", port), timeout=15) as watcher:
        server.expect(lambda line: line.endswith(" connected"))
        nc = subprocess.run(["nc", "-N", "127.0.0.1", str(port)],
                            input="nc: last words — без перевода строки".encode(),
                            capture_output=True, timeout=30)
        assert nc.returncode == 0
        line = read_line(watcher.makefile("rb"))
        assert line.decode() == "nc: last words — без перевода строки\n"


# ---------------------------------------------------------------------------- 2. slow readers
#: A chat client that floods long lines and reads everything it is sent, until the server tells
#: it that someone was dropped: it prints that line and exits. A process of its own, so that
#: it takes nothing from the event loop of a server running in the test process.
TALKER = r"""
import re, socket, sys, threading
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print("connected", flush=True)
lines = (b"talker: " + b"y" * int(sys.argv[2]) + b"\n") * 4
def write():
    try:
        while True:
            s.sendall(lines)
    except OSError:
        pass
threading.Thread(target=write, daemon=True).start()
tail = b""
while data := s.recv(65536):
    found = re.search(rb"\* [^\n]*dropped[^\n]*", tail + data)
    if found:
        print(found.group().decode(), flush=True)
        break
    tail = (tail + data)[-200:]  # a notice may straddle two reads
"""


def flood_until_dropped(port: int, server_dropped: Callable[[], None],
                        wait_until: Optional[Callable[[Callable[[], bool]], None]] = None,
                        reset: bool = True) -> None:
    """A client that never reads (small receive buffer) and a talker that floods long lines
    and reads everything; ``server_dropped()`` waits until the server has dropped the sleeper.
    Then the talker must have been told, and the sleeper's connection must be gone: reset (an
    abortive close), or, with ``reset=False``, reset or ended after what the kernel held.
    ``wait_until(predicate)`` waits while the caller's event loop runs (a server in the test
    process must keep running to send the notice)."""
    sleeper = socket.socket()
    sleeper.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sleeper.settimeout(15)
    sleeper.connect(("127.0.0.1", port))
    with Process([sys.executable, "-c", TALKER, str(port), str(MAX_LINE - 200)]) as talker:
        talker.expect("connected")
        server_dropped()
        if wait_until is not None:
            wait_until(lambda: any("dropped" in line for line in talker.lines))
        notice = talker.expect(lambda line: "dropped" in line)  # the others are told
        assert notice == f"* 127.0.0.1:{sleeper.getsockname()[1]} was dropped: it did not " \
            "read its messages"
    try:
        while sleeper.recv(1 << 20):
            pass
    except ConnectionResetError:  # dropped abortively: what was queued for it is freed
        pass
    else:
        assert not reset, "the slow client was closed gracefully, not reset"
    sleeper.close()


def test_headless_server_drops_a_client_that_never_reads() -> None:
    port = free_port()
    with headless_server(port) as server:
        flood_until_dropped(port, lambda: server.expect(
            lambda line: "dropped" in line and not line.startswith("talker:"), timeout=30))


# ---------------------------------------------------------------------------- 3. error text
def test_console_client_shows_the_error_text_with_the_code() -> None:
    port = free_port()  # nothing listens there
    with Sample("chat_console.py", "--client", "127.0.0.1", port, "--nick", "eve",
                stdin=True) as client:
        line = client.expect(lambda line: "10061" in line)
        assert "Connection refused" in line, line


# ---------------------------------------------------------------------------- 4. bad input
def test_console_client_gives_up_on_an_unknown_host() -> None:
    with Sample("chat_console.py", "--client", "no-such-host.invalid", 5000, "--nick", "eve",
                stdin=True) as client:
        assert "* eeLookup error 11001: " in client.expect(lambda line: "11001" in line)
        assert client.proc.wait(timeout=15) == 1  # stopped, not retrying for ever


# ---------------------------------------------------------------------------- 5. console client
def test_console_client_reconnects_and_sends_what_was_typed_meanwhile() -> None:
    port = free_port()
    server = headless_server(port)
    try:
        with Sample("chat_console.py", "--client", "127.0.0.1", port, "--nick", "carol",
                    "--reconnect-ms", "100", stdin=True) as client:
            client.expect("* connected")
            server.stop()  # the server goes away
            client.expect("* disconnected")
            client.type("typed while the server was away\n")
            notice = client.expect(lambda line: "kept" in line)  # the user is told
            assert "sent once reconnected" in notice
            server = headless_server(port)  # and comes back
            client.expect("* connected")
            client.expect("carol: typed while the server was away")  # relayed back: it was sent
            client.type("and after\n")
            client.expect("carol: and after")
    finally:
        server.stop()


def test_console_server_on_a_busy_port_prints_one_line_and_fails() -> None:
    with socket.create_server(("", 0), family=socket.AF_INET6, dualstack_ipv6=True) as busy:
        port = busy.getsockname()[1]
        out = subprocess.run([sys.executable, str(SAMPLES / "chat_console.py"), "--server",
                              "--port", str(port)], env=ENV, capture_output=True, text=True,
                             timeout=30)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert f"cannot listen on port {port}" in lines[0] and "(10048)" in lines[0], lines


def test_headless_server_shows_ipv6_peers_in_brackets() -> None:
    port = free_port()
    with headless_server(port) as server, \
            socket.create_connection(("::1", port), timeout=15) as v6:
        local_port = v6.getsockname()[1]
        assert server.expect(lambda line: "connected" in line) == \
            f"[::1]:{local_port} connected"


@pytest.mark.parametrize("sample", ["chat_client.py", "chat_async.py"])
def test_gui_client_quits_cleanly_on_ctrl_c(sample: str) -> None:
    """SIGINT quits the window's event loop: the connection is closed gracefully (FIN, not a
    reset or a killed process) and the process exits with 0."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(20)
        port = listener.getsockname()[1]
        args = ["--host", "127.0.0.1", "--port", port, "--nick", "zoe", "--connect"] \
            if sample == "chat_client.py" else ["--gui", "127.0.0.1", port, "--nick", "zoe"]
        with Sample(sample, *args) as gui:
            conn, _ = listener.accept()  # the window has connected: its loop runs
            with conn:
                gui.proc.send_signal(signal.SIGINT)
                conn.settimeout(15)
                assert conn.recv(100) == b""  # an orderly close
                assert gui.proc.wait(timeout=15) == 0


@pytest.mark.parametrize("script,args", [
    ("chat_server.py", ["--start"]),
    ("chat.py", ["--gui"]),
], ids=["chat_server.py", "chat.py"])
def test_gui_server_quits_cleanly_on_ctrl_c(script: str, args: list[str]) -> None:
    port = free_port()
    with Sample(script, "--port", port, *args) as gui:
        gui.expect(lambda line: f"listening on port {port}" in line)
        with socket.create_connection(("127.0.0.1", port), timeout=15) as plain:
            gui.proc.send_signal(signal.SIGINT)
            assert gui.proc.wait(timeout=15) == 0
            assert plain.recv(100) == b""  # the server was stopped: its clients saw a FIN


# ---------------------------------------------------------------------------- 6. asyncio
def python_blocks(markdown: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown.read_text(encoding="utf-8"), re.S)


def test_asyncio_doc_example_runs_and_exits_silently(tmp_path) -> None:
    """The first example of docs/asyncio.md, run as a script: its output and nothing on
    stderr (qasync's loop must be closed while the QCoreApplication still exists)."""
    example = tmp_path / "example.py"
    example.write_text(python_blocks(ROOT / "docs" / "asyncio.md")[0], encoding="utf-8")
    out = subprocess.run([sys.executable, str(example)], env=ENV, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[:2] == ["b'HELLO\\n'", "b''"]
    assert out.stdout.splitlines()[2].startswith("10061 ")
    assert out.stderr == ""


def test_readme_asyncio_example_runs_and_exits_silently(tmp_path) -> None:
    """The README's asyncio example, run as a script: its output and nothing on stderr."""
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    section = text[text.index("## asyncio (qasync)"):]
    example = tmp_path / "example.py"
    example.write_text(python_blocks_in(section)[0], encoding="utf-8")
    out = subprocess.run([sys.executable, str(example)], env=ENV, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["b'HELLO\\n'", "10061"]
    assert out.stderr == ""


def python_blocks_in(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_chat_async_demo_exits_silently() -> None:
    out = subprocess.run([sys.executable, str(SAMPLES / "chat_async.py")], env=ENV,
                         capture_output=True, text=True, timeout=30, encoding="utf-8")
    assert out.returncode == 0, out.stderr
    assert "[bob sees] alice: TClientSocket lives on in Python!" in out.stdout
    assert out.stderr == ""
