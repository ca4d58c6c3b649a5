"""The components from QML (sockcomp.qml, issue 18): registered types, lower-case properties
bound both ways, the VCL events as QML handlers with their arguments, text and bytes read and
sent from QML, a QML server, errors with their WSA codes, and the QML chat sample against the
real chat server.

QML runs in a ``QQmlApplicationEngine`` (offscreen). The QML under test reports what its
handlers see through a ``note(text)`` signal of its root object; the tests compare the notes
with the exact expected sequence. Peers are plain ``socket`` objects over loopback.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import shiboken6
from PySide6.QtCore import Q_ARG, Q_RETURN_ARG, QMetaObject, QObject, QUrl
from PySide6.QtQml import QQmlApplicationEngine, QQmlComponent, qmlRegisterType
from PySide6.QtTest import QSignalSpy

from sockcomp import (
    ClientSocket,
    ESocketError,
    ServerSocket,
    ctBlocking,
    fmLine,
    stNonBlocking,
    stThreadBlocking,
)
from sockcomp.framing import pack_packet
from sockcomp.qml import (
    QML_PROPERTY_NAMES,
    QmlClientSocket,
    QmlServerSocket,
    QmlWinSocket,
    qml_name,
    register_qml_types,
)
from tests.util import free_port

WAIT = 5000
SAMPLES = Path(__file__).resolve().parent.parent / "samples"
IMPORTS = "import QtQml\nimport Sockcomp\n"


# -- helpers -----------------------------------------------------------------------------------
class Qml:
    """A QQmlApplicationEngine with the sockcomp types; collects its warnings and the notes
    (``note(text)`` signal) of the roots it loads."""

    def __init__(self) -> None:
        register_qml_types()
        self.engine = QQmlApplicationEngine()
        self.warnings: list[str] = []
        self.notes: list[str] = []
        self.engine.warnings.connect(
            lambda errors: self.warnings.extend(e.toString() for e in errors))

    def load(self, body: str, **initial: Any) -> QObject:
        """Load ``QtObject { id: root; signal note(string text); <body> }``; returns the root."""
        source = IMPORTS + "QtObject {\n id: root\n signal note(string text)\n" + body + "\n}\n"
        return self.load_source(source, **initial)

    def load_source(self, source: str, **initial: Any) -> QObject:
        before = len(self.engine.rootObjects())
        self.engine.setInitialProperties(initial)
        self.engine.loadData(source.encode(), QUrl("file:///test.qml"))
        roots = self.engine.rootObjects()
        assert len(roots) == before + 1, self.warnings
        root = roots[-1]
        if root.metaObject().indexOfSignal("note(QString)") >= 0:
            root.note.connect(self.notes.append)
        return root

    def close(self) -> None:
        shiboken6.delete(self.engine)  # deletes the roots: their components close their sockets


@pytest.fixture
def qml(qapp):
    harness = Qml()
    yield harness
    harness.close()


def call(obj: QObject, function: str, *args: Any) -> Any:
    """Call a QML function of ``obj`` and return its result."""
    return QMetaObject.invokeMethod(obj, function, Q_RETURN_ARG("QVariant"),
                                    *[Q_ARG("QVariant", a) for a in args])


def listener() -> socket.socket:
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.settimeout(5)
    lst.bind(("127.0.0.1", 0))
    lst.listen(8)
    return lst


class Received:
    """What a plain socket has received, read without blocking while the Qt loop runs."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.data = b""
        self.eof = False
        sock.setblocking(False)

    def poll(self) -> bytes:
        while not self.eof:
            try:
                chunk = self.sock.recv(65536)
            except BlockingIOError:
                break
            if not chunk:
                self.eof = True
            self.data += chunk
        return self.data

    def wait_for(self, qtbot, expected: bytes) -> None:
        qtbot.waitUntil(lambda: self.poll() == expected, timeout=WAIT)


def settle(qtbot) -> None:
    """Run the loop briefly so that a wrong, late event would show before a negative check."""
    qtbot.wait(50)


