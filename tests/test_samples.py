"""The samples run as users run them: as separate processes, talking over loopback."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
ENV = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONUNBUFFERED="1")


def test_console_demo_holds_a_conversation() -> None:
    out = subprocess.run([sys.executable, str(SAMPLES / "chat_console.py")], env=ENV,
                         capture_output=True, text=True, timeout=60, encoding="utf-8")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "[bob sees] alice: hello, anyone here?" in lines
    assert "[alice sees] bob: hi alice — Grüße aus Köln 👋" in lines
    assert "[bob sees] alice: TClientSocket lives on in Python!" in lines
    assert lines.count("[alice] disconnected") == 1 and lines.count("[bob] disconnected") == 1


def test_headless_server_relays_between_plain_socket_clients() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, str(SAMPLES / "chat_console.py"), "--server", "--port", str(port)],
        env=ENV, stdout=subprocess.PIPE, text=True, encoding="utf-8")
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == f"listening on port {port}"
        with socket.create_connection(("127.0.0.1", port), timeout=10) as a, \
                socket.create_connection(("127.0.0.1", port), timeout=10) as b:
            # both are connected once the server has logged them
            assert "connected" in server.stdout.readline()
            assert "connected" in server.stdout.readline()
            a.sendall("nc: здравствуйте 🎉\n".encode())
            fa, fb = a.makefile(encoding="utf-8"), b.makefile(encoding="utf-8")
            assert fb.readline() == "nc: здравствуйте 🎉\n"
            assert fa.readline() == "nc: здравствуйте 🎉\n"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_headless_server_with_tls_relays_between_tls_clients(tmp_path) -> None:
    import ssl

    import trustme
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, str(SAMPLES / "chat_server.py"), "--no-gui", "--port", str(port),
         "--tls-cert", str(cert_file), "--tls-key", str(key_file)],
        env=ENV, stdout=subprocess.PIPE, text=True, encoding="utf-8")
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == f"listening on port {port}"
        raw_a = socket.create_connection(("127.0.0.1", port), timeout=10)
        raw_b = socket.create_connection(("127.0.0.1", port), timeout=10)
        with context.wrap_socket(raw_a, server_hostname="localhost") as a, \
                context.wrap_socket(raw_b, server_hostname="localhost") as b:
            assert "connected" in server.stdout.readline()  # after each TLS handshake
            assert "connected" in server.stdout.readline()
            a.sendall("tls: 秘密のメッセージ\n".encode())
            assert b.makefile(encoding="utf-8").readline() == "tls: 秘密のメッセージ\n"
    finally:
        server.terminate()
        server.wait(timeout=10)
