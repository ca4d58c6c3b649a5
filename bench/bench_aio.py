"""What the asyncio layer costs: sockcomp callbacks vs sockcomp.aio vs asyncio streams.

    python bench/bench_aio.py                 # every config, 3 interleaved runs, median table
    python bench/bench_aio.py --config aio    # one config once, JSON (what the driver runs)

Configs, each in its own process, echo server and client in that one process over 127.0.0.1:

* ``callback``       sockcomp ClientSocket/ServerSocket with OnRead/OnWrite handlers (plain Qt loop)
* ``aio``            sockcomp.aio (open_connection/start_server) under qasync.QEventLoop
* ``asyncio``        asyncio streams on the plain asyncio loop
* ``asyncio-qasync`` the same asyncio streams code under qasync.QEventLoop

Round trips: N sequential echoes of a 64-byte message after 200 warm-up trips. Bulk: BULK_MB
sent in 64 KiB writes (with drain/OnWrite backpressure) to a sink server in the same process.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

MSG = b"x" * 64
CHUNK = b"b" * 65536
WARMUP = 200
CONFIGS = ["callback", "aio", "asyncio", "asyncio-qasync"]


# ---------------------------------------------------------------------------- (a) callbacks
def run_callback(n: int, bulk_mb: int) -> dict:
    from PySide6.QtCore import QCoreApplication, QTimer

    from sockcomp import ClientSocket, ServerSocket

    app = QCoreApplication.instance() or QCoreApplication([])
    result: dict = {}

    # round trips
    server = ServerSocket()
    server.Loaded()
    server.Address, server.Port = "127.0.0.1", 0
    server.OnClientRead.connect(lambda s, sock: sock.SendBuf(sock.ReceiveBytes()))
    server.Open()
    client = ClientSocket()
    client.Loaded()
    client.Address, client.Port = "127.0.0.1", server.Socket.LocalPort
    state = {"count": -WARMUP, "got": 0, "t0": 0.0}

    def on_read(sender, sock) -> None:
        state["got"] += len(sock.ReceiveBytes())
        while state["got"] >= 64:
            state["got"] -= 64
            state["count"] += 1
            if state["count"] == 0:
                state["t0"] = time.perf_counter()
            if state["count"] == n:
                result["rtt_s"] = time.perf_counter() - state["t0"]
                app.quit()
                return
            sock.SendBuf(MSG)

    client.OnConnect.connect(lambda s, sock: sock.SendBuf(MSG))
    client.OnRead.connect(on_read)
    client.Open()
    QTimer.singleShot(120_000, app.quit)
    app.exec()
    client.Close()
    server.Close()

    # bulk
    total = bulk_mb * 1024 * 1024
    sink = ServerSocket()
    sink.Loaded()
    sink.Address, sink.Port = "127.0.0.1", 0
    got = {"n": 0}

    def sink_read(s, sock) -> None:
        got["n"] += len(sock.ReceiveBytes())
        if got["n"] >= total:
            result["bulk_s"] = time.perf_counter() - got["t0"]
            app.quit()

    sink.OnClientRead.connect(sink_read)
    sink.Open()
    sender = ClientSocket()
    sender.Loaded()
    sender.Address, sender.Port = "127.0.0.1", sink.Socket.LocalPort
    sent = {"n": 0}

    def pump(s, sock) -> None:  # OnWrite: the queue drained; send until it is above 64 KiB
        if sent["n"] == 0:
            got["t0"] = time.perf_counter()
        while sent["n"] < total and sock.SendQueueLength <= 65536:
            sock.SendBuf(CHUNK)
            sent["n"] += len(CHUNK)

    sender.OnWrite.connect(pump)
    sender.Open()
    app.exec()
    sender.Close()
    sink.Close()
    return result


# ---------------------------------------------------------------------------- stream code
# (b), (c) and (d) run this same code; sockcomp.aio passes its AsyncSocket as reader and writer
async def rtt_client(reader, writer, n: int) -> float:
    for i in range(WARMUP + n):
        if i == WARMUP:
            t0 = time.perf_counter()
        writer.write(MSG)
        await writer.drain()
        await reader.readexactly(64)
    return time.perf_counter() - t0


async def echo_handler(reader, writer) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def bulk_client(writer, total: int) -> None:
    sent = 0
    while sent < total:
        writer.write(CHUNK)
        sent += len(CHUNK)
        await writer.drain()


def sink_handler(total: int, done: asyncio.Future):
    async def handler(reader, writer) -> None:
        got = 0
        while got < total:
            data = await reader.read(1 << 20)
            if not data:
                break
            got += len(data)
        if not done.done():
            done.set_result(time.perf_counter())
        writer.close()
    return handler


async def streams_bench(n: int, bulk_mb: int) -> dict:
    result: dict = {}
    server = await asyncio.start_server(echo_handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    result["rtt_s"] = await rtt_client(reader, writer, n)
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    total = bulk_mb * 1024 * 1024
    done = asyncio.get_running_loop().create_future()
    server = await asyncio.start_server(sink_handler(total, done), "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    t0 = time.perf_counter()
    await bulk_client(writer, total)
    result["bulk_s"] = await done - t0
    writer.close()
    server.close()
    await server.wait_closed()
    return result


async def aio_bench(n: int, bulk_mb: int) -> dict:
    from sockcomp import aio

    result: dict = {}
    server = await aio.start_server(lambda c: echo_handler(c, c), "127.0.0.1", 0)
    conn = await aio.open_connection("127.0.0.1", server.port)
    result["rtt_s"] = await rtt_client(conn, conn, n)
    conn.close()
    server.close()
    await server.wait_closed()
    total = bulk_mb * 1024 * 1024
    done = asyncio.get_running_loop().create_future()
    handler = sink_handler(total, done)
    server = await aio.start_server(lambda c: handler(c, c), "127.0.0.1", 0)
    conn = await aio.open_connection("127.0.0.1", server.port)
    t0 = time.perf_counter()
    await bulk_client(conn, total)
    result["bulk_s"] = await done - t0
    conn.close()
    server.close()
    await server.wait_closed()
    return result


def run_qasync(coro_fn, n: int, bulk_mb: int) -> dict:
    import qasync
    from PySide6.QtCore import QCoreApplication

    app = QCoreApplication.instance() or QCoreApplication([])
    loop = qasync.QEventLoop(app)
    try:
        return loop.run_until_complete(coro_fn(n, bulk_mb))
    finally:
        loop.close()


def run_config(config: str, n: int, bulk_mb: int) -> dict:
    if config == "callback":
        res = run_callback(n, bulk_mb)
    elif config == "aio":
        res = run_qasync(aio_bench, n, bulk_mb)
    elif config == "asyncio":
        res = asyncio.run(streams_bench(n, bulk_mb))
    elif config == "asyncio-qasync":
        res = run_qasync(streams_bench, n, bulk_mb)
    else:
        raise SystemExit(f"unknown config {config}")
    return {"config": config, "rtt_us": res["rtt_s"] / n * 1e6, "rtt_per_s": n / res["rtt_s"],
            "bulk_mb_s": bulk_mb / res["bulk_s"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=CONFIGS)
    parser.add_argument("-n", type=int, default=10_000, help="round trips (default 10000)")
    parser.add_argument("--bulk-mb", type=int, default=200, help="bulk MB (default 200)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.config:
        print(json.dumps(run_config(args.config, args.n, args.bulk_mb)))
        return 0
    runs: dict[str, list[dict]] = {c: [] for c in CONFIGS}
    for rep in range(args.repeat):  # interleaved, each config in a fresh process
        for config in CONFIGS:
            out = subprocess.run([sys.executable, __file__, "--config", config, "-n", str(args.n),
                                  "--bulk-mb", str(args.bulk_mb)],
                                 capture_output=True, text=True, check=True, timeout=600)
            runs[config].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"  run {rep + 1} {config}: {runs[config][-1]}", file=sys.stderr)
    import PySide6
    from importlib.metadata import version
    print(f"Python {platform.python_version()}, PySide6 {PySide6.__version__}, "
          f"qasync {version('qasync')}, {platform.machine()} {os.cpu_count()} CPUs; "
          f"N={args.n} x 64 B, bulk {args.bulk_mb} MB in 64 KiB writes; "
          f"median of {args.repeat}\n")
    print("| config | RTT µs | round trips/s | bulk MB/s |")
    print("|---|---|---|---|")
    for config in CONFIGS:
        rs = runs[config]
        rtt = statistics.median(r["rtt_us"] for r in rs)
        per_s = statistics.median(r["rtt_per_s"] for r in rs)
        bulk = statistics.median(r["bulk_mb_s"] for r in rs)
        print(f"| {config} | {rtt:.1f} | {per_s:,.0f} | {bulk:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