# -- registration and names --------------------------------------------------------------------
def test_types_register_once_and_load_as_the_components(qml) -> None:
    register_qml_types()  # again: harmless
    root = qml.load("""
        property var client: ClientSocket { objectName: "cli" }
        property var server: ServerSocket { objectName: "srv" }
        property var enums: [ScktComp.ErrorEvent.eeConnect, ClientSocket.ClientType.ctBlocking,
                             ServerSocket.ServerType.stThreadBlocking,
                             ScktComp.FramingMode.fmPacket, ScktComp.SocketState.ssConnected]
    """)
    client, server = root.property("client"), root.property("server")
    assert type(client) is QmlClientSocket and isinstance(client, ClientSocket)
    assert type(server) is QmlServerSocket and isinstance(server, ServerSocket)
    assert client.objectName() == "cli" and server.objectName() == "srv"
    assert isinstance(client.property("socket"), QmlWinSocket)
    assert client.property("socket").Socket is client.Socket
    assert server.property("socket").Socket is server.Socket
    assert root.property("enums").toVariant() == [3, 1, 1, 2, 3]
    assert qml.warnings == []


@pytest.mark.parametrize("name", ["WinSocket", "SocketError", "ScktComp"])
def test_what_handlers_receive_cannot_be_created_in_qml(qml, name) -> None:
    component = QQmlComponent(qml.engine)
    component.setData(f"{IMPORTS}{name} {{ }}\n".encode(), QUrl("file:///bad.qml"))
    assert component.create() is None
    assert "comes with" in component.errorString() or "enumerations" in component.errorString()


def test_qml_rejects_the_capitalized_vcl_names(qml) -> None:
    """Why the QML types exist (measured on PySide6 6.11 and 6.12): on the plain component QML
    reads a capitalized name in a declaration as an attached object, and no handler name
    reaches a signal called ``OnConnect``."""
    qmlRegisterType(ClientSocket, "SockcompProbe", 1, 0, "PlainClientSocket")
    for body, message in (('PlainClientSocket { Host: "example.org" }',
                           "Invalid attached object assignment"),
                          ("PlainClientSocket { onOnConnect: {} }",
                           'Cannot assign to non-existent property "onOnConnect"'),
                          ("PlainClientSocket { onHostChanged: {} }",
                           'Cannot assign to non-existent property "onHostChanged"')):
        component = QQmlComponent(qml.engine)
        component.setData(f"import SockcompProbe\n{body}\n".encode(), QUrl("file:///caps.qml"))
        assert component.create() is None
        assert message in component.errorString()


def test_qml_names_lower_the_first_letter_or_a_leading_acronym() -> None:
    assert [qml_name(n) for n in ("Host", "Port", "UseTLS", "TLSCAFile", "TLSVerifyPeer",
                                  "KeepAliveTime", "OnClientRead")] == [
        "host", "port", "useTLS", "tlsCAFile", "tlsVerifyPeer", "keepAliveTime", "onClientRead"]


@pytest.mark.parametrize("vcl_class, qml_class", [(ClientSocket, QmlClientSocket),
                                                  (ServerSocket, QmlServerSocket)])
def test_every_vcl_property_has_its_qml_property(qapp, vcl_class, qml_class) -> None:
    # live instances' metaObject(), not the classes' staticMetaObject: another test's
    # metaObject() of a component whose parent was then deleted invalidates that wrapper for
    # good in PySide6 6.11/6.12 (see test_surface._meta_has)
    component, wrapper = vcl_class(), qml_class()
    base_mo, mo = component.metaObject(), wrapper.metaObject()
    vcl_names = [base_mo.property(i).name() for i in range(1, base_mo.propertyCount())]
    assert vcl_names  # the components have Qt properties to mirror
    for vcl in vcl_names:
        name = QML_PROPERTY_NAMES[vcl]
        assert name == qml_name(vcl)
        vcl_prop = base_mo.property(base_mo.indexOfProperty(vcl))
        prop = mo.property(mo.indexOfProperty(name))
        assert prop.isValid(), name
        assert prop.typeName() == vcl_prop.typeName(), name
        assert prop.isWritable() == vcl_prop.isWritable(), name
        assert bytes(prop.notifySignal().name()).decode() == name + "Changed"


