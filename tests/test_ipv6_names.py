"""A host *name* that resolves only to IPv6 (not just the '::1' literal).

The machine's /etc/hosts has no such name, and a test must not edit it. `ip netns exec`
overlays /etc/netns/<ns>/hosts onto /etc/hosts inside the namespace, so the test gives a fresh
namespace its own hosts file where ``sockcomp-v6.test`` is ``::1`` only, and runs a sockcomp
server and client there: the client looks the name up off-thread, connects over IPv6, and both
sides report proper address text.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
from PySide6.QtCore import QCoreApplication, QTimer
from sockcomp import ClientSocket, ServerSocket
app = QCoreApplication([])
out = {}
srv = ServerSocket(); srv.Address, srv.Port = "::1", 0
srv.OnClientRead.connect(lambda s, sock: (out.__setitem__("server_saw", sock.RemoteAddress),
                                          sock.SendText(sock.ReceiveText().upper())))
srv.Open()
cli = ClientSocket(); cli.Host, cli.Port = "sockcomp-v6.test", srv.Socket.LocalPort
events = []
for name in ("OnLookup", "OnConnecting", "OnConnect", "OnRead", "OnError"):
    getattr(cli, name).connect(lambda *a, n=name: events.append(n))
cli.OnConnect.connect(lambda s, sock: (out.update(local=sock.LocalAddress,
                                                  remote=sock.RemoteAddress),
                                       sock.SendText("over ipv6")))
cli.OnRead.connect(lambda s, sock: (out.__setitem__("reply", sock.ReceiveText()), app.quit()))
cli.Open()
QTimer.singleShot(10000, app.quit)
app.exec()
out["events"] = events
print(json.dumps(out))
"""


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_client_connects_to_a_name_that_resolves_only_to_ipv6() -> None:
    if shutil.which("ip") is None or os.geteuid() != 0:
        pytest.skip("needs root and iproute2 to create a network namespace")
    ns = f"sc6{uuid.uuid4().hex[:6]}"
    if run("ip", "netns", "add", ns).returncode != 0:
        pytest.skip("the kernel refuses network namespaces here")
    etc = Path("/etc/netns") / ns
    try:
        etc.mkdir(parents=True)
        (etc / "hosts").write_text("127.0.0.1 localhost\n::1 sockcomp-v6.test\n")
        assert run("ip", "-n", ns, "link", "set", "lo", "up").returncode == 0
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
        result = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", SCRIPT,
                                 str(ROOT)], capture_output=True, text=True, timeout=60, env=env)
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout.strip().splitlines()[-1])
        assert out["events"] == ["OnLookup", "OnConnecting", "OnConnect", "OnRead"]
        assert out["remote"] == "::1" and out["local"] == "::1" and out["server_saw"] == "::1"
        assert out["reply"] == "OVER IPV6"
    finally:
        run("ip", "netns", "del", ns)
        shutil.rmtree(etc, ignore_errors=True)
