"""The components' properties are real Qt properties: typed, with change signals, visible to
``QObject.property()``/``setProperty()``, QSignalSpy, bindings and QML (issue 18)."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QMetaProperty, QObject
from PySide6.QtTest import QSignalSpy

from sockcomp import (
    ClientSocket,
    ClientType,
    ESocketError,
    FrameOverflow,
    FramingMode,
    ServerSocket,
    ServerType,
    ctBlocking,
    fmLine,
    foDiscard,
    stThreadBlocking,
)
from tests.util import EventLog

WAIT = 5000

#: every property of each component: (name, a valid value different from the default)
COMMON = {
    "Active": None, "Address": "127.0.0.1", "Port": 4242, "Service": "echo", "UseTLS": True,
    "AllowHalfClose": True, "Encoding": "latin-1", "Framing": fmLine,
    "FrameOverflow": foDiscard, "LineEnd": "\r\n", "MaxFrameSize": 4096,
    "SendQueueLimit": 1 << 20, "SendQueueLowWater": 1024, "IdleTimeout": 5000,
    "HandshakeTimeout": 7000, "KeepAlive": True, "KeepAliveTime": 3000,
    "KeepAliveInterval": 2000, "KeepAliveCount": 3, "KeepAliveDetectionTime": None,
}
CLIENT = {**COMMON, "Host": "localhost", "ClientType": ctBlocking, "ConnectTimeout": 1500,
          "AutoReconnect": True, "ReconnectInterval": 500, "ReconnectMaxInterval": 8000,
          "ReconnectAttempt": None, "Reconnecting": None, "TLSVerifyPeer": False,
          "TLSCAFile": "ca.pem", "TLSServerName": "example.org"}
SERVER = {**COMMON, "ServerType": stThreadBlocking, "ThreadCacheSize": 3,
          "MaxConnections": 9, "BannerTooBusy": "busy\n", "TLSCertFile": "cert.pem",
          "TLSKeyFile": "key.pem"}
ENUMS = {"ClientType": ClientType, "ServerType": ServerType, "Framing": FramingMode,
         "FrameOverflow": FrameOverflow}
READ_ONLY = {"KeepAliveDetectionTime", "ReconnectAttempt", "Reconnecting"}


def meta_property(obj: QObject, name: str) -> QMetaProperty:
    mo = obj.metaObject()
    index = mo.indexOfProperty(name)
    assert index >= 0, f"{type(obj).__name__} has no Qt property {name}"
    return mo.property(index)


@pytest.mark.parametrize("cls, props", [(ClientSocket, CLIENT), (ServerSocket, SERVER)],
                         ids=["ClientSocket", "ServerSocket"])
def test_every_property_is_a_qt_property_with_a_change_signal(qapp, cls, props):
    comp = cls()
    mo = comp.metaObject()
    own = {mo.property(i).name() for i in range(mo.propertyCount())} - {"objectName"}
    assert own == set(props)  # nothing missing, nothing undocumented added
    for name in props:
        prop = meta_property(comp, name)
        assert prop.hasNotifySignal(), name
        assert bytes(prop.notifySignal().name()).decode() == f"{name}Changed"
        assert prop.isWritable() == (name not in READ_ONLY), name
        assert prop.isReadable()
        assert getattr(cls, name).__doc__, f"{name} has no docstring"
        if name in ENUMS:  # Qt enums: Designer and QML get names and drop-downs
            assert prop.isEnumType(), name
            enum = prop.enumerator()
            keys = [enum.key(i) for i in range(enum.keyCount())]
            assert keys == [member.name for member in ENUMS[name]]


@pytest.mark.parametrize("cls, props", [(ClientSocket, CLIENT), (ServerSocket, SERVER)],
                         ids=["ClientSocket", "ServerSocket"])
def test_set_property_round_trips_and_signals_each_change_once(qapp, cls, props):
    comp = cls()
    comp.Loaded()
    for name, value in props.items():
        if value is None:
            continue
        spy = QSignalSpy(getattr(comp, f"{name}Changed"))
        assert comp.setProperty(name, value)
        got = comp.property(name)
        assert got == value and getattr(comp, name) == value, name
        if name in ENUMS:
            assert isinstance(getattr(comp, name), ENUMS[name])
        assert spy.count() == 1, name
        assert spy.at(0)[0] == value
        comp.setProperty(name, value)  # the same value again: no signal
        assert spy.count() == 1, name


def test_python_attributes_and_qt_properties_are_one_and_the_same(qapp):
    cli = ClientSocket()
    spy = QSignalSpy(cli.HostChanged)
    cli.Host = "example.org"
    assert cli.property("Host") == "example.org" and spy.count() == 1
    cli.setProperty("Port", 80)
    assert cli.Port == 80
    cli.KeepAliveInterval = 100  # Linux takes whole seconds: read back as set to the OS
    assert cli.property("KeepAliveInterval") == 1000
    assert cli.KeepAliveDetectionTime == 30_000 + 4 * 1000


def test_bad_values_raise_from_python_and_leave_the_property_as_it_was(qapp):
    cli = ClientSocket()
    spy = QSignalSpy(cli.PortChanged)
    with pytest.raises(ESocketError, match="Invalid port number 70000"):
        cli.Port = 70000
    with pytest.raises(ESocketError, match="Invalid ReconnectInterval"):
        cli.ReconnectInterval = 0
    with pytest.raises(ESocketError, match="Invalid Encoding"):
        cli.Encoding = "no-such-codec"
    assert cli.Port == 0 and spy.count() == 0


def test_keepalive_detection_time_tells_when_it_changes(qapp):
    srv = ServerSocket()
    spy = QSignalSpy(srv.KeepAliveDetectionTimeChanged)
    srv.KeepAliveCount = 2
    srv.KeepAliveInterval = 3000
    assert [spy.at(i)[0] for i in range(spy.count())] == [30_000 + 2 * 5000, 30_000 + 2 * 3000]


def test_active_changes_are_signalled_before_the_event_that_moves_them(qtbot):
    srv = ServerSocket()
    srv.Loaded()
    srv.Address, srv.Port = "127.0.0.1", 0
    order: list[str] = []
    srv.ActiveChanged.connect(lambda value: order.append(f"server Active={value}"))
    srv.OnListen.connect(lambda Sender, Socket: order.append("OnListen"))
    srv.Open()
    cli = ClientSocket()
    cli.Loaded()
    cli.Address, cli.Port = "127.0.0.1", srv.Socket.LocalPort
    log = EventLog(cli)
    cli.ActiveChanged.connect(lambda value: order.append(f"client Active={value}"))
    cli.OnConnect.connect(lambda Sender, Socket: order.append("OnConnect"))
    cli.OnDisconnect.connect(lambda Sender, Socket: order.append("OnDisconnect"))
    cli.Open()
    qtbot.waitUntil(lambda: log.count("OnConnect") == 1, timeout=WAIT)
    cli.Close()
    srv.Close()
    assert order == ["server Active=True", "OnListen", "client Active=True", "OnConnect",
                     "client Active=False", "OnDisconnect", "server Active=False"]


def test_events_carry_their_argument_names(qapp):
    """Designer's signal/slot editor and QML show the VCL's argument names."""
    for comp, signature, names in (
            (ClientSocket(), "OnError(PyObject,PyObject,PyObject,PyObject)",
             ["Sender", "Socket", "ErrorEvent", "ErrorCode"]),
            (ServerSocket(), "OnGetThread(PyObject,PyObject,PyObject)",
             ["Sender", "ClientSocket", "SocketThread"]),
            (ServerSocket(), "OnClientLineReceived(PyObject,PyObject,PyObject)",
             ["Sender", "Socket", "Line"])):
        mo = comp.metaObject()
        method = mo.method(mo.indexOfSignal(signature))
        assert [bytes(n).decode() for n in method.parameterNames()] == names