# -- properties both ways ----------------------------------------------------------------------
def test_qml_bindings_set_the_component_and_follow_their_sources(qml) -> None:
    root = qml.load("""
        property string hostText: "chat.example"
        property int portNumber: 5000
        property var client: ClientSocket {
            host: root.hostText
            port: root.portNumber
            clientType: ClientSocket.ClientType.ctBlocking
            framing: ScktComp.FramingMode.fmLine
            lineEnd: "\\r\\n"
            connectTimeout: 1500
            tlsServerName: "example.org"
        }
    """)
    client = root.property("client")
    assert (client.Host, client.Port, client.ClientType, client.Framing, client.LineEnd,
            client.ConnectTimeout, client.TLSServerName) == (
        "chat.example", 5000, ctBlocking, fmLine, "\r\n", 1500, "example.org")
    host_spy, port_spy = QSignalSpy(client.HostChanged), QSignalSpy(client.PortChanged)
    root.setProperty("hostText", "other.example")
    root.setProperty("portNumber", 6000)
    assert (client.Host, client.Port) == ("other.example", 6000)
    assert (host_spy.count(), port_spy.count()) == (1, 1)
    assert qml.warnings == []


def test_component_changes_notify_qml_bindings_and_handlers(qml) -> None:
    root = qml.load("""
        property var client: ClientSocket {
            id: client
            onPortChanged: root.note("portChanged " + client.port)
            onClientTypeChanged: root.note("clientTypeChanged " + client.clientType)
        }
        property var server: ServerSocket { id: server }
        property string shown: client.host + ":" + client.port + " type " + client.clientType
        property int cache: server.threadCacheSize
    """)
    client, server = root.property("client"), root.property("server")
    assert root.property("shown") == ":0 type 0"
    client.Host = "example.org"
    client.Port = 4242
    client.ClientType = ctBlocking
    client.Port = 4242  # unchanged: no notification
    server.ThreadCacheSize = 3
    assert root.property("shown") == "example.org:4242 type 1"
    assert root.property("cache") == 3
    assert qml.notes == ["portChanged 4242", "clientTypeChanged 1"]


def test_bad_values_written_from_qml_are_js_errors_and_change_nothing(qml, qtbot) -> None:
    root = qml.load("""
        property var client: ClientSocket { id: client; port: 80 }
        function write(name, value) {
            try { client[name] = value; return "ok" } catch (e) { return e.message }
        }
    """)
    client = root.property("client")
    with qtbot.captureExceptions() as printed:  # PySide also prints the Python traceback
        assert call(root, "write", "port", 70000) == (
            "Invalid port number 70000: must be 0..65535")
        assert call(root, "write", "encoding", "no-such-codec").startswith("Invalid Encoding")
    assert [type(e[1]) for e in printed] == [ESocketError, ESocketError]
    assert client.Port == 80 and client.Encoding == "utf-8"


# -- client events, text and bytes -------------------------------------------------------------
CLIENT_EVENTS = """
    property var client: ClientSocket {
        id: client
        address: "127.0.0.1"
        port: root.peerPort
        active: true
        onLookup: (socket) => root.note("lookup")
        onConnecting: (socket) => root.note("connecting")
        onConnect: (socket) => {
            root.note("connect " + socket.connected + " " + socket.remoteAddress + ":"
                      + socket.remotePort + " " + (socket === client.socket) + " "
                      + client.active)
            root.note("sent " + socket.sendText("hello, Grüße 👋\\n"))
        }
        onWrite: (socket) => root.note("write")
        onRead: (socket) => root.note("read " + socket.receiveLength() + " "
                                      + JSON.stringify(socket.receiveText()))
        onDisconnect: (socket) => root.note("disconnect " + socket.connected + " "
                                            + client.active)
    }
    property bool connected: client.socket.connected
    property int peerPort: 0
"""


