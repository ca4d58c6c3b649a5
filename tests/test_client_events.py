"""ClientSocket events and properties: reference checklist C1–C14 in their fixed form.

What each test pins is the contract in /work/api-contract.md (reference/scktcomp.md §5 and §11,
with the original's bugs fixed as DESIGN.md §1.5 says): the exact event order, the state seen
inside the handlers, Host/Address and Service/Port precedence, bad property values, every
failure path (no address, unknown host or service, refused, reset) with exactly one
OnDisconnect, the exception hook, the deferred ``Active`` of a freshly created component, and
half-close.

The peer is a plain listening ``socket`` in the test's own thread: the kernel completes the
TCP handshake without ``accept()``, so the client connects while the test waits in the Qt loop
and the test accepts afterwards (at once, the connection is already queued). Transfers that
must run while the loop runs use a reader thread.
"""
from __future__ import annotations

import errno
import io
import os
import re
import socket
import struct
import threading
from typing import Any, Callable

import pytest

from sockcomp import (
    ClientSocket,
    ClientType,
    ErrorEvent,
    ESocketError,
    SetExceptionHook,
    Var,
    ctBlocking,
    ctNonBlocking,
    eeConnect,
    eeDisconnect,
    eeLookup,
)
from tests.util import EventLog, free_port

WAIT = 5000
CONNECTED = ["OnLookup", "OnConnecting", "OnConnect", "OnWrite"]
ACTIVE_ERROR = "Can't change value while socket is active"
SOCKET_ERROR_RE = re.compile(r"^Windows socket error: .+ \((\d+)\), on API '([^']*)'$")
#: An asynchronous notification's error as the hook gets it (the VCL's sAsyncSocketError first).
ASYNC_ERROR_RE = re.compile(r"^Asynchronous socket error (\d+): .+, on API '([^']*)'$")
NO_SUCH_HOST = "no-such-host.invalid"
NO_SUCH_SERVICE = "no-such-service-sockcomp"


