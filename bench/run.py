"""sockcomp benchmark suite: sockcomp's servers against their peers, one load generator.

    python -m bench                      # everything, 3 interleaved runs, writes docs/benchmarks.md
    python -m bench --quick --only ping  # smoke run (small N, nothing written)
    python bench/run.py --only conc,idle --servers sockcomp-nb,asyncio-protocol --runs 5
    python bench/run.py --only conc,conn --tree before=/work/before --no-write  # before/after

Every server kind runs in its own process (bench/servers.py); one C load generator
(bench/loadgen.c, compiled with gcc on first use) drives all of them identically over
127.0.0.1. Each measurement starts a fresh server process, runs the scenario once against it
as a warm-up (result discarded), then the measured pass against the same process (--cold:
the old way, a single pass against the fresh process; --cold-too: both, cold in a table of
its own). Runs are interleaved: round r runs every scenario over every server (in an order
rotated per round), then round r+1; the table shows the median of the rounds. --tree
NAME=PATH adds the sockcomp kinds again as KIND@NAME, importing sockcomp from PATH. See
bench/README.md for the scenarios.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import random
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HOST = "127.0.0.1"
MARKER = "<!-- end of generated results: text below this line is kept by bench/run.py -->"

NB = "sockcomp-nb"
OV = "sockcomp-nb-override"  # the same server with handlers as overridden dispatch methods
AS = "sockcomp-nb-assigned"  # the same server with handlers assigned (s.OnClientRead = h)
TH = "sockcomp-thread"
ALL_SERVERS = [NB, AS, OV, TH, "asyncio-protocol", "asyncio-streams", "uvloop-protocol",
               "uvloop-streams", "qtcp", "raw-notifier", "threading-tcpserver"]
# on request (--servers)
EXTRA_SERVERS = ["sockcomp-thread-sync", "sockcomp-thread-bare", "raw-epoll"]
SOCKCOMP_KINDS = [NB, AS, OV, TH, "sockcomp-thread-sync"]  # the kinds --tree adds as KIND@NAME
THREADED = {TH, "sockcomp-thread-sync", "sockcomp-thread-bare", "threading-tcpserver"}
SCENARIOS = ["ping", "inproc", "bulk", "conc", "conn", "idle", "sparse"]
# kinds with an event loop the in-process client can share (servers.py --inproc)
INPROC_SERVERS = {NB, AS, OV, "asyncio-protocol", "asyncio-streams", "uvloop-protocol",
                  "uvloop-streams", "qtcp", "raw-notifier", "raw-epoll"}

# scenario parameters: (default, quick)
PARAMS = {
    "ping": ({"n": 10000}, {"n": 1000}),
    "inproc": ({"n": 20000}, {"n": 2000}),
    # bulk: one transfer takes a fifth of a second and its speed swings 2-3x with where the
    # scheduler puts the two processes; each run takes the median of `repeat` fresh servers
    "bulk": ({"mb": 256, "repeat": 3}, {"mb": 16, "repeat": 1}),
    "conc": ({"clients": 200, "msgs": 200}, {"clients": 20, "msgs": 50}),
    "conn": ({"count": 3000, "inflight": 8}, {"count": 300, "inflight": 8}),
    "idle": ({"idle": 10000, "active": 100, "msgs": 100},
             {"idle": 500, "active": 10, "msgs": 20}),
    # sparse: one busy client among idle ones, a chat server's shape (each wake has one message)
    "sparse": ({"idle": 100, "msgs": 10000}, {"idle": 20, "msgs": 1000}),
}

# metric -> (label, unit, higher is better)
METRICS = {
    "ping": ("(1) ping-pong, 64 B", "round trips/s", True),
    "ping_cpu": ("(1) ping-pong, 64 B: server CPU per round trip", "us", False),
    "ping_inproc": ("(1b) ping-pong, 64 B, client in the server's own event loop",
                    "round trips/s", True),
    "bulk_oneway": ("(2) bulk one way (sink)", "MB/s", True),
    "bulk_cpu": ("(2) bulk one way: server CPU per GiB received", "s", False),
    "bulk_echo": ("(2) bulk echoed", "MB/s", True),
    "conc": ("(3) 200 clients x 200 msgs", "msgs/s", True),
    "conn": ("(4) connect+echo+close", "conn/s", True),
    "idle_kb": ("(5) RSS per idle connection", "KB/conn", False),
    "idle_p50": ("(5) 100 active beside the idle: p50 latency", "us", False),
    "idle_p99": ("(5) 100 active beside the idle: p99 latency", "us", False),
    "idle_rate": ("(5) 100 active beside the idle: throughput", "msgs/s", True),
    "sparse": ("(6) one client beside 100 idle, 64 B", "round trips/s", True),
    "sparse_cpu": ("(6) one client beside 100 idle: server CPU per round trip", "us", False),
}


# ------------------------------------------------------------------------------ kinds, trees
TREES: dict[str, str] = {}  # --tree NAME=PATH: the other sockcomp source trees, by name
PIN: Optional[int] = None  # --one-core CPU: servers and load generator all run on that CPU


def _pinned() -> None:
    """preexec_fn of every server and load generator process under --one-core."""
    if PIN is not None:
        os.sched_setaffinity(0, {PIN})


def base_kind(kind: str) -> str:
    """``sockcomp-nb@before`` -> ``sockcomp-nb``: the kind servers.py runs."""
    return kind.split("@", 1)[0]


def tree_of(kind: str) -> Optional[str]:
    """The source tree a kind imports sockcomp from; None for this tree."""
    return TREES[kind.split("@", 1)[1]] if "@" in kind else None


def server_env(kind: str) -> dict[str, str]:
    """The environment of a server process: for ``KIND@NAME``, PYTHONPATH with that tree in
    front and SOCKCOMP_BENCH_TREE naming it (servers.py puts it first on sys.path)."""
    env = dict(os.environ)
    env.pop("SOCKCOMP_BENCH_TREE", None)
    tree = tree_of(kind)
    if tree is not None:
        env["SOCKCOMP_BENCH_TREE"] = tree
        env["PYTHONPATH"] = tree + (os.pathsep + env["PYTHONPATH"]
                                    if env.get("PYTHONPATH") else "")
    return env


def check_tree(kind: str, where: str) -> None:
    """The sockcomp package a server imported (``where``, from its READY line) must be the
    one of the tree its kind names."""
    if not base_kind(kind).startswith("sockcomp"):
        return
    tree = tree_of(kind) or ROOT
    want = os.path.realpath(os.path.join(tree, "sockcomp"))
    if not where or os.path.realpath(where) != want:
        raise RuntimeError(f"server {kind} imported sockcomp from {where or '?'}, "
                           f"expected {want}")


def tree_fingerprint(tree: str) -> str:
    """sha1 (12 digits) over the tree's sockcomp/**/*.py: tells whether two trees differ."""
    h = hashlib.sha1()
    pkg = os.path.join(tree, "sockcomp")
    for dirpath, dirnames, filenames in sorted(os.walk(pkg)):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                h.update(os.path.relpath(path, pkg).encode() + b"\0")
                with open(path, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()[:12]


# ------------------------------------------------------------------------------ helpers
def build_loadgen() -> str:
    src = os.path.join(HERE, "loadgen.c")
    with open(src, "rb") as f:
        digest = hashlib.sha1(f.read()).hexdigest()[:12]
    exe = os.path.join(tempfile.gettempdir(), f"sockcomp-bench-loadgen-{digest}")
    if not os.path.exists(exe):
        cc = shutil.which("gcc") or shutil.which("cc")
        if cc is None:
            sys.exit("bench: the load generator needs gcc (or cc) to build bench/loadgen.c")
        subprocess.run([cc, "-O2", "-o", exe + ".tmp", src], check=True)
        os.replace(exe + ".tmp", exe)
    return exe


def free_port() -> int:
    """A port below 32768 such that it and the next one are free."""
    for _ in range(200):
        port = random.randrange(20000, 32000, 2)
        try:
            for p in (port, port + 1):
                with socket.socket() as s:
                    s.bind((HOST, p))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair below 32768")


def uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401
        return True
    except ImportError:
        return False


class Server:
    """One server process of a kind; started fresh for every measurement (which then runs
    its warm-up and measured passes against this one process)."""

    def __init__(self, kind: str, wrapper: tuple[str, ...] = ()) -> None:
        """``wrapper``: a command the server runs under (bench/instructions.py: valgrind)."""
        self.kind = kind
        self.err = tempfile.TemporaryFile()
        for _attempt in range(3):
            self.port = free_port()
            self.proc = subprocess.Popen(
                [*wrapper, sys.executable, os.path.join(HERE, "servers.py"), base_kind(kind),
                 str(self.port)],
                stdout=subprocess.PIPE, stderr=self.err, text=True, cwd=ROOT,
                env=server_env(kind), preexec_fn=_pinned)
            line = self.proc.stdout.readline() if self.proc.stdout else ""
            if line.startswith("READY"):
                fields = line.split()
                self.pid = int(fields[1])
                try:
                    check_tree(kind, fields[2] if len(fields) > 2 else "")
                except RuntimeError:
                    self.stop()
                    raise
                return
            self.proc.wait()
        raise RuntimeError(f"server {kind} did not start:\n{self.stderr()}")

    def stderr(self) -> str:
        self.err.seek(0)
        return self.err.read().decode(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


def loadgen(exe: str, *args: object, timeout: float = 180) -> dict:
    cmd = [exe, *map(str, args)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                         preexec_fn=_pinned)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {res.stderr.strip()}")
    return json.loads(res.stdout)


def cpu_seconds(pid: int, threaded: bool = False) -> float:
    """CPU time used by process ``pid``. Event-loop servers: the nanosecond run time of their
    threads (/proc/PID/task/*/schedstat). Thread-per-connection servers: user + system clock
    ticks, which keep the time of threads that have exited (schedstat leaves with the thread)
    but count in 10 ms steps."""
    if not threaded:
        try:
            total = 0
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            return total / 1e9
        except (OSError, ValueError, IndexError):
            pass  # no schedstat in this kernel: ticks
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Result = dict[str, float]  # metric -> value


def median_of(results: list[Result]) -> Result:
    return {m: statistics.median(r[m] for r in results) for m in results[0]}


def measure_inproc(kind: str, n: int, warm: bool, passes: int
                   ) -> tuple[Result, Optional[Result]]:
    """The in-process ping: ``servers.py KIND PORT --inproc N --passes P`` in a fresh process;
    warm: its first pass is the warm-up (discarded), the next ``passes`` are measured."""
    total = passes + 1 if warm else 1
    cmd = [sys.executable, os.path.join(HERE, "servers.py"), base_kind(kind), str(free_port()),
           "--inproc", str(n), "--passes", str(total)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=180 * total,
                         preexec_fn=_pinned,
                         env=server_env(kind))
    lines = [json.loads(ln) for ln in res.stdout.splitlines() if ln.startswith("{")]
    if res.returncode != 0 or len(lines) != total:
        raise RuntimeError(f"inproc on {kind}: exit {res.returncode}, {len(lines)} of {total} "
                           f"passes\n{res.stderr[-3000:]}")
    check_tree(kind, lines[0].get("sockcomp", ""))
    each = [{"ping_inproc": ln["value"]} for ln in lines]
    return (median_of(each[1:]), each[0]) if warm else (each[0], None)


def one_pass(exe: str, scenario: str, server: "Server", p: dict) -> Result:
    """Run one scenario once against a running server; metric -> value."""
    threaded = base_kind(server.kind) in THREADED
    if scenario == "ping":
        cpu0 = cpu_seconds(server.pid, threaded)
        r = loadgen(exe, "ping", HOST, server.port, p["n"], 64)
        trips = p["n"] + max(p["n"] // 10, 200)  # the warm-up trips count too
        return {"ping": r["value"],
                "ping_cpu": (cpu_seconds(server.pid, threaded) - cpu0) / trips * 1e6}
    if scenario == "bulk":
        nbytes = p["mb"] * 1024 * 1024
        cpu0 = cpu_seconds(server.pid, threaded)
        one = loadgen(exe, "bulk", HOST, server.port + 1, nbytes, "sink")
        cpu_one = cpu_seconds(server.pid, threaded) - cpu0
        echo = loadgen(exe, "bulk", HOST, server.port, nbytes, "echo")
        return {"bulk_oneway": one["value"], "bulk_echo": echo["value"],
                "bulk_cpu": cpu_one / (nbytes / 2**30)}
    if scenario == "conc":
        r = loadgen(exe, "conc", HOST, server.port, p["clients"], p["msgs"], 64)
        return {"conc": r["value"]}
    if scenario == "conn":
        r = loadgen(exe, "conn", HOST, server.port, p["count"], p["inflight"], 64)
        return {"conn": r["value"]}
    if scenario == "idle":
        r = loadgen(exe, "idle", HOST, server.port, p["idle"], p["active"], p["msgs"], 64,
                    server.pid)
        return {"idle_kb": r["value"], "idle_p50": r["p50_us"], "idle_p99": r["p99_us"],
                "idle_rate": r["active_msg_per_s"]}
    if scenario == "sparse":
        cpu0 = cpu_seconds(server.pid, threaded)
        r = loadgen(exe, "idle", HOST, server.port, p["idle"], 1, p["msgs"], 64, server.pid)
        return {"sparse": r["active_msg_per_s"],
                "sparse_cpu": (cpu_seconds(server.pid, threaded) - cpu0) / p["msgs"] * 1e6}
    raise ValueError(scenario)


def measure(exe: str, scenario: str, kind: str, p: dict, warm: bool = True,
            passes: int = 1) -> tuple[Result, Optional[Result]]:
    """One measurement of ``scenario`` on ``kind``: a fresh server process; when ``warm``, one
    warm-up pass of the same scenario with the same parameters against it (its result is
    returned second, for the record, and is not part of the figures), then ``passes``
    measured passes against the same process (their median is returned first). Not warm: the
    one pass against the fresh process (the cold figure). ``idle`` is always one pass: the
    load generator warms the server with 8 clients itself, and a second pass would measure
    the RSS of a server that has held 10,000 connections already."""
    if scenario == "inproc":
        return measure_inproc(kind, p["n"], warm, passes)
    if scenario == "bulk" and p.get("repeat", 1) > 1:
        # the median of `repeat` fresh servers, each warmed with a transfer each way first
        each = [measure(exe, scenario, kind, {**p, "repeat": 1}, warm, passes)
                for _ in range(p["repeat"])]
        warmups = [w for _r, w in each if w is not None]
        return median_of([r for r, _w in each]), median_of(warmups) if warmups else None
    server = Server(kind)
    try:
        if scenario == "idle":
            return one_pass(exe, scenario, server, p), None
        warmup = one_pass(exe, scenario, server, p) if warm else None
        results = [one_pass(exe, scenario, server, p) for _ in range(passes if warm else 1)]
        return median_of(results), warmup
    except Exception as exc:
        raise RuntimeError(
            f"{scenario} on {kind}: {exc}\nserver stderr:\n{server.stderr()}") from exc
    finally:
        server.stop()


def servers_for(scenario: str, servers: list[str]) -> list[str]:
    if scenario == "idle":  # one non-blocking server holding them all: no thread-per-connection
        return [s for s in servers if base_kind(s) not in THREADED]
    if scenario == "inproc":  # needs an event loop to share with the client
        return [s for s in servers if base_kind(s) in INPROC_SERVERS]
    return servers


# ------------------------------------------------------------------------------ machine
def machine() -> dict[str, str]:
    info = {"python": sys.version.split()[0], "platform": platform.platform()}
    try:
        with open("/proc/cpuinfo") as f:
            models = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        info["cpu"] = f"{models[0]} x {len(models)}" if models else platform.processor()
    except OSError:
        info["cpu"] = platform.processor()
    info["cores"] = str(os.cpu_count())
    try:
        with open("/proc/meminfo") as f:
            info["memory"] = f.readline().split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        import PySide6
        info["PySide6"] = PySide6.__version__
    except ImportError:
        pass
    try:
        import uvloop
        info["uvloop"] = uvloop.__version__
    except ImportError:
        info["uvloop"] = "not installed"
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
        info["compiler"] = out.splitlines()[0] if out else cc
    return info


#: Share of all CPUs busy (steal included) just before a run, below which the machine counts
#: as otherwise idle.
QUIET_BUSY = 0.10


def _cpu_times() -> Optional[list[int]]:
    try:
        with open("/proc/stat") as f:
            return [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def cpu_busy(seconds: float = 2.0) -> Optional[tuple[float, float]]:
    """(busy, steal): the share of all CPUs' time that was busy, and the share the hypervisor
    stole, over ``seconds`` now (``/proc/stat``; None where there is none). The load average
    is no such measure: it counts runnable and waiting threads, so a benchmark that ran 200
    worker threads a minute earlier still shows in it while the CPUs are idle."""
    first = _cpu_times()
    time.sleep(seconds)
    second = _cpu_times()
    if not first or not second or len(first) < 8:
        return None
    delta = [b - a for a, b in zip(first, second, strict=True)]
    total = sum(delta[:8])  # user nice system idle iowait irq softirq steal
    if total <= 0:
        return None
    idle = delta[3] + delta[4]
    return 1 - idle / total, delta[7] / total


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


# ------------------------------------------------------------------------------ report
def fmt(v: Optional[float]) -> str:
    if v is None:
        return "—"
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    return f"{v:.2f}"


def ratio(a: Optional[float], b: Optional[float]) -> str:
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}x"


def tables(med: dict, raw: dict, servers: list[str]) -> str:
    lines = []
    for metric, (label, unit, higher) in METRICS.items():
        if metric not in med:
            continue
        row = med[metric]
        better = "higher is better" if higher else "lower is better"
        lines += [f"### {label} — {unit}, {better}", "",
                  f"| server | median | runs | {NB} ÷ server | {AS} ÷ server | "
                  f"{OV} ÷ server | {TH} ÷ server |",
                  "|---|---:|---|---:|---:|---:|---:|"]
        for s in servers:
            if s not in row:
                continue
            runs = ", ".join(fmt(v) for v in raw[metric][s])
            lines.append(f"| {s} | {fmt(row[s])} | {runs} | {ratio(row.get(NB), row[s])} | "
                         f"{ratio(row.get(AS), row[s])} | {ratio(row.get(OV), row[s])} | "
                         f"{ratio(row.get(TH), row[s])} |")
        lines.append("")
    return "\n".join(lines)


#: Confidence of the interval around each goal's ratio (two-sided).
CONFIDENCE = 0.90


def median_interval(values: list[float],
                    confidence: float = CONFIDENCE) -> Optional[tuple[float, float]]:
    """A distribution-free interval for the median of ``values``: the order statistics
    x(k) and x(n+1-k) with k the largest rank for which a binomial(n, 1/2) falls below k with
    probability at most (1 - confidence) / 2. None with fewer than 5 values (no such k)."""
    n = len(values)
    tail = (1 - confidence) / 2
    k, below = 0, 0.0
    while True:
        below_next = below + math.comb(n, k) / 2 ** n  # P(Binomial(n, 1/2) <= k)
        if below_next > tail:
            break
        below, k = below_next, k + 1
    if k == 0:
        return None
    ordered = sorted(values)
    return ordered[k - 1], ordered[n - k]


def paired_ratios(raw: dict, metric: str, a: str, b: str) -> list[float]:
    """``a ÷ b`` for each run in which both were measured. The servers of one run are
    measured minutes apart at most, so a run's ratio cancels the machine's speed of that
    moment, which the medians of each server taken apart do not."""
    row = raw.get(metric, {})
    va, vb = row.get(a, []), row.get(b, [])
    if not va or len(va) != len(vb):
        return []
    return [x / y for x, y in zip(va, vb, strict=True) if y]


def goals(med: dict, raw: Optional[dict] = None) -> list[tuple[str, str, str]]:
    """(goal, measured, verdict) for every goal whose inputs were measured.

    A ratio is the median of the runs' paired ratios (:func:`paired_ratios`), shown with its
    interval (:func:`median_interval`) when there are 5 runs or more. The verdict is "holds"
    when the whole interval is on the goal's side of the line, "MISSED" when all of it is
    below, and "not shown" when the line is inside it (the runs cannot tell). Without runs to
    pair, the ratio of the medians and a plain comparison."""
    out = []

    def r(metric: str, a: str, b: str) -> Optional[tuple[float, Optional[tuple[float, float]]]]:
        ratios = paired_ratios(raw or {}, metric, a, b)
        if ratios:
            return statistics.median(ratios), median_interval(ratios)
        row = med.get(metric, {})
        if a in row and b in row and row[b]:
            return row[a] / row[b], None
        return None

    def add(goal: str, value: Optional[tuple[float, Optional[tuple[float, float]]]],
            line: float) -> None:
        if value is None:
            return
        v, interval = value
        if interval is None:
            out.append((goal, f"{v:.2f}x", "holds" if v >= line else "MISSED"))
            return
        lo, hi = interval
        verdict = "holds" if lo >= line else "MISSED" if hi < line else "not shown"
        out.append((goal, f"{v:.2f}x ({lo:.2f}–{hi:.2f})", verdict))

    # issue 20's goals: "must" first, then "aim"; each for every way of writing handlers
    handlers = ((NB, "signals connected"), (AS, "handlers assigned"), (OV, "overridden methods"))
    for kind, how in handlers:
        add(f"must: 200-client echo at least 1.0x asyncio Protocol ({how})",
            r("conc", kind, "asyncio-protocol"), 1.0)
    for kind, how in handlers:
        add(f"must: connection rate at least 1.0x asyncio Protocol ({how})",
            r("conn", kind, "asyncio-protocol"), 1.0)
    for metric, name in (("bulk_echo", "echoed"), ("bulk_oneway", "one way")):
        add(f"must: bulk ({name}) at least 0.9x the raw notifier floor",
            r(metric, NB, "raw-notifier"), 0.9)
    for metric, name in (("conc", "200 clients"), ("conn", "connection rate")):
        add(f"must: thread-blocking server at least 1.0x ThreadingTCPServer ({name})",
            r(metric, TH, "threading-tcpserver"), 1.0)
    for kind, how in handlers:
        add(f"must: single-connection round trip at least 2x asyncio Protocol ({how})",
            r("ping", kind, "asyncio-protocol"), 2.0)
    for metric, name in (("conc", "200-client echo"), ("conn", "connection rate")):
        for kind, how in handlers:
            add(f"aim: {name} at least 1.0x uvloop Protocol ({how})",
                r(metric, kind, "uvloop-protocol"), 1.0)
    kb = med.get("idle_kb", {}).get(NB)
    if kb is not None:
        out.append(("must: 10,000 idle connections under 5 KB RSS each", f"{kb:.2f} KB/conn",
                    "holds" if kb < 5 else "MISSED"))
    return out


def method(args) -> str:
    """How each measurement was taken, for the write-up."""
    if args.cold:
        return ("a fresh server process per measurement and a single pass against it "
                "(--cold: the server is measured cold, its first pass)")
    passes = (f"the median of {args.passes} measured passes" if args.passes > 1
              else "the measured pass")
    return ("a fresh server process per measurement, then one warm-up pass of the same "
            "scenario with the same parameters against it (result discarded; for bulk each "
            "of the fresh servers is warmed with a transfer each way; idle keeps the load "
            f"generator's own 8-client warm-up), then {passes} against the same process")


def report(args, p: dict, med: dict, raw: dict, servers: list[str], info: dict,
           load_before: str, load_after: str, elapsed: float, command: str,
           med_cold: Optional[dict] = None, raw_cold: Optional[dict] = None,
           trees: Optional[dict[str, str]] = None,
           busy_before: Optional[tuple[float, float]] = None) -> str:
    quiet = busy_before is not None and busy_before[0] < QUIET_BUSY
    busy = ("" if busy_before is None else
            f"CPUs {busy_before[0]:.0%} busy ({busy_before[1]:.0%} stolen by the hypervisor) "
            "in the 2 s before the run, ")
    lines = [
        "# sockcomp benchmarks",
        "",
        ("Measured on a 2-core VM that was otherwise idle: " if quiet else
         "**PRELIMINARY.** Measured while other work was running on the machine: ")
        + busy + f"load average {load_before} at the start and {load_after} at the end "
        "(1/5/15 min; the benchmark itself keeps two processes busy, and the load average also "
        "counts threads that only wait). Absolute numbers on a VM swing from "
        "minute to minute; the ratios, measured in the same run with the same load generator "
        "and interleaved, are the point."
        + ("" if quiet else " Re-run on a quiet machine before drawing conclusions."),
        "",
        f"Command: `{command}` (from the repository root; {elapsed:.0f} s). "
        "How it works and what each scenario does: [bench/README.md](../bench/README.md).",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in info.items()) + ".",
        "",
        "Parameters: " + "; ".join(f"{k} {v}" for k, v in p.items())
        + f"; median of {args.runs} interleaved runs; {method(args)}."
        " Ratios are sockcomp ÷ server (for latency and KB/conn lower is better, so a ratio "
        "below 1 is sockcomp ahead).",
        "",
    ]
    if PIN is not None:
        lines += [f"Every server and the load generator ran on CPU {PIN} alone (`--one-core`): "
                  "the figures are the work of the pair per message, without the wake-ups "
                  "across CPUs that the default placement pays.", ""]
    if trees:
        lines += ["Source trees: `sockcomp-*` is this tree, " + ", ".join(
            f"`sockcomp-*@{name}` is {path}" for name, path in trees.items() if name)
            + " (each imported by its server process through PYTHONPATH; servers.py is this "
            "tree's). sockcomp/ sources, sha1 of the .py files: " + "; ".join(
                f"{name or 'this tree'} {tree_fingerprint(path)}"
                for name, path in trees.items())
            + ". In a `sockcomp-*@NAME` row the ratio columns compare this tree with that "
            "one.", ""]
    lines += [
        "## Goals (issue 20)",
        "",
        "Measured: the median over the runs of each run's ratio (sockcomp ÷ the peer, both "
        "measured in that run, so the machine's speed of the moment cancels), and with 5 runs "
        f"or more its {CONFIDENCE:.0%} interval (order statistics of the runs' ratios, no "
        "assumption about their distribution). Verdict: *holds* when the whole interval is on "
        "the goal's side of the line, *MISSED* when all of it is below, *not shown* when the "
        "line lies inside it: on this machine the runs cannot tell.",
        "",
        "| goal | measured | verdict |",
        "|---|---:|---|",
    ]
    for goal, measured, verdict in goals(med, raw):
        lines.append(f"| {goal} | {measured} | {verdict} |")
    lines += ["", "## Results", "", tables(med, raw, servers)]
    if med_cold:
        lines += ["## Cold: a fresh server process, first pass", "",
                  "The same scenarios measured the old way, in the same interleaved runs: a "
                  "fresh server process and a single pass against it, no warm-up. The idle "
                  "scenario is measured the same way in both modes and is in the table above "
                  "only.", "", tables(med_cold, raw_cold or {}, servers)]
    return "\n".join(lines)


def summary(med: dict, servers: list[str], title: str) -> str:
    """A compact console table of the medians: a row per server, a column per metric."""
    metrics = [m for m in METRICS if m in med]
    if not metrics:
        return ""
    width = max(len(s) for s in servers) + 2
    cols = [max(len(m), 10) for m in metrics]
    out = [title, "".ljust(width)
           + "  ".join(m.rjust(c) for m, c in zip(metrics, cols, strict=True))]
    for s in servers:
        if not any(s in med[m] for m in metrics):
            continue
        out.append(s.ljust(width) + "  ".join(fmt(med[m].get(s)).rjust(c)
                                              for m, c in zip(metrics, cols, strict=True)))
    return "\n".join(out)


def write_doc(path: str, text: str) -> None:
    kept = ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        if MARKER in old:
            kept = old.split(MARKER, 1)[1]
    with open(path, "w") as f:
        f.write(text.rstrip() + "\n\n" + MARKER + (kept if kept else "\n"))


# ------------------------------------------------------------------------------ main
def parse_trees(ap: argparse.ArgumentParser, specs: list[str]) -> dict[str, str]:
    trees: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or not path:
            ap.error(f"--tree {spec!r}: expected NAME=PATH (NAME of letters, digits, _ . -)")
        path = os.path.abspath(os.path.expanduser(path))
        if not os.path.isfile(os.path.join(path, "sockcomp", "__init__.py")):
            ap.error(f"--tree {spec!r}: no sockcomp/__init__.py under {path}")
        if name in trees:
            ap.error(f"--tree {name!r} given twice")
        trees[name] = path
    return trees


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small N, fast smoke run")
    ap.add_argument("--only", default=",".join(SCENARIOS),
                    help=f"comma-separated scenarios ({','.join(SCENARIOS)})")
    ap.add_argument("--servers", default="",
                    help=f"comma-separated server kinds (default: all installed; extra: "
                         f"{','.join(EXTRA_SERVERS)}; KIND@NAME for a --tree)")
    ap.add_argument("--runs", type=int, default=None, help="interleaved runs (default 3; 1 quick)")
    ap.add_argument("--passes", type=int, default=1,
                    help="measured passes per server process after the warm-up; a run's "
                         "figure is their median (default 1)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--cold", action="store_true",
                      help="no warm-up: a fresh server process and a single pass (the old way)")
    mode.add_argument("--cold-too", action="store_true",
                      help="measure warm and cold in the same interleaved runs; cold figures "
                           "in a table of their own")
    ap.add_argument("--tree", action="append", default=[], metavar="NAME=PATH",
                    help="also run the sockcomp kinds with sockcomp imported from the source "
                         "tree PATH, as KIND@NAME (repeatable): e.g. before=/work/before")
    ap.add_argument("--one-core", type=int, default=None, metavar="CPU",
                    help="run every server and the load generator on CPU alone (taskset): "
                         "the work of the pair per message, without cross-CPU wake-ups")
    ap.add_argument("--out", default=None,
                    help="markdown report path (default docs/benchmarks.md; not with --quick)")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--json", default=None, help="also write raw results as JSON here")
    args = ap.parse_args(argv)
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    if args.runs < 1 or args.passes < 1:
        ap.error("--runs and --passes must be at least 1")
    if args.cold and args.passes != 1:
        ap.error("--passes needs the warm mode (not --cold)")
    TREES.clear()
    TREES.update(parse_trees(ap, args.tree))
    global PIN
    PIN = args.one_core
    if PIN is not None and PIN not in os.sched_getaffinity(0):
        ap.error(f"--one-core {PIN}: no such CPU available to this process")
    scenarios = [s for s in args.only.split(",") if s]
    for s in scenarios:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s!r}")
    if args.servers:
        servers = [s for s in args.servers.split(",") if s]
        for s in servers:
            base, at, name = s.partition("@")
            if base not in ALL_SERVERS + EXTRA_SERVERS:
                ap.error(f"unknown server {s!r}")
            if at and (base not in SOCKCOMP_KINDS or name not in TREES):
                ap.error(f"{s!r}: KIND@NAME needs a sockcomp kind and --tree {name}=PATH")
        explicit = any("@" in s for s in servers)
    else:
        servers = [s for s in ALL_SERVERS if uvloop_available() or not s.startswith("uvloop")]
        explicit = False
    if not explicit:  # each sockcomp kind is followed by its KIND@NAME for every --tree
        servers = [k for s in servers for k in
                   [s] + ([f"{s}@{name}" for name in TREES] if s in SOCKCOMP_KINDS else [])]
    if len(set(servers)) != len(servers):
        ap.error("a server kind is listed twice")
    p = {s: PARAMS[s][1 if args.quick else 0] for s in scenarios}
    # the passes of one round: (label, warm); --cold-too measures both
    modes = [("cold", False)] if args.cold else [("warm", True)]
    if args.cold_too:
        modes.append(("cold", False))

    command = ".venv/bin/python -m bench" + "".join(
        f" {shlex.quote(a)}" for a in (argv or sys.argv[1:]))
    exe = build_loadgen()
    info = machine()
    load_before = loadavg()
    busy_before = cpu_busy()
    t_start = time.monotonic()
    print(f"sockcomp bench: scenarios {', '.join(scenarios)}; servers {', '.join(servers)}; "
          f"{args.runs} run(s); " + " and ".join(label for label, _w in modes)
          + (f", {args.passes} measured passes" if args.passes > 1 else "")
          + f"; load average {load_before}"
          + ("" if busy_before is None else f"; CPUs {busy_before[0]:.0%} busy"), flush=True)
    for name, path in TREES.items():
        print(f"  tree {name}: {path} (sockcomp sha1 {tree_fingerprint(path)}; this tree "
              f"{tree_fingerprint(ROOT)})", flush=True)
    # label -> metric -> kind -> values of the runs
    raw: dict[str, dict[str, dict[str, list[float]]]] = {label: {} for label, _w in modes}
    warmups: dict[str, dict[str, list[float]]] = {}  # the discarded warm-up passes
    for rnd in range(args.runs):
        for scenario in scenarios:
            kinds = servers_for(scenario, servers)
            shift = rnd % len(kinds) if kinds else 0
            # with --cold-too, alternate per round which of the two goes first
            order = modes if rnd % 2 == 0 else modes[::-1]
            for kind in kinds[shift:] + kinds[:shift]:
                for label, warm in order:
                    if label == "cold" and len(modes) > 1 and scenario == "idle":
                        continue  # idle is the same measurement in both modes
                    t0 = time.monotonic()
                    res, wu = measure(exe, scenario, kind, p[scenario], warm, args.passes)
                    for metric, value in res.items():
                        raw[label].setdefault(metric, {}).setdefault(kind, []).append(value)
                    for metric, value in (wu or {}).items():
                        warmups.setdefault(metric, {}).setdefault(kind, []).append(value)
                    shown = ", ".join(f"{m} {fmt(v)}" for m, v in res.items())
                    if wu:
                        shown += " (warm-up pass: " + ", ".join(
                            f"{fmt(v)}" for v in wu.values()) + ")"
                    print(f"  run {rnd + 1}/{args.runs} {label} {scenario:6} {kind:28} {shown} "
                          f"({time.monotonic() - t0:.1f} s)", flush=True)
    med_all = {label: {m: {k: statistics.median(v) for k, v in per.items()}
                       for m, per in by.items()} for label, by in raw.items()}
    primary = modes[0][0]
    med, raw_main = med_all[primary], raw[primary]
    med_cold = med_all.get("cold") if len(modes) > 1 else None
    raw_cold = raw.get("cold") if len(modes) > 1 else None
    elapsed = time.monotonic() - t_start
    trees = {"": ROOT, **TREES} if TREES else None
    text = report(args, p, med, raw_main, servers, info, load_before, loadavg(), elapsed,
                  command, med_cold, raw_cold, trees, busy_before)
    print()
    print(text)
    # last, where a focused run's reader looks: the medians in a compact table
    print()
    print(summary(med, servers, f"Medians ({primary}, {args.runs} run(s)):"))
    if med_cold:
        print()
        print(summary(med_cold, servers, f"Medians (cold, {args.runs} run(s)):"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"params": p, "mode": primary, "cold_too": bool(args.cold_too),
                       "passes": args.passes, "servers": servers,
                       "trees": {n: {"path": t, "sockcomp_sha1": tree_fingerprint(t)}
                                 for n, t in ({"this": ROOT, **TREES}).items()},
                       "raw": raw_main, "median": med, "warmup": warmups,
                       "raw_cold": raw_cold, "median_cold": med_cold, "machine": info,
                       "loadavg": [load_before, loadavg()], "cpu_busy_before": busy_before,
                       "command": command}, f, indent=1)
    out = args.out or (None if args.quick or args.no_write
                       else os.path.join(ROOT, "docs", "benchmarks.md"))
    if out and not args.no_write:
        write_doc(out, text)
        print(f"\nwritten to {os.path.relpath(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