def test_client_events_reach_qml_in_order_with_the_socket(qml, qtbot) -> None:
    lst = listener()
    with lst:
        root = qml.load(CLIENT_EVENTS, peerPort=lst.getsockname()[1])
        client = root.property("client")
        client.OnConnect.connect(lambda Sender, Socket: qml.notes.append("python OnConnect"))
        qtbot.waitUntil(lambda: "write" in qml.notes, timeout=WAIT)
        peer, _ = lst.accept()
        with peer:
            port = peer.getsockname()[1]
            data = b""
            while not data.endswith(b"\n"):
                data += peer.recv(100)
            assert data == "hello, Grüße 👋\n".encode()
            peer.sendall("welcome 👋\n".encode())
            qtbot.waitUntil(lambda: len(qml.notes) == 6, timeout=WAIT)
            assert root.property("connected") is True
        qtbot.waitUntil(lambda: qml.notes[-1].startswith("disconnect"), timeout=WAIT)
    assert qml.notes == [
        "lookup", "connecting", "python OnConnect",
        f"connect true 127.0.0.1:{port} true true", f"sent {len(data)}", "write",
        'read 13 "welcome 👋\\n"', "disconnect true false"]
    qtbot.waitUntil(lambda: root.property("connected") is False, timeout=WAIT)
    settle(qtbot)
    assert qml.notes[-1] == "disconnect true false" and qml.warnings == []


def test_lines_and_packets_are_framed_for_qml(qml, qtbot) -> None:
    lst = listener()
    with lst:
        root = qml.load("""
            property int peerPort: 0
            property var lines: ClientSocket {
                address: "127.0.0.1"; port: root.peerPort; active: true
                framing: ClientSocket.FramingMode.fmLine
                onConnect: (socket) => socket.sendLine("Grüße 👋")
                onLineReceived: (socket, line) => root.note("line " + line)
            }
            property var packets: ClientSocket {
                address: "127.0.0.1"; port: root.peerPort; active: true
                framing: ClientSocket.FramingMode.fmPacket
                onConnect: (socket) => socket.sendPacket(new Uint8Array([7, 8, 255]).buffer)
                onPacketReceived: (socket, packet) =>
                    root.note("packet " + Array.from(new Uint8Array(packet)).join(","))
            }
            property var bytes: ClientSocket {
                address: "127.0.0.1"; port: root.peerPort; active: true
                onConnect: (socket) => socket.sendBuf(new Uint8Array([0, 1, 254]).buffer)
                onRead: (socket) => root.note(
                    "bytes " + Array.from(new Uint8Array(socket.receiveBytes())).join(","))
            }
        """, peerPort=lst.getsockname()[1])
        qtbot.waitUntil(lambda: all(root.property(n).Socket.Connected
                                    for n in ("lines", "packets", "bytes")), timeout=WAIT)
        peers = [lst.accept()[0] for _ in range(3)]
        by_port = {p.getpeername()[1]: p for p in peers}
        line_peer, packet_peer, byte_peer = (
            by_port[root.property(n).Socket.LocalPort] for n in ("lines", "packets", "bytes"))
        try:
            for peer in peers:
                peer.settimeout(5)
            assert line_peer.recv(100) == "Grüße 👋\n".encode()
            assert packet_peer.recv(100) == pack_packet(bytes([7, 8, 255]))
            assert byte_peer.recv(100) == bytes([0, 1, 254])
            line_peer.sendall("one\ntwo\nthr".encode())
            qtbot.waitUntil(lambda: qml.notes.count("line two") == 1, timeout=WAIT)
            line_peer.sendall("ee ✓\n".encode())
            packet_peer.sendall(pack_packet(b"\x00\x80\xff") + pack_packet(b"\x05")[:3])
            qtbot.waitUntil(lambda: "packet 0,128,255" in qml.notes, timeout=WAIT)
            packet_peer.sendall(pack_packet(b"\x05")[3:])
            byte_peer.sendall(bytes([9, 200]))
            qtbot.waitUntil(lambda: len(qml.notes) == 6, timeout=WAIT)
        finally:
            for peer in peers:
                peer.close()
    notes = qml.notes
    assert [n for n in notes if n.startswith("line")] == ["line one", "line two", "line three ✓"]
    assert [n for n in notes if n.startswith("packet")] == ["packet 0,128,255", "packet 5"]
    assert [n for n in notes if n.startswith("bytes")] == ["bytes 9,200"]


