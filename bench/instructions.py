"""User-space instructions per message and per connection, counted by valgrind: a figure that
does not move with the machine's load.

    python bench/instructions.py                       # the default servers, conc and conn
    python bench/instructions.py --servers sockcomp-nb-assigned,asyncio-protocol --only conc
    python bench/instructions.py --tree before=/path/to/other/checkout \\
        --servers sockcomp-thread,sockcomp-thread@before          # before/after
    python bench/instructions.py --cache --only conc               # also cache misses (below)

Wall-clock rates on a shared VM swing by a third from one minute to the next (docs/
benchmarks.md); the number of instructions a server executes for the same work does not.
Each server runs under ``valgrind --tool=callgrind`` (everything it executes in user space:
Python, Qt, PySide, libc; not the kernel). After a warm-up pass, the counters are zeroed, a
small pass runs, the counters are dumped; zeroed again, a large pass, dumped. The difference
between the two, divided by the difference in work, is the marginal cost of one unit, free
of start-up and of each pass's fixed costs:

* ``conc``: 200 clients doing S then L sequential 64-byte round trips each (the difference
  is 200 x (L - S) messages; the connections are opened in both passes and cancel out);
* ``conn``: S then L connections (connect, one 64-byte echo, close), 8 in flight.

Valgrind runs the threads of a process one at a time, so for the thread-per-connection
servers the count includes the GIL hand-overs as valgrind schedules them: compare such a
server with another thread-per-connection server, not with an event loop. The kernel's
share (the system calls, the same for every server here: strace) is not counted. Needs
valgrind (``apt-get install valgrind``); a run takes a few minutes per server.

``--cache`` adds callgrind's cache simulation: first-level misses (``D1mr``, ``D1mw``,
``I1mr``), and data misses beyond a last level given the size of this machine's *second*
level (``DLmr``, ``DLmw``). The second tells whether the data one message touches across 200
connections still fits in L2; a miss there costs tens of cycles more than one the L2 serves.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run  # noqa: E402  (the harness: servers, load generator, trees)

DEFAULT_SERVERS = ["sockcomp-nb", "sockcomp-nb-assigned", "sockcomp-nb-override",
                   "asyncio-protocol", "uvloop-protocol", "qtcp", "raw-notifier",
                   "sockcomp-thread", "threading-tcpserver"]
# scenario -> (load generator arguments for n units, small n, large n, units of n, unit)
SCENARIOS = {
    "conc": (lambda n: ("conc", run.HOST, "{port}", 200, n, 64), 20, 120, 200, "message"),
    "conn": (lambda n: ("conn", run.HOST, "{port}", n, 8, 64), 200, 1200, 1, "connection"),
}


#: ``--cache``: callgrind also simulates the caches; these events are reported per unit. The
#: first level is the machine's; callgrind's last level is set to the size of the machine's
#: *second* level (:func:`l2_geometry`), so ``DLmr``/``DLmw`` count the data that a message
#: touches and a 200-connection working set no longer holds in L2: each such miss goes to L3
#: or memory, an order of magnitude dearer than a first-level miss served by L2.
CACHE_EVENTS = ("D1mr", "D1mw", "I1mr", "DLmr", "DLmw")


def l2_geometry() -> str | None:
    """This machine's level-2 cache as callgrind's ``--LL`` value (``size,ways,line`` in
    bytes), from Linux's sysfs; None where it cannot be read (callgrind's default, the real
    last level, is used then)."""
    base = "/sys/devices/system/cpu/cpu0/cache"

    def read(index: str, name: str) -> str:
        with open(os.path.join(base, index, name)) as f:
            return f.read().strip()

    try:
        for index in sorted(os.listdir(base)):
            if not index.startswith("index"):
                continue
            if read(index, "level") == "2" and read(index, "type") in ("Unified", "Data"):
                size = read(index, "size")
                scale = {"K": 1024, "M": 1024 * 1024}.get(size[-1:], 1)
                size_bytes = int(size.rstrip("KM")) * scale
                return (f"{size_bytes},{read(index, 'ways_of_associativity')},"
                        f"{read(index, 'coherency_line_size')}")
    except (OSError, ValueError):
        return None
    return None


def _totals(path: str) -> dict[str, int]:
    """The ``totals:`` line of a callgrind dump, by event (``Ir``: instructions executed)."""
    events: list[str] = []
    with open(path) as f:
        for line in f:
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("totals:"):
                counts = dict.fromkeys(events, 0)  # callgrind leaves out trailing zeros
                counts.update(zip(events, map(int, line.split()[1:]), strict=False))
                return counts
    raise RuntimeError(f"no totals in {path}")


def _dump(pid: int, outdir: str, label: str) -> dict[str, int]:
    """Dump the running server's counters (then zero them); returns the totals by event."""
    before = set(os.listdir(outdir))
    subprocess.run(["callgrind_control", f"--dump={label}", str(pid)], check=True,
                   capture_output=True)
    for _ in range(600):
        new = sorted(set(os.listdir(outdir)) - before)
        if new:
            time.sleep(0.2)  # the file is written in one go; let it finish
            return _totals(os.path.join(outdir, new[-1]))
        time.sleep(0.1)
    raise RuntimeError(f"callgrind did not dump {label}")


