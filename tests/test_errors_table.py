"""WSA codes: ported ``if ErrorCode = 10054`` code must keep working on every platform."""
from __future__ import annotations

import errno
import os
import socket

import pytest

from sockcomp.errors import ESocketError, HandleException, SetExceptionHook, wsa_code


@pytest.mark.parametrize(("native", "wsa"), [
    (errno.ECONNREFUSED, 10061), (errno.ECONNRESET, 10054), (errno.EPIPE, 10054),
    (errno.ETIMEDOUT, 10060), (errno.EADDRINUSE, 10048), (errno.EADDRNOTAVAIL, 10049),
    (errno.ENETUNREACH, 10051), (errno.EHOSTUNREACH, 10065), (errno.ECONNABORTED, 10053),
    (errno.EMFILE, 10024), (errno.ENOTCONN, 10057),
])
def test_errno_maps_to_wsa(native: int, wsa: int) -> None:
    assert wsa_code(OSError(native, "x")) == wsa


def test_lookup_errors_map_to_wsa() -> None:
    assert wsa_code(socket.gaierror(socket.EAI_NONAME, "x")) == 11001
    assert wsa_code(socket.gaierror(socket.EAI_SERVICE, "x")) == 10109
    assert wsa_code(socket.gaierror(socket.EAI_AGAIN, "x")) == 11002


def test_message_uses_platform_text() -> None:
    refused = ConnectionRefusedError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED))
    err = ESocketError.from_os_error(refused, "connect")
    assert str(err) == ("Windows socket error: Connection refused (10061), on API 'connect'")
    assert err.errno == errno.ECONNREFUSED


def test_async_message_keeps_the_vcl_prefix() -> None:
    err = ESocketError.asynchronous(10054, "recv", native_errno=errno.ECONNRESET)
    assert str(err) == ("Asynchronous socket error 10054: Connection reset by peer, "
                        "on API 'recv'")
    assert (err.ErrorCode, err.errno, err.API) == (10054, errno.ECONNRESET, "recv")


def test_a_failing_hook_does_not_escape(capsys: pytest.CaptureFixture[str]) -> None:
    def broken(exc: BaseException) -> None:
        raise RuntimeError("hook broke")

    import sys
    previous_excepthook = sys.excepthook
    seen: list[BaseException] = []
    sys.excepthook = lambda t, e, tb: seen.append(e)
    previous = SetExceptionHook(broken)
    try:
        HandleException(ESocketError("x"))
    finally:
        SetExceptionHook(previous)
        sys.excepthook = previous_excepthook
    assert [str(e) for e in seen] == ["hook broke"]


def test_set_exception_hook_returns_previous_and_none_restores_default() -> None:
    first: list[BaseException] = []
    original = SetExceptionHook(first.append)
    assert SetExceptionHook(None) == first.append
    restored = SetExceptionHook(original)
    assert restored is not first.append


def test_last_error_is_readable_inside_onerror(qtbot, hook) -> None:
    from sockcomp import ClientSocket
    from tests.util import free_port
    cli = ClientSocket()
    cli.Address, cli.Port = "127.0.0.1", free_port()
    seen: list[tuple[int, int, str]] = []
    cli.OnError.connect(lambda s, sock, e, code: seen.append(
        (sock.LastError.ErrorCode, sock.LastError.errno, sock.LastError.API)))
    cli.Open()
    qtbot.waitUntil(lambda: bool(seen) and bool(hook), timeout=5000)
    assert seen == [(10061, errno.ECONNREFUSED, "connect")]
    assert "Connection refused" in cli.Socket.LastErrorMessage
