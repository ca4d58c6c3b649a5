"""Reliability figures for docs/reliability.md: hold, move, churn, and count what leaks.

    python bench/reliability.py [--hold 5000] [--move-mb 1024] [--churn 10000]

One process runs the sockcomp servers (the component thread), load comes from plain-socket
clients in a child process (for the held connections, so both ends fit the fd limit) or in
threads. Every phase reports descriptors and threads before and after; the figures printed at the
end are what docs/reliability.md quotes.
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import os
import resource
import socket
import subprocess
import sys
import threading
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from PySide6.QtCore import QCoreApplication  # noqa: E402

from sockcomp import ServerSocket, stThreadBlocking  # noqa: E402

HOLDER = r"""
import resource, socket, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
port, count = int(sys.argv[1]), int(sys.argv[2])
conns = []
for _ in range(count):
    conns.append(socket.create_connection(("127.0.0.1", port)))
print("held", len(conns), flush=True)
sys.stdin.readline()
for c in conns:
    c.close()
print("released", flush=True)
"""


def fds() -> int:
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


def rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def spin(app: QCoreApplication, until, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        app.processEvents()
        time.sleep(0.001)  # a benchmark, not a test: polling the loop is fine here


def hold(app: QCoreApplication, count: int) -> dict[str, float]:
    srv = ServerSocket()
    srv.Address, srv.Port = "127.0.0.1", 0
    srv.Open()
    base_fds, base_rss = fds(), rss_kb()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(srv.Socket.LocalPort),
                               str(count)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    spin(app, lambda: srv.Socket.ActiveConnections == count, 300)
    held_rss = rss_kb()
    assert holder.stdin is not None and holder.stdout is not None
    holder.stdin.write("\n")
    holder.stdin.flush()
    spin(app, lambda: srv.Socket.ActiveConnections == 0, 120)
    holder.wait(60)
    holder.stdin.close()
    holder.stdout.close()
    srv.Close()
    return {"held": count, "rss_per_conn_kb": (held_rss - base_rss) / count,
            "fd_delta": fds() - base_fds}


def move(app: QCoreApplication, megabytes: int, mode: int) -> dict[str, float]:
    srv = ServerSocket()
    srv.Address, srv.Port, srv.ServerType = "127.0.0.1", 0, mode
    srv.OnClientRead.connect(lambda s, sock: sock.SendBuf(sock.ReceiveBytes()))
    srv.Open()
    base_fds, base_threads = fds(), threading.active_count()
    block = os.urandom(1 << 20)
    digest_out, digest_in = hashlib.sha256(), hashlib.sha256()
    result: dict[str, float] = {}

    def client() -> None:
        with socket.create_connection(("127.0.0.1", srv.Socket.LocalPort)) as c:
            received = [0]

            def reader() -> None:
                while received[0] < megabytes << 20:
                    data = c.recv(1 << 20)
                    if not data:
                        return
                    digest_in.update(data)
                    received[0] += len(data)

            r = threading.Thread(target=reader)
            r.start()
            start = time.monotonic()
            for _ in range(megabytes):
                c.sendall(block)
                digest_out.update(block)
            r.join()
            result["seconds"] = time.monotonic() - start
            result["bytes"] = received[0]

    worker = threading.Thread(target=client)
    worker.start()
    spin(app, lambda: not worker.is_alive(), 600)
    spin(app, lambda: srv.Socket.ActiveConnections == 0, 30)
    srv.Close()
    return {"moved_mb": result["bytes"] / (1 << 20) * 2,  # each byte went there and back
            "checksum_ok": digest_in.digest() == digest_out.digest(),
            "mb_per_s_each_way": result["bytes"] / (1 << 20) / result["seconds"],
            "fd_delta": fds() - base_fds, "thread_delta": threading.active_count() - base_threads}


def churn(app: QCoreApplication, cycles: int, mode: int) -> dict[str, float]:
    srv = ServerSocket()
    srv.Address, srv.Port, srv.ServerType = "127.0.0.1", 0, mode
    ended = [0]
    srv.OnClientConnect.connect(lambda s, sock: sock.Close())
    srv.OnClientDisconnect.connect(lambda s, sock: ended.__setitem__(0, ended[0] + 1))
    srv.Open()
    base_fds, base_threads = fds(), threading.active_count()
    port = srv.Socket.LocalPort

    def run(n: int) -> None:
        for _ in range(n):
            with socket.create_connection(("127.0.0.1", port)) as c:
                c.recv(10)

    workers = [threading.Thread(target=run, args=(cycles // 4,)) for _ in range(4)]
    start = time.monotonic()
    for w in workers:
        w.start()
    spin(app, lambda: ended[0] == cycles // 4 * 4, 600)
    elapsed = time.monotonic() - start
    for w in workers:
        w.join()
    srv.Close()
    spin(app, lambda: threading.active_count() <= base_threads, 30)
    return {"cycles": ended[0], "per_s": ended[0] / elapsed, "fd_delta": fds() - base_fds,
            "thread_delta": threading.active_count() - base_threads}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hold", type=int, default=5000)
    parser.add_argument("--move-mb", type=int, default=1024)
    parser.add_argument("--churn", type=int, default=10000)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    app = QCoreApplication([])
    print("load average:", open("/proc/loadavg").read().split()[:3])
    print("hold:", hold(app, args.hold))
    print("move (stNonBlocking):", move(app, args.move_mb, 0))
    print("move (stThreadBlocking):", move(app, args.move_mb // 4, stThreadBlocking))
    print("churn (stNonBlocking):", churn(app, args.churn, 0))
    print("churn (stThreadBlocking):", churn(app, args.churn // 4, stThreadBlocking))


if __name__ == "__main__":
    main()