def measure(exe: str, kind: str, scenario: str, cache: bool = False) -> dict[str, float]:
    """Marginal user-space instructions (``Ir``; with ``cache``, also the simulated cache
    misses of :data:`CACHE_EVENTS`) per unit of ``scenario`` on server ``kind``."""
    args_of, small, large, per, _unit = SCENARIOS[scenario]
    outdir = tempfile.mkdtemp(prefix="sockcomp-callgrind-")
    l2 = l2_geometry() if cache else None
    wrapper = ("valgrind", "--tool=callgrind", f"--callgrind-out-file={outdir}/cg.%p",
               "--dump-instr=no", "--collect-atstart=yes") + \
        (("--cache-sim=yes",) if cache else ()) + ((f"--LL={l2}",) if l2 else ())
    server = run.Server(kind, wrapper)
    try:
        def load(n: int) -> None:
            args = [str(a).replace("{port}", str(server.port)) for a in args_of(n)]
            run.loadgen(exe, *args, timeout=1800)

        load(small)  # warm-up
        subprocess.run(["callgrind_control", "-z", str(server.pid)], check=True,
                       capture_output=True)
        load(small)
        first = _dump(server.pid, outdir, "small")  # dumping zeroes the counters
        load(large)
        second = _dump(server.pid, outdir, "large")
    finally:
        server.stop()
        shutil.rmtree(outdir, ignore_errors=True)
    return {event: (second[event] - first[event]) / ((large - small) * per)
            for event in second}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--servers", default=",".join(DEFAULT_SERVERS))
    ap.add_argument("--only", default=",".join(SCENARIOS), help="conc, conn or both")
    ap.add_argument("--tree", action="append", default=[], metavar="NAME=PATH",
                    help="add KIND@NAME servers importing sockcomp from PATH (as bench/run.py)")
    ap.add_argument("--cache", action="store_true",
                    help="also simulate the caches: misses per unit (" +
                    ", ".join(CACHE_EVENTS) + "; DL: beyond an L2 of this machine's "
                    "size); slower")
    args = ap.parse_args(argv)
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        ap.error("needs valgrind (apt-get install valgrind)")
    run.TREES.update(run.parse_trees(ap, args.tree))
    scenarios = [s for s in args.only.split(",") if s]
    for s in scenarios:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s!r} (conc, conn)")
    servers = [s for s in args.servers.split(",") if s]
    exe = run.build_loadgen()
    print(f"# user-space instructions (valgrind callgrind), Python {sys.version.split()[0]}")
    if args.cache:
        l2 = l2_geometry()
        print("# cache events: D1 = first level (data read/write misses), I1 = first-level "
              "instruction misses, DL = " +
              (f"data misses beyond a simulated L2 of this machine's size ({l2}: bytes, ways, "
               "line)" if l2 else "last-level data misses (callgrind's default geometry)"))
    shown = ("Ir",) + (CACHE_EVENTS if args.cache else ())
    print("| server | " + " | ".join(
        f"{s}: {event + ' ' if event != 'Ir' else ''}per {SCENARIOS[s][4]}"
        for s in scenarios for event in shown) + " |")
    print("|---|" + "---:|" * (len(scenarios) * len(shown)))
    for kind in servers:
        cells = []
        for s in scenarios:
            counts = measure(exe, kind, s, args.cache)
            cells += [f"{counts[event]:,.0f}" if event == "Ir" else f"{counts[event]:,.1f}"
                      for event in shown]
        print(f"| {kind} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