# -- helpers -----------------------------------------------------------------------------------
class Peers:
    """Plain sockets (listeners and accepted peers) and threads of one test, closed at the end."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []

    def listen(self, host: str = "127.0.0.1", port: int = 0) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        lst = socket.socket(family, socket.SOCK_STREAM)
        self.sockets.append(lst)
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.settimeout(5)
        lst.bind((host, port))
        lst.listen(8)
        return lst

    def accept(self, lst: socket.socket) -> socket.socket:
        peer, _ = lst.accept()
        self.sockets.append(peer)
        peer.settimeout(5)
        return peer

    def read_to_eof(self, peer: socket.socket) -> dict[str, Any]:
        """Read ``peer`` to EOF in a thread; the dict gets 'data' (bytes) then 'done'."""
        out: dict[str, Any] = {"data": b"", "done": False, "error": None}

        def run() -> None:
            chunks = []
            try:
                while True:
                    chunk = peer.recv(1 << 16)
                    if not chunk:
                        break
                    chunks.append(chunk)
            except OSError as exc:
                out["error"] = exc
            out["data"] = b"".join(chunks)
            out["done"] = True

        t = threading.Thread(target=run, daemon=True)
        self.threads.append(t)
        t.start()
        return out

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        for t in self.threads:
            t.join(5)


@pytest.fixture
def peers():
    p = Peers()
    yield p
    p.close()


@pytest.fixture
def make_client():
    """``make_client(Address=..., Port=...)``: a ClientSocket closed at the end of the test."""
    made: list[ClientSocket] = []

    def make(**props: Any) -> ClientSocket:
        cli = ClientSocket()
        made.append(cli)
        for name, value in props.items():
            setattr(cli, name, value)
        return cli

    yield make
    for cli in made:
        cli.Close()


def settle(qtbot) -> None:
    """Run the event loop briefly so that a wrong, late event (a second OnDisconnect, an
    OnWrite too many) would show up before the negative assertion that follows."""
    qtbot.wait(50)


def record_errors(cli: ClientSocket) -> list[tuple[Any, ...]]:
    """OnError calls as (Sender, Socket, ErrorEvent, ErrorCode value at call time, Var)."""
    calls: list[tuple[Any, ...]] = []
    cli.OnError.connect(lambda s, so, ev, code: calls.append((s, so, ev, code.value, code)))
    return calls


def suppress_errors(cli: ClientSocket) -> None:
    def handler(sender, socket_, event, code) -> None:
        code.value = 0

    cli.OnError.connect(handler)


def state_log(cli: ClientSocket) -> EventLog:
    """EventLog whose snapshots are (Active, Socket.Connected) at each event."""
    return EventLog(cli, snapshot=lambda name, args: (cli.Active, cli.Socket.Connected))


def connect(qtbot, cli: ClientSocket, log: EventLog) -> None:
    cli.Open()
    qtbot.waitUntil(lambda: log.count("OnWrite") == 1, timeout=WAIT)
    assert log.names() == CONNECTED


def assert_closed_state(cli: ClientSocket) -> None:
    sock = cli.Socket
    assert cli.Active is False
    assert sock.Connected is False
    assert sock.SocketHandle == -1
    assert sock.LocalPort == -1
    assert sock.RemoteAddress == ""
    assert sock.RemotePort == 0


def assert_socket_error(exc: BaseException, code: int, api: str,
                        asynchronous: bool = False) -> None:
    assert isinstance(exc, ESocketError)
    assert isinstance(exc, OSError)
    assert exc.ErrorCode == code
    assert exc.API == api
    m = (ASYNC_ERROR_RE if asynchronous else SOCKET_ERROR_RE).match(str(exc))
    assert m is not None, str(exc)
    assert m.groups() == (str(code), api)


def bind_service_port() -> tuple[str, socket.socket]:
    """A listener on 127.0.0.1 at the port of a well-known service name ('echo' first)."""
    last: OSError | None = None
    for name in ("echo", "discard", "daytime", "qotd", "chargen"):
        port = socket.getservbyname(name, "tcp")
        lst = socket.socket()
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            lst.bind(("127.0.0.1", port))
        except OSError as exc:  # in use by a concurrent run: take the next service
            lst.close()
            last = exc
            continue
        lst.listen(8)
        lst.settimeout(5)
        return name, lst
    raise AssertionError(f"cannot bind any well-known service port on 127.0.0.1: {last}")


@pytest.fixture
def service_listener():
    name, lst = bind_service_port()
    yield name, lst
    lst.close()


# -- C1 / C2: opening ------------------------------------------------------------------------
def test_c1_numeric_address_order_and_state(qtbot, peers, make_client):
    lst = peers.listen()
    port = lst.getsockname()[1]
    cli = make_client(Address="127.0.0.1", Port=port)
    log = state_log(cli)
    inside: dict[str, Any] = {}

    def on_connect(sender, sock) -> None:
        inside.update(handle=sock.SocketHandle, local=(sock.LocalAddress, sock.LocalPort),
                      remote=(sock.RemoteAddress, sock.RemotePort))

    cli.OnConnect.connect(on_connect)
    cli.Open()
    assert log.names() == ["OnLookup", "OnConnecting"]  # both before Open returns
    assert cli.Active is False
    assert cli.Socket.Connected is False

    qtbot.waitUntil(lambda: log.count("OnWrite") == 1, timeout=WAIT)
    assert log.names() == CONNECTED
    assert log.snapshots == [(False, False), (False, False), (True, True), (True, True)]
    for name in CONNECTED:
        assert log.args(name) == (cli, cli.Socket)
    assert inside["handle"] >= 0
    assert inside["remote"] == ("127.0.0.1", port)
    assert inside["local"][0] == "127.0.0.1" and inside["local"][1] > 0

    peer = peers.accept(lst)
    assert peer.getpeername()[1] == inside["local"][1]
    peer.sendall(b"hi")
    qtbot.waitUntil(lambda: log.count("OnRead") >= 1, timeout=WAIT)
    assert cli.Socket.ReceiveText() == "hi"
    names = log.names()
    assert names[:4] == CONNECTED and set(names[4:]) == {"OnRead"}
    assert log.count("OnWrite") == 1  # once, not again when data came
    assert cli.Active is True and cli.Socket.Connected is True


def test_c2_host_localhost_only_lookup_before_open_returns(qtbot, peers, make_client):
    lst = peers.listen("127.0.0.1")  # IPv4 only: 'localhost' must still connect
    port = lst.getsockname()[1]
    cli = make_client(Host="localhost", Port=port)
    log = state_log(cli)
    cli.Open()
    assert log.names() == ["OnLookup"]
    assert cli.Active is False and cli.Socket.Connected is False
    qtbot.waitUntil(lambda: log.count("OnWrite") == 1, timeout=WAIT)
    assert log.names() == CONNECTED  # no OnError for addresses tried before 127.0.0.1
    assert log.snapshots[2] == (True, True)
    assert cli.Socket.RemoteAddress == "127.0.0.1"
    assert cli.Socket.RemotePort == port


@pytest.mark.parametrize("prop", ["Address", "Host"])
def test_ipv6_literal(qtbot, peers, make_client, prop):
    lst = peers.listen("::1")
    port = lst.getsockname()[1]
    cli = make_client(Port=port, **{prop: "::1"})
    log = EventLog(cli)
    cli.Open()
    qtbot.waitUntil(lambda: log.count("OnWrite") == 1, timeout=WAIT)
    assert log.names() == CONNECTED
    assert cli.Socket.RemoteAddress == "::1"
    assert cli.Socket.RemotePort == port
    assert cli.Socket.LocalAddress == "::1"
    peer = peers.accept(lst)
    peer.sendall("grüße".encode())
    qtbot.waitUntil(lambda: cli.Socket.ReceiveLength() == 7, timeout=WAIT)
    assert cli.Socket.ReceiveText() == "grüße"


# -- C3: precedence ---------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_c3_host_beats_address(qtbot, peers, make_client, host):
    lst = peers.listen("127.0.0.1")
    port = lst.getsockname()[1]
    # 127.0.0.2 is loopback too but nothing listens there: using Address would be refused.
    cli = make_client(Address="127.0.0.2", Host=host, Port=port)
    log = EventLog(cli)
    cli.Open()
    assert log.names() == ["OnLookup"]  # a Host is always looked up off the GUI thread
    qtbot.waitUntil(lambda: log.count("OnWrite") == 1, timeout=WAIT)
    assert log.names() == CONNECTED
    assert cli.Socket.RemoteAddress == "127.0.0.1"


def test_c3_port_used_when_no_service(qtbot, peers, make_client):
    lst = peers.listen()
    port = lst.getsockname()[1]
    cli = make_client(Address="127.0.0.1", Port=port, Service="")
    log = EventLog(cli)
    connect(qtbot, cli, log)
    assert cli.Socket.RemotePort == port
    peer = peers.accept(lst)
    assert peer.getpeername()[1] == cli.Socket.LocalPort


@pytest.mark.parametrize("via", ["Address", "Host"])
def test_c3_service_beats_port(qtbot, peers, make_client, service_listener, via):
    name, lst = service_listener
    service_port = socket.getservbyname(name, "tcp")
    assert lst.getsockname()[1] == service_port
    unused = free_port()  # Port points at nothing: using it would be refused
    props = {"Address": "127.0.0.1"} if via == "Address" else {"Host": "localhost"}
    cli = make_client(Port=unused, Service=name, **props)
    log = EventLog(cli)
    cli.Open()
    if via == "Address":
        # Address + Service must connect (the original took the listen path here, §5.1)
        assert log.names() == ["OnLookup", "OnConnecting"]
    else:
        assert log.names() == ["OnLookup"]
    qtbot.waitUntil(lambda: log.count("OnWrite") == 1, timeout=WAIT)
    assert log.names() == CONNECTED
    assert cli.Socket.RemotePort == service_port
    assert cli.Port == unused and cli.Service == name
    peer = peers.accept(lst)
    assert peer.getpeername()[1] == cli.Socket.LocalPort


def test_echo_service_is_port_7():
    assert socket.getservbyname("echo", "tcp") == 7


# -- C4: no address ---------------------------------------------------------------------------
def test_c4_no_address_raises_from_open(qtbot, make_client, hook):
    cli = make_client(Port=free_port())
    log = EventLog(cli)
    errors = record_errors(cli)
    with pytest.raises(ESocketError) as info:
        cli.Open()
    assert str(info.value) == "No address specified"
    assert info.value.ErrorCode == 1110
    assert log.names() == ["OnLookup", "OnError", "OnDisconnect"]  # all before the raise
    assert len(errors) == 1
    sender, sock, event, code, var = errors[0]
    assert (sender, sock) == (cli, cli.Socket)
    assert event == eeLookup and isinstance(event, ErrorEvent)
    assert code == 1110 and isinstance(var, Var)
    assert_closed_state(cli)
    settle(qtbot)
    assert log.names() == ["OnLookup", "OnError", "OnDisconnect"]
    assert hook == []  # raised to the caller, not (also) passed to the hook


def test_c4_no_address_suppressed(qtbot, make_client, hook):
    cli = make_client(Port=free_port())
    log = EventLog(cli)
    errors = record_errors(cli)
    suppress_errors(cli)
    cli.Open()  # returns normally
    assert log.names() == ["OnLookup", "OnError", "OnDisconnect"]
    assert errors[0][2:4] == (eeLookup, 1110)
    assert_closed_state(cli)
    settle(qtbot)
    assert log.count("OnDisconnect") == 1
    assert hook == []


# -- C5: refused ------------------------------------------------------------------------------
def test_c5_refused(qtbot, make_client, hook):
    port = free_port()
    cli = make_client(Address="127.0.0.1", Port=port)
    log = state_log(cli)
    errors = record_errors(cli)
    cli.Open()
    assert log.names() == ["OnLookup", "OnConnecting"]
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1 and len(hook) == 1, timeout=WAIT)
    assert log.names() == ["OnLookup", "OnConnecting", "OnError", "OnDisconnect"]
    sender, sock, event, code, _ = errors[0]
    assert (sender, sock) == (cli, cli.Socket)
    assert event == eeConnect
    assert code == 10061
    assert_socket_error(hook[0], 10061, "connect", asynchronous=True)
    assert hook[0].errno == errno.ECONNREFUSED
    assert str(hook[0]).startswith("Asynchronous socket error 10061: ")
    assert all(snap == (False, False) for snap in log.snapshots)
    settle(qtbot)
    assert log.count("OnDisconnect") == 1 and len(hook) == 1
    assert_closed_state(cli)


def test_c5_refused_suppressed(qtbot, make_client, hook):
    cli = make_client(Address="127.0.0.1", Port=free_port())
    log = EventLog(cli)
    errors = record_errors(cli)
    suppress_errors(cli)
    cli.Open()
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1, timeout=WAIT)
    assert log.names() == ["OnLookup", "OnConnecting", "OnError", "OnDisconnect"]
    assert errors[0][2:4] == (eeConnect, 10061)
    settle(qtbot)
    assert hook == []
    assert log.count("OnDisconnect") == 1
    assert_closed_state(cli)


def test_errorcode_var_is_shared_between_handlers(qtbot, make_client, hook):
    cli = make_client(Address="127.0.0.1", Port=free_port())
    log = EventLog(cli)
    seen: list[int] = []
    suppress_errors(cli)  # connected first: sets 0
    cli.OnError.connect(lambda s, so, ev, code: seen.append(code.value))  # sees the 0
    cli.Open()
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1, timeout=WAIT)
    assert seen == [0]
    settle(qtbot)
    assert hook == []


def test_exception_hook_replace_and_restore():
    def mine(exc: BaseException) -> None:
        pass

    previous = SetExceptionHook(mine)
    try:
        assert SetExceptionHook(previous) is mine
    finally:
        SetExceptionHook(previous)


# -- C6 and unknown services: lookup failures -------------------------------------------------
def test_c6_unknown_host(qtbot, make_client, hook):
    cli = make_client(Host=NO_SUCH_HOST, Port=free_port())
    log = EventLog(cli)
    errors = record_errors(cli)
    cli.Open()
    assert log.names() == ["OnLookup"]
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1 and len(hook) == 1, timeout=WAIT)
    assert log.names() == ["OnLookup", "OnError", "OnDisconnect"]
    assert errors[0][2:4] == (eeLookup, 11001)
    assert_socket_error(hook[0], 11001, "ASync Lookup")
    settle(qtbot)
    assert log.count("OnDisconnect") == 1 and len(hook) == 1
    assert_closed_state(cli)


def test_c6_unknown_host_suppressed(qtbot, make_client, hook):
    cli = make_client(Host=NO_SUCH_HOST, Port=free_port())
    log = EventLog(cli)
    suppress_errors(cli)
    cli.Open()
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1, timeout=WAIT)
    assert log.names() == ["OnLookup", "OnError", "OnDisconnect"]
    settle(qtbot)
    assert hook == []


def test_unknown_service_with_host_is_async(qtbot, make_client, hook):
    cli = make_client(Host="localhost", Service=NO_SUCH_SERVICE, Port=free_port())
    log = EventLog(cli)
    errors = record_errors(cli)
    cli.Open()
    assert log.names() == ["OnLookup"]
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1 and len(hook) == 1, timeout=WAIT)
    assert log.names() == ["OnLookup", "OnError", "OnDisconnect"]
    assert errors[0][2:4] == (eeLookup, 10109)
    assert_socket_error(hook[0], 10109, "ASync Lookup")
    assert_closed_state(cli)


def test_unknown_service_with_address_raises_from_open(qtbot, make_client, hook):
    cli = make_client(Address="127.0.0.1", Service=NO_SUCH_SERVICE, Port=free_port())
    log = EventLog(cli)
    errors = record_errors(cli)
    with pytest.raises(ESocketError) as info:
        cli.Open()
    assert log.names() == ["OnLookup", "OnError", "OnDisconnect"]
    assert errors[0][2:4] == (eeLookup, 10109)
    assert_socket_error(info.value, 10109, "getservbyname")
    assert_closed_state(cli)
    settle(qtbot)
    assert log.count("OnDisconnect") == 1
    assert hook == []


# -- C7 / C8: property rules ------------------------------------------------------------------
@pytest.mark.parametrize("value", [70000, 65536, -1, "abc", "80", 1.5, None])
def test_bad_port_rejected_on_assignment(make_client, value):
    cli = make_client(Port=1234)
    with pytest.raises(ESocketError) as info:
        cli.Port = value
    assert re.fullmatch(r"Invalid port number .+: must be 0\.\.65535", str(info.value))
    if isinstance(value, int):
        assert str(info.value) == f"Invalid port number {value}: must be 0..65535"
    assert cli.Port == 1234


@pytest.mark.parametrize("value", [0, 1, 65535])
def test_port_limits_accepted(make_client, value):
    cli = make_client()
    cli.Port = value
    assert cli.Port == value


def test_bad_port_rejected_while_active(qtbot, peers, make_client):
    lst = peers.listen()
    port = lst.getsockname()[1]
    cli = make_client(Address="127.0.0.1", Port=port)
    connect(qtbot, cli, EventLog(cli))
    with pytest.raises(ESocketError):
        cli.Port = 70000
    assert cli.Port == port


def test_defaults(make_client):
    cli = make_client()
    assert cli.Active is False
    assert (cli.Host, cli.Address, cli.Port, cli.Service) == ("", "", 0, "")
    assert cli.ClientType == ctNonBlocking and isinstance(cli.ClientType, ClientType)
    assert cli.AllowHalfClose is False
    assert_closed_state(cli)


def test_c7_change_while_connected(qtbot, peers, make_client):
    lst = peers.listen()
    port = lst.getsockname()[1]
    cli = make_client(Host="LocalHost", Address="127.0.0.1", Port=port, Service="")
    log = EventLog(cli)
    connect(qtbot, cli, log)
    handle = cli.Socket.SocketHandle
    for prop, value in [("Host", "example.org"), ("Address", "127.0.0.2"),
                        ("Port", free_port()), ("Service", "http")]:
        before = getattr(cli, prop)
        with pytest.raises(ESocketError) as info:
            setattr(cli, prop, value)
        assert str(info.value) == ACTIVE_ERROR, prop
        assert getattr(cli, prop) == before, prop
    # the same value is no change: no error (strings compare case-insensitively)
    cli.Host = "LOCALHOST"
    cli.Host = "localhost"
    cli.Address = "127.0.0.1"
    cli.Port = port
    cli.Service = ""
    assert cli.Port == port and cli.Host.lower() == "localhost"
    assert cli.Socket.Connected is True and cli.Socket.SocketHandle == handle
    settle(qtbot)
    assert log.names() == CONNECTED


def test_c7_service_same_value_case_insensitive(qtbot, make_client, service_listener):
    name, _ = service_listener
    cli = make_client(Address="127.0.0.1", Service=name)
    connect(qtbot, cli, EventLog(cli))
    cli.Service = name.upper()  # no error
    with pytest.raises(ESocketError, match="^Can't change value while socket is active$"):
        cli.Service = ""


def test_c7_change_while_connecting_allowed(qtbot, peers, make_client):
    lst = peers.listen()
    port = lst.getsockname()[1]
    cli = make_client(Address="127.0.0.1", Port=port)
    log = EventLog(cli)
    cli.Open()
    assert log.names() == ["OnLookup", "OnConnecting"]
    other = free_port()
    cli.Port = other  # still connecting: allowed
    cli.Address = "127.0.0.2"
    cli.Host = "localhost"
    cli.Service = "http"
    assert (cli.Port, cli.Address, cli.Host, cli.Service) == (other, "127.0.0.2", "localhost",
                                                              "http")
    qtbot.waitUntil(lambda: log.count("OnWrite") == 1, timeout=WAIT)
    assert log.names() == CONNECTED  # the connection under way is not affected
    assert cli.Socket.RemotePort == port


def test_c7_change_while_lookup_pending_allowed(qtbot, peers, make_client):
    lst = peers.listen()
    port = lst.getsockname()[1]
    cli = make_client(Host="localhost", Port=port)
    log = EventLog(cli)
    cli.Open()
    assert log.names() == ["OnLookup"]
    cli.Host = "127.0.0.1"  # allowed: not active yet
    cli.Port = free_port()
    qtbot.waitUntil(lambda: log.count("OnWrite") == 1, timeout=WAIT)
    assert log.names() == CONNECTED  # the lookup under way is not affected
    assert cli.Socket.RemotePort == port


def test_c8_client_type(qtbot, peers, make_client):
    lst = peers.listen()
    cli = make_client(Address="127.0.0.1", Port=lst.getsockname()[1])
    cli.ClientType = ctBlocking  # closed: allowed
    assert cli.ClientType == ctBlocking
    cli.ClientType = ctNonBlocking
    assert cli.ClientType == ctNonBlocking
    log = EventLog(cli)
    connect(qtbot, cli, log)
    with pytest.raises(ESocketError) as info:
        cli.ClientType = ctBlocking
    assert str(info.value) == ACTIVE_ERROR
    assert cli.ClientType == ctNonBlocking
    cli.ClientType = ctNonBlocking  # same value: no error
    cli.Close()
    cli.ClientType = ctBlocking  # closed again: allowed
    assert cli.ClientType == ctBlocking


# -- C9: receiving ----------------------------------------------------------------------------
def test_c9_read(qtbot, peers, make_client):
    lst = peers.listen()
    cli = make_client(Address="127.0.0.1", Port=lst.getsockname()[1])
    log = EventLog(cli)
    connect(qtbot, cli, log)
    assert cli.Socket.ReceiveLength() == 0
    assert cli.Socket.ReceiveBuf(bytearray(16)) == -1  # nothing pending
    peer = peers.accept(lst)
    pending: list[int] = []
    cli.OnRead.connect(lambda s, sock: pending.append(sock.ReceiveLength()))
    peer.sendall(b"hello, world")
    qtbot.waitUntil(lambda: log.count("OnRead") >= 1, timeout=WAIT)
    qtbot.waitUntil(lambda: cli.Socket.ReceiveLength() == 12, timeout=WAIT)
    assert pending[0] > 0
    assert log.args("OnRead") == (cli, cli.Socket)
    assert cli.Socket.ReceiveText() == "hello, world"
    assert isinstance(cli.Socket.ReceiveText(), str)
    assert cli.Socket.ReceiveLength() == 0
    assert cli.Socket.ReceiveBuf(bytearray(16)) == -1
    names = log.names()
    assert names[:4] == CONNECTED and set(names[4:]) == {"OnRead"}


def test_c9_onread_does_not_spin(qtbot, peers, make_client):
    lst = peers.listen()
    cli = make_client(Address="127.0.0.1", Port=lst.getsockname()[1])
    log = EventLog(cli)
    connect(qtbot, cli, log)
    peer = peers.accept(lst)
    peer.sendall(b"a")  # the handler below does not read
    qtbot.waitUntil(lambda: log.count("OnRead") == 1, timeout=WAIT)
    peer.sendall(b"b")  # more data while unread data is pending: no new OnRead
    settle(qtbot)
    assert log.count("OnRead") == 1
    assert cli.Socket.ReceiveBytes(1) == b"a"  # bytes remain: one more OnRead, later
    assert log.count("OnRead") == 1  # not re-entrantly inside ReceiveBytes
    qtbot.waitUntil(lambda: log.count("OnRead") == 2, timeout=WAIT)
    assert cli.Socket.ReceiveBytes() == b"b"
    settle(qtbot)
    assert log.names() == CONNECTED + ["OnRead", "OnRead"]


# -- C10: peer closes -------------------------------------------------------------------------
def test_c10_peer_fin(qtbot, peers, make_client):
    lst = peers.listen()
    port = lst.getsockname()[1]
    cli = make_client(Address="127.0.0.1", Port=port)
    log = state_log(cli)
    received: list[str] = []
    inside: dict[str, Any] = {}
    cli.OnRead.connect(lambda s, sock: received.append(sock.ReceiveText()))

    def on_disconnect(sender, sock) -> None:
        inside.update(handle=sock.SocketHandle, pending=sock.ReceiveLength(),
                      remote=(sock.RemoteAddress, sock.RemotePort),
                      sent=sock.SendText("reply"))

    cli.OnDisconnect.connect(on_disconnect)
    connect(qtbot, cli, log)
    peer = peers.accept(lst)
    peer.sendall(b"bye")
    peer.shutdown(socket.SHUT_WR)  # FIN; the peer still reads
    reply = peers.read_to_eof(peer)
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1, timeout=WAIT)
    names = log.names()
    assert names[:4] == CONNECTED
    assert names[-1] == "OnDisconnect"
    assert len(names) > 5 and set(names[4:-1]) == {"OnRead"}
    assert "".join(received) == "bye"
    assert log.snapshots[-1] == (False, True)  # Active already False, Connected still True
    assert inside["handle"] >= 0
    assert inside["pending"] == 0
    assert inside["remote"] == ("127.0.0.1", port)
    assert inside["sent"] == 5
    qtbot.waitUntil(lambda: reply["done"], timeout=WAIT)
    assert reply["error"] is None
    assert reply["data"] == b"reply"  # sent from OnDisconnect, flushed, then FIN
    assert_closed_state(cli)
    settle(qtbot)
    assert log.count("OnDisconnect") == 1


def test_c10_unread_data_offered_before_disconnect(qtbot, peers, make_client):
    lst = peers.listen()
    cli = make_client(Address="127.0.0.1", Port=lst.getsockname()[1])
    log = EventLog(cli)
    got: list[str] = []
    cli.OnDisconnect.connect(lambda s, sock: got.append(sock.ReceiveText()))
    connect(qtbot, cli, log)
    peer = peers.accept(lst)
    peer.sendall(b"abc")
    peer.shutdown(socket.SHUT_WR)
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1, timeout=WAIT)
    # OnRead is offered once and, not read, not repeated; the bytes are still there inside
    # OnDisconnect.
    assert log.names() == CONNECTED + ["OnRead", "OnDisconnect"]
    assert got == ["abc"]
    assert_closed_state(cli)


def test_c10_peer_close(qtbot, peers, make_client):
    lst = peers.listen()
    cli = make_client(Address="127.0.0.1", Port=lst.getsockname()[1])
    log = state_log(cli)
    connect(qtbot, cli, log)
    peers.accept(lst).close()
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1, timeout=WAIT)
    assert log.names() == CONNECTED + ["OnDisconnect"]
    assert log.snapshots[-1] == (False, True)
    assert_closed_state(cli)
    settle(qtbot)
    assert log.count("OnDisconnect") == 1


def test_peer_reset(qtbot, peers, make_client, hook):
    lst = peers.listen()
    cli = make_client(Address="127.0.0.1", Port=lst.getsockname()[1])
    log = state_log(cli)
    errors = record_errors(cli)
    connect(qtbot, cli, log)
    peer = peers.accept(lst)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()  # RST
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1 and len(hook) == 1, timeout=WAIT)
    assert log.names() == CONNECTED + ["OnError", "OnDisconnect"]
    assert errors[0][:4] == (cli, cli.Socket, eeDisconnect, 10054)
    exc = hook[0]
    assert isinstance(exc, ESocketError) and exc.ErrorCode == 10054
    assert str(exc).startswith("Asynchronous socket error 10054: ")
    assert ASYNC_ERROR_RE.match(str(exc))
    settle(qtbot)
    assert log.count("OnDisconnect") == 1 and len(hook) == 1
    assert_closed_state(cli)


def test_peer_reset_suppressed(qtbot, peers, make_client, hook):
    lst = peers.listen()
    cli = make_client(Address="127.0.0.1", Port=lst.getsockname()[1])
    log = EventLog(cli)
    suppress_errors(cli)
    connect(qtbot, cli, log)
    peer = peers.accept(lst)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1, timeout=WAIT)
    assert log.names() == CONNECTED + ["OnError", "OnDisconnect"]
    settle(qtbot)
    assert hook == []
    assert log.count("OnDisconnect") == 1
    assert_closed_state(cli)


# -- C11: local close -------------------------------------------------------------------------
def test_c11_local_close_synchronous_and_flushes(qtbot, peers, make_client):
    lst = peers.listen()
    cli = make_client(Address="127.0.0.1", Port=lst.getsockname()[1])
    log = state_log(cli)
    connect(qtbot, cli, log)
    peer = peers.accept(lst)
    payload = os.urandom(4 << 20)  # more than the kernel buffers take at once
    assert cli.Socket.SendBuf(payload) == len(payload)
    out = peers.read_to_eof(peer)
    cli.Close()
    assert log.names() == CONNECTED + ["OnDisconnect"]  # inside Close
    assert log.snapshots[-1] == (False, True)
    assert log.args("OnDisconnect") == (cli, cli.Socket)
    assert cli.Socket.Connected is False and cli.Active is False
    qtbot.waitUntil(lambda: out["done"], timeout=WAIT)
    assert out["error"] is None
    assert len(out["data"]) == len(payload) and out["data"] == payload
    cli.Close()  # closing again: nothing happens
    settle(qtbot)
    assert log.count("OnDisconnect") == 1
    assert_closed_state(cli)


def test_active_false_is_close(qtbot, peers, make_client):
    lst = peers.listen()
    cli = make_client(Address="127.0.0.1", Port=lst.getsockname()[1])
    log = EventLog(cli)
    connect(qtbot, cli, log)
    assert cli.Active is True
    cli.Active = False
    assert log.names() == CONNECTED + ["OnDisconnect"]
    assert_closed_state(cli)


def test_open_while_connected_is_noop(qtbot, peers, make_client):
    lst = peers.listen()
    cli = make_client(Address="127.0.0.1", Port=lst.getsockname()[1])
    log = EventLog(cli)
    connect(qtbot, cli, log)
    handle = cli.Socket.SocketHandle
    cli.Open()
    cli.Active = True
    settle(qtbot)
    assert log.names() == CONNECTED
    assert cli.Socket.SocketHandle == handle


def test_reusable_after_each_ending(qtbot, peers, make_client, hook):
    lst = peers.listen()
    port = lst.getsockname()[1]
    cli = make_client(Address="127.0.0.1", Port=free_port())
    log = EventLog(cli)
    cli.Open()  # refused
    qtbot.waitUntil(lambda: log.count("OnDisconnect") == 1 and len(hook) == 1, timeout=WAIT)
    cli.Port = port
    del log.events[:]
    connect(qtbot, cli, log)
    cli.Close()
    del log.events[:]
    connect(qtbot, cli, log)
    assert cli.Socket.RemotePort == port
    assert len(hook) == 1


# -- C12: sending -----------------------------------------------------------------------------
def test_c12_send_before_connect(qtbot, peers, make_client):
    lst = peers.listen()
    cli = make_client(Address="127.0.0.1", Port=lst.getsockname()[1])
    log = EventLog(cli)
    assert cli.Socket.SendText("early") == 0
    assert cli.Socket.SendBuf(b"early") == 0
    assert log.names() == []
    cli.Open()
    assert cli.Socket.SendText("connecting") == 0  # not connected yet
    assert cli.Socket.SendBuf(b"connecting") == 0
    assert log.names() == ["OnLookup", "OnConnecting"]
    cli.OnConnect.connect(lambda s, sock: sock.SendText("after"))
    qtbot.waitUntil(lambda: log.count("OnWrite") == 1, timeout=WAIT)
    assert log.names() == CONNECTED
    peer = peers.accept(lst)
    out = peers.read_to_eof(peer)
    cli.Close()
    qtbot.waitUntil(lambda: out["done"], timeout=WAIT)
    assert out["data"] == b"after"


def test_sendtext_returns_utf8_byte_count(qtbot, peers, make_client):
    lst = peers.listen()
    cli = make_client(Address="127.0.0.1", Port=lst.getsockname()[1])
    connect(qtbot, cli, EventLog(cli))
    peer = peers.accept(lst)
    text = "héllo€😀"
    assert cli.Socket.SendText(text) == len(text.encode("utf-8")) == 13
    out = peers.read_to_eof(peer)
    cli.Close()
    qtbot.waitUntil(lambda: out["done"], timeout=WAIT)
    assert out["data"].decode("utf-8") == text


# -- C13 / C14: streams -----------------------------------------------------------------------
def test_c13_send_stream_not_connected(make_client):
    cli = make_client(Address="127.0.0.1", Port=free_port())
    stream = io.BytesIO(b"x" * 100)
    assert cli.Socket.SendStream(stream) is False
    assert not stream.closed  # not taken
    assert stream.read() == b"x" * 100


def test_c13_streams_queue_in_order(qtbot, peers, make_client):
    lst = peers.listen()
    cli = make_client(Address="127.0.0.1", Port=lst.getsockname()[1])
    log = EventLog(cli)
    connect(qtbot, cli, log)
    peer = peers.accept(lst)
    first, second = os.urandom(3 << 20), os.urandom(3 << 20)
    s1, s2 = io.BytesIO(first), io.BytesIO(second)
    out = peers.read_to_eof(peer)
    assert cli.Socket.SendStream(s1) is True
    assert cli.Socket.SendText("-middle-") == 8
    assert cli.Socket.SendStream(s2) is True  # queued, not refused
    qtbot.waitUntil(lambda: s1.closed and s2.closed, timeout=WAIT)
    cli.Close()
    qtbot.waitUntil(lambda: out["done"], timeout=WAIT)
    assert out["error"] is None
    expected = first + b"-middle-" + second
    assert len(out["data"]) == len(expected)
    assert out["data"] == expected


def test_c13_small_stream_freed(qtbot, peers, make_client):
    lst = peers.listen()
    cli = make_client(Address="127.0.0.1", Port=lst.getsockname()[1])
    connect(qtbot, cli, EventLog(cli))
    peer = peers.accept(lst)
    stream = io.BytesIO(b"small stream")
    assert cli.Socket.SendStream(stream) is True
    qtbot.waitUntil(lambda: stream.closed, timeout=WAIT)
    out = peers.read_to_eof(peer)
    cli.Close()
    qtbot.waitUntil(lambda: out["done"], timeout=WAIT)
    assert out["data"] == b"small stream"


def test_c14_send_stream_then_drop(qtbot, peers, make_client):
    lst = peers.listen()
    cli = make_client(Address="127.0.0.1", Port=lst.getsockname()[1])
    log = EventLog(cli)
    connect(qtbot, cli, log)
    peer = peers.accept(lst)
    payload = os.urandom(2 << 20)
    stream = io.BytesIO(payload)
    out = peers.read_to_eof(peer)
    assert cli.Socket.SendStreamThenDrop(stream) is True
    qtbot.waitUntil(lambda: out["done"] and log.count("OnDisconnect") == 1, timeout=WAIT)
    assert out["error"] is None
    assert out["data"] == payload
    assert stream.closed
    assert log.names() == CONNECTED + ["OnDisconnect"]
    settle(qtbot)
    assert log.count("OnDisconnect") == 1
    assert_closed_state(cli)


# -- exactly one OnDisconnect, however the connection ends ------------------------------------
def _end_local_close(qtbot, peers, cli):
    lst = peers.listen()
    cli.Address, cli.Port = "127.0.0.1", lst.getsockname()[1]
    connect(qtbot, cli, EventLog(cli))
    cli.Close()


def _end_peer_fin(qtbot, peers, cli):
    lst = peers.listen()
    cli.Address, cli.Port = "127.0.0.1", lst.getsockname()[1]
    connect(qtbot, cli, EventLog(cli))
    peers.accept(lst).shutdown(socket.SHUT_WR)


def _end_peer_reset(qtbot, peers, cli):
    lst = peers.listen()
    cli.Address, cli.Port = "127.0.0.1", lst.getsockname()[1]
    connect(qtbot, cli, EventLog(cli))
    peer = peers.accept(lst)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()


def _end_refused(qtbot, peers, cli):
    cli.Address, cli.Port = "127.0.0.1", free_port()
    cli.Open()


def _end_unknown_host(qtbot, peers, cli):
    cli.Host, cli.Port = NO_SUCH_HOST, free_port()
    cli.Open()


def _end_no_address(qtbot, peers, cli):
    cli.Port = free_port()
    with pytest.raises(ESocketError):
        cli.Open()


def _end_unknown_service(qtbot, peers, cli):
    cli.Address, cli.Service = "127.0.0.1", NO_SUCH_SERVICE
    with pytest.raises(ESocketError):
        cli.Open()


ENDINGS: dict[str, tuple[Callable[..., None], int | None]] = {
    # name: (how, ErrorCode expected in the hook or None for no error)
    "local_close": (_end_local_close, None),
    "peer_fin": (_end_peer_fin, None),
    "peer_reset": (_end_peer_reset, 10054),
    "refused": (_end_refused, 10061),
    "unknown_host": (_end_unknown_host, 11001),
    "no_address": (_end_no_address, None),  # raised from Open, not via the hook
    "unknown_service": (_end_unknown_service, None),  # raised from Open
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_exactly_one_disconnect(qtbot, peers, make_client, hook, ending):
    how, hook_code = ENDINGS[ending]
    cli = make_client()
    log = state_log(cli)
    how(qtbot, peers, cli)
    qtbot.waitUntil(lambda: log.count("OnDisconnect") >= 1, timeout=WAIT)
    if hook_code is not None:
        qtbot.waitUntil(lambda: len(hook) >= 1, timeout=WAIT)
    settle(qtbot)
    assert log.count("OnDisconnect") == 1
    assert log.names()[-1] == "OnDisconnect"
    assert "OnConnect" not in log.names()[log.names().index("OnDisconnect"):]
    assert [e.ErrorCode for e in hook] == ([] if hook_code is None else [hook_code])
    assert_closed_state(cli)


# -- deferred Active (setupUi) ------------------------------------------------------------------
def test_active_in_creation_turn_opens_on_next_turn(qtbot, peers, make_client):
    lst = peers.listen()
    port = lst.getsockname()[1]
    cli = make_client()
    log = EventLog(cli)
    cli.Active = True  # as uic's setupUi may do, before the other properties
    cli.Address = "127.0.0.1"
    cli.Port = port
    assert log.names() == []  # only the flag is stored
    assert cli.Socket.Connected is False
    assert cli.Socket.SocketHandle == -1
    qtbot.waitUntil(lambda: log.count("OnWrite") == 1, timeout=WAIT)
    assert log.names() == CONNECTED
    assert cli.Socket.RemotePort == port  # opened with the properties set after Active
    assert cli.Active is True


def test_loaded_ends_loading_at_once(qtbot, peers, make_client):
    lst = peers.listen()
    cli = make_client()
    log = EventLog(cli)
    cli.Address = "127.0.0.1"
    cli.Port = lst.getsockname()[1]
    cli.Active = True
    assert log.names() == []
    cli.Loaded()
    assert log.names() == ["OnLookup", "OnConnecting"]  # synchronous, like Open
    qtbot.waitUntil(lambda: log.count("OnWrite") == 1, timeout=WAIT)
    settle(qtbot)
    assert log.names() == CONNECTED  # the deferred turn does not open a second time


def test_active_set_and_cleared_in_creation_turn_never_opens(qtbot, peers, make_client):
    lst = peers.listen()
    cli = make_client(Address="127.0.0.1", Port=lst.getsockname()[1])
    log = EventLog(cli)
    cli.Active = True
    cli.Active = False
    settle(qtbot)
    assert log.names() == []
    assert cli.Socket.Connected is False and cli.Active is False


def test_active_after_creation_turn_is_open(qtbot, peers, make_client):
    lst = peers.listen()
    cli = make_client(Address="127.0.0.1", Port=lst.getsockname()[1])
    log = EventLog(cli)
    connect(qtbot, cli, log)  # the event loop has turned since creation
    cli.Close()
    del log.events[:]
    cli.Active = True
    assert log.names() == ["OnLookup", "OnConnecting"]  # synchronous, exactly as Open()
    assert cli.Active is False
    qtbot.waitUntil(lambda: log.count("OnWrite") == 1, timeout=WAIT)
    assert log.names() == CONNECTED
    assert cli.Active is True


# -- AllowHalfClose ---------------------------------------------------------------------------
def test_allow_half_close(qtbot, peers, make_client):
    lst = peers.listen()
    cli = make_client(Address="127.0.0.1", Port=lst.getsockname()[1], AllowHalfClose=True)
    assert cli.AllowHalfClose is True
    log = state_log(cli)
    received: list[str] = []
    cli.OnRead.connect(lambda s, sock: received.append(sock.ReceiveText()))
    connect(qtbot, cli, log)
    peer = peers.accept(lst)
    peer.sendall(b"request")
    peer.shutdown(socket.SHUT_WR)
    qtbot.waitUntil(lambda: log.count("OnHalfClose") == 1, timeout=WAIT)
    names = log.names()
    assert names[:4] == CONNECTED and names[-1] == "OnHalfClose"
    assert len(names) > 5 and set(names[4:-1]) == {"OnRead"}
    assert "".join(received) == "request"
    assert log.args("OnHalfClose") == (cli, cli.Socket)
    assert cli.Socket.Connected is True  # stays open after the handler
    out = peers.read_to_eof(peer)
    settle(qtbot)
    assert "OnDisconnect" not in log.names()
    assert cli.Socket.SendText("answer") == 6  # still writable
    cli.Close()
    assert log.names()[-1] == "OnDisconnect" and log.count("OnDisconnect") == 1
    qtbot.waitUntil(lambda: out["done"], timeout=WAIT)
    assert out["data"] == b"answer"
    assert_closed_state(cli)
