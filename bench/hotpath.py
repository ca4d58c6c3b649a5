"""Per-message CPU cost of sockcomp's non-blocking echo path, without the kernel.

    python bench/hotpath.py            # median and best of 7 batches, microseconds per message
    python bench/hotpath.py --profile  # the same under cProfile, top functions by own time
    python bench/hotpath.py --assigned # the handler assigned (server.OnClientRead = handler)
    python bench/hotpath.py --worker   # a thread-mode worker's Read + Write beyond recv + send
    python bench/hotpath.py --count [--assigned | --worker]
        # instructions per message instead of time: the same run under valgrind's callgrind,
        # counters zeroed before one measured batch and dumped after it (needs valgrind)

A ServerSocket (stNonBlocking) accepts one real loopback connection; then the accepted socket's
OS socket is swapped for a stand-in whose ``recv`` returns 64 bytes and whose ``send`` accepts
everything. Calling the socket's readiness handler then runs exactly what one echoed message
costs in Python: the pump's READ report, the receive bookkeeping, the OnClientRead signal, the
handler's ``Socket.SendBuf(Socket.ReceiveBytes())`` and the send bookkeeping. The numbers are
warm-cache figures (a tight loop), so they are a lower bound for the same code between real
system calls; use them to compare versions of the code, one after the other, on one machine.
"""
from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# SOCKCOMP_BENCH_TREE=/path/to/other/checkout measures that tree's sockcomp (before/after)
sys.path.insert(0, os.environ.get("SOCKCOMP_BENCH_TREE")
                or os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

N = 100_000
MESSAGE = b"x" * 64
#: Set (to a label) in the run ``--count`` starts under callgrind: measure one batch between a
#: zeroing and a dump of the counters instead of timing batches.
COUNTING = os.environ.get("SOCKCOMP_HOTPATH_COUNT", "")


def _callgrind(action: str) -> None:
    """Zero (``-z``) or dump (``-d``) this process's callgrind counters."""
    subprocess.run(["callgrind_control", action, str(os.getpid())], check=True,
                   capture_output=True)


def count(argv: list[str]) -> int:
    """``--count``: run this script under callgrind and report instructions per message (a
    figure that does not move with the machine's load, unlike the times)."""
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        sys.exit("hotpath: --count needs valgrind (apt-get install valgrind)")
    args = [a for a in argv if a != "--count"]
    label = "worker" if "--worker" in args else "assigned" if "--assigned" in args else \
        "connected"
    with tempfile.TemporaryDirectory(prefix="sockcomp-hotpath-") as folder:
        env = dict(os.environ, SOCKCOMP_HOTPATH_COUNT=label, PYTHONHASHSEED="0")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/cg.%p",
                        sys.executable, os.path.abspath(__file__), *args],
                       env=env, check=True, capture_output=True)
        totals = {}
        for name in os.listdir(folder):
            with open(os.path.join(folder, name)) as f:
                text = f.read()
            trigger = [line for line in text.splitlines() if line.startswith("desc: Trigger")]
            total = [line for line in text.splitlines() if line.startswith("totals:")]
            if trigger and total and "dump" in trigger[0]:
                totals[trigger[0].split()[-1]] = int(total[0].split()[1])
    if label == "worker":
        n = N // 4
        stream, bare = totals["stream"] / n, totals["bare"] / n
        print(f"worker Read + Write beyond recv + send: {stream - bare:,.0f} instructions per "
              f"message (loop with them {stream:,.0f}, bare {bare:,.0f}; callgrind, "
              f"Python {sys.version.split()[0]})")
    else:
        print(f"echo path ({label}): {totals['batch'] / N:,.0f} instructions per message "
              f"(callgrind, one batch of {N:,}, Python {sys.version.split()[0]})")
    return 0


class _StandInSocket:
    """Just enough of a socket (or a transport's stream) for the echo path: every read gets
    64 bytes, every send fits."""

    has_output = False

    def recv(self, n: int, flags: int = 0) -> bytes:
        return MESSAGE

    def send(self, data: bytes) -> int:
        return len(data)

    def fileno(self) -> int:
        return -1

    def drain(self) -> bool:
        return True

    def pending(self) -> int:
        return 0