def test_half_close_and_shutdown_from_qml(qml, qtbot) -> None:
    lst = listener()
    with lst:
        qml.load("""
            property int peerPort: 0
            property var client: ClientSocket {
                address: "127.0.0.1"; port: root.peerPort; active: true
                allowHalfClose: true
                onConnect: (socket) => root.note("connect")
                onRead: (socket) => root.note("read " + socket.receiveText())
                onHalfClose: (socket) => {
                    root.note("halfClose " + socket.connected)
                    socket.sendText("ok")
                    socket.shutdown()
                }
                onDisconnect: (socket) => root.note("disconnect")
            }
        """, peerPort=lst.getsockname()[1])
        qtbot.waitUntil(lambda: qml.notes == ["connect"], timeout=WAIT)
        peer, _ = lst.accept()
        with peer:
            peer.sendall(b"bye")
            peer.shutdown(socket.SHUT_WR)
            received = Received(peer)
            qtbot.waitUntil(lambda: received.poll() == b"ok" and received.eof, timeout=WAIT)
        qtbot.waitUntil(lambda: qml.notes[-1] == "disconnect", timeout=WAIT)
    assert qml.notes == ["connect", "read bye", "halfClose true", "disconnect"]


# -- errors ------------------------------------------------------------------------------------
REFUSED = """
    property int peerPort: 0
    property bool handle: true
    property var client: ClientSocket {
        id: client
        address: "127.0.0.1"; port: root.peerPort; active: true
        onLookup: (socket) => root.note("lookup")
        onConnecting: (socket) => root.note("connecting")
        onConnect: (socket) => root.note("connect")
        onError: (socket, error) => {
            root.note("error " + error.errorEvent + " " + error.errorEventName + " "
                      + error.errorCode + " "
                      + (error.errorEvent === ScktComp.ErrorEvent.eeConnect) + " "
                      + (socket === client.socket) + " " + (error.message.length > 0))
            if (root.handle)
                error.errorCode = 0         // ErrorCode := 0
        }
        onDisconnect: (socket) => root.note("disconnect")
    }
"""


@pytest.mark.parametrize("handled", [True, False], ids=["handled", "unhandled"])
def test_connection_refused_reaches_qml_with_the_wsa_code(qml, qtbot, hook, handled) -> None:
    root = qml.load(REFUSED, peerPort=free_port(), handle=handled)
    qtbot.waitUntil(lambda: "disconnect" in qml.notes, timeout=WAIT)
    settle(qtbot)
    assert qml.notes == ["lookup", "connecting", "error 3 eeConnect 10061 true true true",
                         "disconnect"]
    assert "refused" in root.property("client").Socket.LastErrorMessage.lower()
    if handled:
        assert hook == []
    else:  # not handled: the application exception hook gets it, as from Python
        assert len(hook) == 1 and isinstance(hook[0], ESocketError)
        assert hook[0].ErrorCode == 10061


def test_a_python_handler_and_qml_share_the_error_code(qml, qtbot, hook) -> None:
    root = qml.load(REFUSED, peerPort=free_port(), handle=False)
    client = root.property("client")
    client.OnError.connect(lambda Sender, Socket, Event, Code: setattr(Code, "value", 0))
    qtbot.waitUntil(lambda: "disconnect" in qml.notes, timeout=WAIT)
    settle(qtbot)
    assert qml.notes[2] == "error 3 eeConnect 0 true true true"  # the Python handler ran first
    assert hook == []


