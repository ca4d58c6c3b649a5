"""A peer that vanishes without a word (cable pulled) is noticed by keepalive.

Two network namespaces joined by a veth pair; the sockcomp side runs in one (as a subprocess
printing its events), a plain peer in the other. Once the connection is idle the peer's link goes
down, and the sockcomp side must report OnError(eeDisconnect, 10060) then the disconnect within
KeepAliveTime + count x interval (1 s + 2 x 0.5 s) plus a margin. No packet leaves the namespaces.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

PROBE = Path(__file__).with_name("vanish_probe.py")
PEER_SERVER = """
import socket, sys
s = socket.create_server(("10.231.0.2", 7777))
print("ready", flush=True)
c, _ = s.accept()
c.sendall(b"hello")
c.recv(100)  # blocks: the link goes down under it
"""
PEER_CLIENT = """
import socket, sys
c = socket.create_connection(("10.231.0.1", 7777))
print("ready", flush=True)
c.sendall(b"hello")
c.recv(100)
"""
DETECTION_BOUND = 1.0 + 2 * 0.5
MARGIN = 2.5


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


@pytest.fixture
def namespaces():
    if shutil.which("ip") is None or os.geteuid() != 0:
        pytest.skip("needs root and iproute2 to create network namespaces")
    tag = uuid.uuid4().hex[:6]
    a, b = f"sca{tag}", f"scb{tag}"
    va, vb = f"va{tag}", f"vb{tag}"
    if run("ip", "netns", "add", a).returncode != 0:
        pytest.skip("the kernel refuses network namespaces here")
    try:
        steps = [
            ("ip", "netns", "add", b),
            ("ip", "link", "add", va, "type", "veth", "peer", "name", vb),
            ("ip", "link", "set", va, "netns", a), ("ip", "link", "set", vb, "netns", b),
            ("ip", "-n", a, "addr", "add", "10.231.0.1/24", "dev", va),
            ("ip", "-n", b, "addr", "add", "10.231.0.2/24", "dev", vb),
            ("ip", "-n", a, "link", "set", va, "up"), ("ip", "-n", b, "link", "set", vb, "up"),
            ("ip", "-n", a, "link", "set", "lo", "up"), ("ip", "-n", b, "link", "set", "lo", "up"),
        ]
        for step in steps:
            result = run(*step)
            assert result.returncode == 0, (step, result.stderr)
        yield {"a": a, "b": b, "vb": vb}
    finally:
        run("ip", "netns", "del", a)
        run("ip", "netns", "del", b)


def events_until(proc: subprocess.Popen[str], last: str, timeout: float) -> list[dict]:
    assert proc.stdout is not None
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        event = json.loads(line)
        seen.append(event)
        if event["event"] == last:
            return seen
    raise AssertionError(f"no {last} within {timeout} s; saw {seen}")


@pytest.mark.parametrize("role", ["client-nonblocking", "client-blocking", "server"])
def test_keepalive_notices_a_vanished_peer(namespaces, role: str) -> None:
    ns = namespaces
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONUNBUFFERED="1")
    peer_code, sc_args = (PEER_CLIENT, ["10.231.0.1", "7777"]) if role == "server" else \
        (PEER_SERVER, ["10.231.0.2", "7777"])
    sc_ns = ns["a"]
    probe = peer = None
    try:
        if role == "server":
            probe = subprocess.Popen(["ip", "netns", "exec", sc_ns, sys.executable, str(PROBE),
                                      role, *sc_args], stdout=subprocess.PIPE, text=True, env=env)
            events_until(probe, "OnListen", 20)
            peer = subprocess.Popen(["ip", "netns", "exec", ns["b"], sys.executable, "-c",
                                     peer_code], stdout=subprocess.PIPE, text=True, env=env)
            connected = events_until(probe, "OnClientRead", 20)
        else:
            peer = subprocess.Popen(["ip", "netns", "exec", ns["b"], sys.executable, "-c",
                                     peer_code], stdout=subprocess.PIPE, text=True, env=env)
            assert peer.stdout is not None and peer.stdout.readline().strip() == "ready"
            probe = subprocess.Popen(["ip", "netns", "exec", sc_ns, sys.executable, str(PROBE),
                                      role, *sc_args], stdout=subprocess.PIPE, text=True, env=env)
            connected = events_until(probe, "read" if role == "client-blocking" else "OnRead", 20)
        assert any("hello" in str(e.get("data")) for e in connected)
        # the connection is idle now; pull the cable on the peer's side
        assert run("ip", "-n", ns["b"], "link", "set", ns["vb"], "down").returncode == 0
        pulled = time.monotonic()
        last = {"server": "OnClientDisconnect", "client-nonblocking": "OnDisconnect",
                "client-blocking": "raised"}[role]
        ending = events_until(probe, last, DETECTION_BOUND + MARGIN + 5)
        names = [e["event"] for e in ending]
        error_name = "OnClientError" if role == "server" else "OnError"
        error = next(e for e in ending if e["event"] == error_name)
        # non-blocking: the broken connection is an eeDisconnect (FD_CLOSE with an error);
        # blocking: the read that failed is an eeReceive (ReceiveBuf's category in the VCL)
        expected_ee = 2 if role == "client-blocking" else 4
        assert (error["ee"], error["code"]) == (expected_ee, 10060)  # WSAETIMEDOUT
        disconnect = "OnClientDisconnect" if role == "server" else "OnDisconnect"
        assert names.index(error_name) < names.index(disconnect)
        if role == "client-blocking":
            assert ending[-1] == {"event": "raised", "code": 10060, "t": ending[-1]["t"]}
        detected = error["t"] - pulled
        assert detected <= DETECTION_BOUND + MARGIN, f"took {detected:.2f} s"
    finally:
        for proc in (probe, peer):
            if proc is not None:
                proc.kill()
                proc.wait(10)