def worker() -> int:
    """``--worker``: what a stThreadBlocking worker's ``WinSocketStream.Read`` + ``Write`` cost
    beyond a bare ``recv`` + ``send`` on the same OS socket. The worker drives its own peer (a
    plain socket: send 64 bytes, echo them, receive them), so every call finds its data
    waiting; batches of the two loops alternate, and the figure is the median difference."""
    from PySide6.QtCore import QCoreApplication

    from sockcomp import ServerClientThread, ServerSocket, WinSocketStream, stThreadBlocking

    n = N // 4
    result: dict[str, object] = {}

    class Measure(ServerClientThread):
        def ClientExecute(self) -> None:
            try:
                sock = self.ClientSocket
                stream = WinSocketStream(sock, 60_000)
                os_sock = sock.transport.sock
                c = peer

                def stream_loop() -> float:  # the Delphi idiom, as bench/servers.py has it
                    t0 = time.perf_counter()
                    for _ in range(n):
                        if self.Terminated or not sock.Connected:
                            break
                        c.send(MESSAGE)
                        stream.Write(stream.Read(4096))
                        c.recv(4096)
                    return (time.perf_counter() - t0) / n * 1e6

                def bare_loop() -> float:
                    t0 = time.perf_counter()
                    for _ in range(n):
                        c.send(MESSAGE)
                        os_sock.send(os_sock.recv(4096))
                        c.recv(4096)
                    return (time.perf_counter() - t0) / n * 1e6

                stream_loop(), bare_loop()  # warm up
                if COUNTING:
                    for loop, name in ((stream_loop, "stream"), (bare_loop, "bare")):
                        _callgrind("-z")
                        loop()
                        subprocess.run(["callgrind_control", "-d", name, str(os.getpid())],
                                       check=True, capture_output=True)
                    result["pairs"] = [(0.0, 0.0)]
                    return
                result["pairs"] = [(stream_loop(), bare_loop()) for _ in range(7)]
            except BaseException as exc:  # reported by the main thread
                result["error"] = exc
            finally:
                self.Synchronize(app.quit)

    app = QCoreApplication.instance() or QCoreApplication([])
    server = ServerSocket()
    server.Loaded()
    server.ServerType = stThreadBlocking
    server.Address, server.Port = "127.0.0.1", 0
    server.OnGetThread.connect(
        lambda Sender, ClientSocket, SocketThread:
        setattr(SocketThread, "value", Measure(False, ClientSocket)))
    server.Open()
    peer = socket.create_connection(("127.0.0.1", server.Socket.LocalPort))
    try:
        app.exec()
    finally:
        peer.close()
        server.Close()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    pairs = result["pairs"]
    assert isinstance(pairs, list)
    extra = [s - b for s, b in pairs]
    with_stream = statistics.median(s for s, _ in pairs)
    bare = statistics.median(b for _, b in pairs)
    print(f"worker Read + Write beyond recv + send: {statistics.median(extra):.2f} us per "
          f"message (best {min(extra):.2f}; loop with them {with_stream:.2f}, bare {bare:.2f}; "
          f"{n:,} messages x 7, Python {sys.version.split()[0]})")
    return 0


def main(argv: list[str]) -> int:
    if "--count" in argv:
        return count(argv)
    if "--worker" in argv:
        return worker()
    from PySide6.QtCore import QCoreApplication

    from sockcomp import ServerSocket
    from sockcomp._pump import READ

    app = QCoreApplication.instance() or QCoreApplication([])
    server = ServerSocket()
    server.Loaded()
    server.Address, server.Port = "127.0.0.1", 0
    def echo(Sender, Socket):
        Socket.SendBuf(Socket.ReceiveBytes())

    if "--assigned" in argv:
        server.OnClientRead = echo
    else:
        server.OnClientRead.connect(echo)
    server.Open()
    peer = socket.create_connection(("127.0.0.1", server.Socket.LocalPort))
    deadline = time.monotonic() + 10
    while not server.Socket.Connections:
        if time.monotonic() > deadline:
            sys.exit("hotpath: the connection was not accepted")
        app.processEvents()
    client = server.Socket.Connections[0]
    stand_in = _StandInSocket()
    transport = getattr(client, "transport", None)
    if transport is not None:  # the transport owns the socket: swap its stream
        transport.stream = stand_in
        transport._recv = stand_in.recv
        # the pump's handler of a connected socket (older trees had a wrapper in front of it)
        on_ready = getattr(transport, "_on_ready", None) or transport.read_ready
    else:  # before the transport existed, the socket object owned the OS socket
        client._sock = stand_in
        on_ready = client._on_ready

    def batch() -> float:
        t0 = time.perf_counter()
        for _ in range(N):
            on_ready(READ)
        return (time.perf_counter() - t0) / N * 1e6

    try:
        if "--profile" in argv:
            import cProfile
            import pstats
            profile = cProfile.Profile()
            profile.runcall(batch)
            pstats.Stats(profile).sort_stats("tottime").print_stats(15)
            return 0
        batch()  # warm up
        if COUNTING:
            _callgrind("-z")
            batch()
            subprocess.run(["callgrind_control", "-d", "batch", str(os.getpid())], check=True,
                           capture_output=True)
            return 0
        runs = [batch() for _ in range(7)]
        how = "assigned" if "--assigned" in argv else "connected"
        print(f"echo path ({how}): {statistics.median(runs):.2f} us per message "
              f"(best {min(runs):.2f}; {N:,} messages x 7, Python {sys.version.split()[0]})")
        return 0
    finally:
        peer.close()
        app.processEvents()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