def test_reconnect_is_a_qml_event_and_its_state_is_bound(qml, qtbot) -> None:
    root = qml.load("""
        property int peerPort: 0
        property var client: ClientSocket {
            id: client
            address: "127.0.0.1"; port: root.peerPort; active: true
            autoReconnect: true; reconnectInterval: 20
            onError: (socket, error) => {
                root.note("error " + error.errorCode)
                error.errorCode = 0
            }
            onDisconnect: (socket) => root.note("disconnect")
            onReconnectingChanged: root.note("reconnecting " + client.reconnecting)
            onReconnect: (socket) => {
                root.note("reconnect " + client.reconnectAttempt)
                client.close()
            }
        }
    """, peerPort=free_port())
    qtbot.waitUntil(lambda: any(n.startswith("reconnect ") for n in qml.notes), timeout=WAIT)
    settle(qtbot)
    assert qml.notes == ["error 10061", "disconnect", "reconnecting true", "reconnecting false",
                         "reconnect 1"]
    assert root.property("client").Active is False


def test_listening_on_a_busy_port_is_a_js_error_with_the_wsa_code(qml, qtbot) -> None:
    lst = listener()
    with lst:
        root = qml.load("""
            property int busyPort: 0
            property var server: ServerSocket {
                id: server; address: "127.0.0.1"; port: root.busyPort
            }
            function tryOpen() {
                try { server.open(); return "open" } catch (e) { return e.message }
            }
        """, busyPort=lst.getsockname()[1])
        with qtbot.captureExceptions() as printed:
            message = call(root, "tryOpen")
    assert "(10048)" in message and root.property("server").Active is False
    assert len(printed) == 1 and printed[0][1].ErrorCode == 10048


# -- the server type ---------------------------------------------------------------------------
ECHO_SERVER = """
    property int serverType: 0
    property var lastClient: null
    function lastClientGone() { return lastClient === null }
    property var server: ServerSocket {
        id: server
        address: "127.0.0.1"; port: 0; active: true
        serverType: root.serverType
        onListen: (socket) => root.note("listen " + (socket === server.socket) + " "
                                        + (socket.localPort > 0) + " " + server.active)
        onAccept: (socket) => root.note("accept " + socket.connected)
        onClientConnect: (socket) => {
            root.lastClient = socket
            root.note("clientConnect " + server.activeConnections + " "
                      + (server.connections[server.connections.length - 1] === socket) + " "
                      + socket.remoteAddress)
        }
        onClientWrite: (socket) => root.note("clientWrite")
        onClientRead: (socket) => {
            const text = socket.receiveText()
            root.note("clientRead " + text + " " + (socket === root.lastClient))
            socket.sendText(text.toUpperCase())
        }
        onClientDisconnect: (socket) => root.note("clientDisconnect " + server.activeConnections)
    }
    property int clients: server.activeConnections
"""


@pytest.mark.parametrize("server_type", [stNonBlocking, stThreadBlocking],
                         ids=["stNonBlocking", "stThreadBlocking"])
def test_server_from_qml_accepts_a_client_and_echoes(qml, qtbot, server_type) -> None:
    root = qml.load(ECHO_SERVER, serverType=int(server_type))
    server = root.property("server")
    for name in ("OnListen", "OnClientConnect"):  # Python handlers of the VCL events
        getattr(server, name).connect(lambda Sender, Socket, name=name: qml.notes.append(name))
    qtbot.waitUntil(lambda: len(qml.notes) == 2, timeout=WAIT)  # listen
    port = server.property("socket").property("localPort")
    assert port == server.Socket.LocalPort > 0
    with socket.create_connection(("127.0.0.1", port), timeout=5) as peer:
        qtbot.waitUntil(lambda: "clientWrite" in qml.notes, timeout=WAIT)
        peer.sendall("ping ✓".encode())
        received = Received(peer)
        received.wait_for(qtbot, "PING ✓".encode())
        assert root.property("clients") == 1
    qtbot.waitUntil(lambda: root.property("clients") == 0, timeout=WAIT)
    # onListen has no dispatch method: QML first; client events: Python first, then QML
    assert qml.notes == ["listen true true true", "OnListen", "accept true", "OnClientConnect",
                         "clientConnect 1 true 127.0.0.1", "clientWrite",
                         "clientRead ping ✓ true", "clientDisconnect 1"]
    qtbot.waitUntil(lambda: call(root, "lastClientGone") is True, timeout=WAIT)
    assert qml.warnings == []


def test_server_connections_list_follows_clients_in_order(qml, qtbot) -> None:
    root = qml.load("""
        property var server: ServerSocket {
            id: server
            address: "127.0.0.1"; port: 0; active: true
            onClientRead: (socket) => socket.receiveText()
            onConnectionsChanged: root.note("connections " + server.connections.map(
                (c) => c.remotePort).join(","))
        }
        function broadcast(text) { for (const c of server.connections) c.sendText(text) }
    """)
    server = root.property("server")
    qtbot.waitUntil(lambda: server.Socket.LocalPort > 0, timeout=WAIT)
    port = server.Socket.LocalPort
    a = socket.create_connection(("127.0.0.1", port), timeout=5)
    qtbot.waitUntil(lambda: len(qml.notes) == 1, timeout=WAIT)
    b = socket.create_connection(("127.0.0.1", port), timeout=5)
    qtbot.waitUntil(lambda: len(qml.notes) == 2, timeout=WAIT)
    pa, pb = a.getsockname()[1], b.getsockname()[1]
    call(root, "broadcast", "to all\n")
    for peer in (a, b):
        Received(peer).wait_for(qtbot, b"to all\n")
    a.close()
    qtbot.waitUntil(lambda: len(qml.notes) == 3, timeout=WAIT)
    server.Close()  # closing drops b too
    qtbot.waitUntil(lambda: len(qml.notes) == 4, timeout=WAIT)
    b.close()
    assert qml.notes == [f"connections {pa}", f"connections {pa},{pb}", f"connections {pb}",
                         "connections "]
    assert server.property("activeConnections") == 0


# -- the QML chat sample against the real chat server ------------------------------------------
def start_chat_server() -> tuple[subprocess.Popen, int]:
    """samples/chat_server.py as a headless service on a port the system picks; its port."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, str(SAMPLES / "chat_server.py"), "--no-gui", "--port", "0",
         "--address", "127.0.0.1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8")
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline().strip()
    if not first.startswith("listening on port "):
        proc.kill()
        pytest.fail(f"the chat server did not start: {first!r} {proc.stderr.read()!r}")
    return proc, int(first.rsplit(" ", 1)[1])


def test_qml_chat_sample_talks_to_the_real_chat_server(qml, qtbot) -> None:
    sys.path.insert(0, str(SAMPLES))
    try:
        import chat_qml
    finally:
        sys.path.remove(str(SAMPLES))
    server, port = start_chat_server()
    assert server.stdout is not None
    try:
        window = chat_qml.load(qml.engine, "127.0.0.1", port, "alice", connect=True)
        shown: list[str] = []
        window.lineShown.connect(shown.append)
        state = window.findChild(QObject, "stateLabel")
        qtbot.waitUntil(lambda: state.property("text") == f"connected to 127.0.0.1:{port}",
                        timeout=WAIT)
        alice = window.property("client").Socket.LocalPort
        assert server.stdout.readline() == f"127.0.0.1:{alice} connected\n"
        bob = socket.create_connection(("127.0.0.1", port), timeout=5)
        with bob:
            assert "connected" in server.stdout.readline()      # bob
            window.findChild(QObject, "input").setProperty("text", "hello from QML")
            call(window, "sendInput")
            assert window.findChild(QObject, "input").property("text") == ""
            received = Received(bob)
            received.wait_for(qtbot, b"alice: hello from QML\n")
            bob.sendall("bob: hi alice — Grüße 👋\n".encode())
            qtbot.waitUntil(lambda: len(shown) == 2, timeout=WAIT)
            assert shown == ["alice: hello from QML", "bob: hi alice — Grüße 👋"]
            call(window, "disconnectFromServer")
            assert state.property("text") == "disconnected"
            assert window.property("client").Active is False
            assert [server.stdout.readline() for _ in range(3)] == [
                "alice: hello from QML\n", "bob: hi alice — Grüße 👋\n",
                f"127.0.0.1:{alice} left\n"]
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert qml.warnings == []

