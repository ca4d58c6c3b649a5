"""The Designer placeholder widgets (sockcomp.widgets): properties, enums, signals, loading.

Forms are built the ways users build them: uic-generated code (also the ``setHost`` style of
hand-written .ui files) and QUiLoader, on real loopback sockets.
"""
# ruff: noqa: E501  (the .ui fixtures below are one XML element per line)
from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PySide6.QtCore import QMetaMethod, QMetaObject, QObject, Slot
from PySide6.QtUiTools import QUiLoader
from PySide6.QtWidgets import QLabel, QWidget

import sockcomp
from sockcomp import ESocketError, ctBlocking, ctNonBlocking, stThreadBlocking
from sockcomp.widgets import CUSTOM_WIDGETS, ClientSocket, ServerSocket

UIC = Path(sys.executable).with_name("pyside6-uic")

FORM = """<?xml version="1.0" encoding="UTF-8"?>
<ui version="4.0"><class>Form</class>
 <widget class="QWidget" name="Form">
  <layout class="QVBoxLayout" name="verticalLayout">
   <item><widget class="QLabel" name="label"><property name="text"><string>init</string></property></widget></item>
  </layout>
  <widget class="ServerSocket" name="serverSocket1">
   <property name="Active" {stdset}><bool>true</bool></property>
   <property name="Address" {stdset}><string notr="true">127.0.0.1</string></property>
   <property name="Port" {stdset}><number>{port}</number></property>
   <property name="ServerType" {stdset}><enum>ServerSocket::TServerType::stThreadBlocking</enum></property>
   <property name="ThreadCacheSize" {stdset}><number>3</number></property>
   <property name="Framing" {stdset}><enum>ServerSocket::TFramingMode::fmLine</enum></property>
  </widget>
  <widget class="ClientSocket" name="clientSocket1">
   <property name="Active" {stdset}><bool>true</bool></property>
   <property name="Host" {stdset}><string>127.0.0.1</string></property>
   <property name="Address" {stdset}><string notr="true">127.0.0.1</string></property>
   <property name="Port" {stdset}><number>{port}</number></property>
   <property name="ClientType" {stdset}><enum>ClientSocket::TClientType::ctNonBlocking</enum></property>
   <property name="ConnectTimeout" {stdset}><number>4000</number></property>
   <property name="Framing" {stdset}><enum>ClientSocket::TFramingMode::fmLine</enum></property>
  </widget>
 </widget>
 <customwidgets>
  <customwidget><class>ClientSocket</class><extends>QWidget</extends><header>sockcomp.widgets</header></customwidget>
  <customwidget><class>ServerSocket</class><extends>QWidget</extends><header>sockcomp.widgets</header></customwidget>
 </customwidgets>
 <connections>
  <connection><sender>clientSocket1</sender><signal>OnDisconnect(PyObject,PyObject)</signal><receiver>label</receiver><slot>clear()</slot></connection>
 </connections>
</ui>
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Window(QWidget):
    """A form owner with Delphi-style handlers, auto-connected by name."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, object]] = []

    @Slot(object, object)
    def on_serverSocket1_OnListen(self, Sender, Socket) -> None:
        self.events.append(("listen", Sender))

    @Slot(object, object)
    def on_serverSocket1_OnClientConnect(self, Sender, Socket) -> None:
        self.events.append(("client-connect", Sender))

    @Slot(object, object)
    def on_clientSocket1_OnConnect(self, Sender, Socket) -> None:
        self.events.append(("connect", Sender))
        Socket.SendLine("hello from the form — ✓")

    @Slot(object, object, object)
    def on_clientSocket1_OnLineReceived(self, Sender, Socket, Line) -> None:
        self.events.append(("line", Line))


def check_loaded_form(qtbot, window: Window, port: int) -> None:
    """The form's properties, and Active=True from the .ui opening after the load."""
    server = window.findChild(ServerSocket, "serverSocket1")
    client = window.findChild(ClientSocket, "clientSocket1")
    label = window.findChild(QLabel, "label")
    assert type(server) is ServerSocket and type(client) is ClientSocket
    # every value is restored, and nothing has opened yet (the component's loading phase)
    assert (server.Address, server.Port, server.ThreadCacheSize) == ("127.0.0.1", port, 3)
    assert server.ServerType == stThreadBlocking and server.component.ServerType == 1
    assert (client.Host, client.Address, client.Port) == ("127.0.0.1", "127.0.0.1", port)
    assert client.ClientType == ctNonBlocking and client.ConnectTimeout == 4000
    assert client.Framing == sockcomp.fmLine
    assert server.Active and client.Active  # the stored wish reads back, as in Delphi
    assert server.Socket.SocketHandle == -1 and client.Socket.SocketHandle == -1
    # the event loop turns: both open, handlers auto-connected, Sender is the widget
    echo = []
    server.OnClientLineReceived.connect(lambda S, Sock, line: (echo.append(line),
                                                               Sock.SendLine(line.upper())))
    qtbot.waitUntil(lambda: ("line", "HELLO FROM THE FORM — ✓") in window.events, timeout=5000)
    assert echo == ["hello from the form — ✓"]
    names = [name for name, _ in window.events]
    assert names[0] == "listen" and "connect" in names and "client-connect" in names
    senders = dict(window.events)
    assert senders["listen"] is server and senders["connect"] is client
    assert senders["client-connect"] is server.Socket  # OnClient*: the ServerWinSocket, as VCL
    # the connection drawn in Designer (OnDisconnect → label.clear()) is live
    assert label.text() == "init"
    with qtbot.waitSignal(client.OnDisconnect, timeout=5000):
        client.Close()
    assert label.text() == ""
    server.Close()
    assert not server.Active and not client.Active


@pytest.mark.parametrize("stdset", ['stdset="0"', ""], ids=["designer-saved", "hand-written"])
def test_uic_form_opens_after_setupUi(qtbot, tmp_path, stdset) -> None:
    port = free_port()
    ui = tmp_path / "form.ui"
    ui.write_text(FORM.format(stdset=stdset, port=port), encoding="utf-8")
    code = subprocess.run([str(UIC), str(ui)], capture_output=True, text=True, check=True).stdout
    assert "from sockcomp.widgets import" in code
    if stdset:
        assert 'setProperty(u"ServerType", ServerSocket.TServerType.stThreadBlocking)' in code
    else:  # uic calls the Qt-style setters
        assert "self.clientSocket1.setHost(" in code
        assert "self.serverSocket1.setActive(True)" in code
    namespace: dict = {}
    exec(compile(code, "ui_form.py", "exec"), namespace)
    window = Window()
    qtbot.addWidget(window)
    namespace["Ui_Form"]().setupUi(window)
    check_loaded_form(qtbot, window, port)


def test_quiloader_form_opens_after_load(qtbot, tmp_path) -> None:
    port = free_port()
    ui = tmp_path / "form.ui"
    ui.write_text(FORM.format(stdset='stdset="0"', port=port), encoding="utf-8")
    loader = QUiLoader()
    for cls in CUSTOM_WIDGETS:
        loader.registerCustomWidget(cls)
    window = Window()
    qtbot.addWidget(window)
    loader.load(str(ui), window)
    QMetaObject.connectSlotsByName(window)
    check_loaded_form(qtbot, window, port)


def test_placeholder_hidden_at_run_time(qtbot) -> None:
    form = QWidget()
    qtbot.addWidget(form)
    client, server = ClientSocket(form), ServerSocket(form)
    form.show()
    qtbot.waitExposed(form)
    assert client.isHidden() and not client.isVisible() and not server.isVisible()
    assert client.size().width() == 32 and client.component.parent() is client
    assert isinstance(client.component, sockcomp.ClientSocket)
    assert isinstance(server.component, sockcomp.ServerSocket)
    image = client.grab().toImage()  # the icon is painted (not a blank square)
    assert len({image.pixel(x, y) for x in range(0, 32, 3) for y in range(0, 32, 3)}) > 4


def test_properties_and_enums_in_the_meta_object(qtbot) -> None:
    client = ClientSocket()
    qtbot.addWidget(client)
    mo = client.metaObject()
    props = {mo.property(i).name(): mo.property(i)
             for i in range(mo.propertyOffset(), mo.propertyCount())}
    assert {"Host", "Address", "Port", "Service", "Active", "ClientType",
            "ConnectTimeout"} <= set(props)
    assert props["ClientType"].isEnumType()
    enum = props["ClientType"].enumerator()
    assert (enum.scope(), enum.name()) == ("ClientSocket", "TClientType")
    assert [enum.key(i) for i in range(enum.keyCount())] == ["ctNonBlocking", "ctBlocking"]
    server = ServerSocket()
    qtbot.addWidget(server)
    smo = server.metaObject()
    sprops = {smo.property(i).name(): smo.property(i)
              for i in range(smo.propertyOffset(), smo.propertyCount())}
    assert {"Port", "Service", "Address", "ServerType", "ThreadCacheSize", "Active"} <= set(sprops)
    senum = sprops["ServerType"].enumerator()
    assert [senum.key(i) for i in range(senum.keyCount())] == ["stNonBlocking", "stThreadBlocking"]
    # every event of the component is a signal of the widget with the same signature
    for widget, component in ((client, client.component), (server, server.component)):
        wmo, cmo = widget.metaObject(), component.metaObject()
        wanted = {bytes(cmo.method(i).methodSignature()) for i in range(cmo.methodCount())
                  if cmo.method(i).methodType() == QMetaMethod.MethodType.Signal
                  and bytes(cmo.method(i).name()).startswith(b"On")}
        have = {bytes(wmo.method(i).methodSignature()) for i in range(wmo.methodCount())}
        assert len(wanted) >= 10 and wanted <= have


def test_setters_accept_int_enum_and_vcl_enum(qtbot) -> None:
    client = ClientSocket()
    qtbot.addWidget(client)
    for value in (1, ClientSocket.TClientType.ctBlocking):  # what uic / QUiLoader pass
        client.ClientType = ctNonBlocking
        assert client.setProperty("ClientType", value)
        assert client.ClientType == ctBlocking and client.component.ClientType == ctBlocking
    for value in (1, ClientSocket.TClientType.ctBlocking, ctBlocking):  # what code passes
        client.setClientType(0)
        client.setClientType(value)
        assert client.component.ClientType == ctBlocking
        client.ClientType = 0
        client.ClientType = value
        assert client.component.ClientType == ctBlocking
    client.setProperty("ClientType", 0)
    assert client.property("ClientType") == 0 and client.ClientType is \
        ClientSocket.TClientType.ctNonBlocking
    # the VCL rules come from the component: Port range, Host beats Address …
    with pytest.raises(ESocketError):
        client.setPort(70000)
    client.setHost("example.org")
    client.setPort(80)
    client.setService("http")
    assert (client.component.Host, client.component.Port, client.component.Service) == \
        ("example.org", 80, "http")
    server = ServerSocket()
    qtbot.addWidget(server)
    server.setServerType(ServerSocket.TServerType.stThreadBlocking)
    server.ThreadCacheSize = 2
    assert server.component.ServerType == stThreadBlocking and server.component.ThreadCacheSize == 2


def test_error_var_is_shared_with_the_component(qtbot, hook) -> None:
    """OnError through the widget: the handler's ErrorCode reaches the component (Var)."""
    client = ClientSocket()
    qtbot.addWidget(client)
    client.Loaded()
    client.Address, client.Port = "127.0.0.1", free_port()  # nothing listens: refused
    seen = []

    def on_error(Sender, Socket, ErrorEvent, ErrorCode) -> None:
        seen.append((Sender, ErrorEvent, ErrorCode.value))
        ErrorCode.value = 0

    client.OnError.connect(on_error)
    with qtbot.waitSignal(client.OnDisconnect, timeout=5000):
        client.Open()
    assert seen == [(client, sockcomp.eeConnect, 10061)]
    assert hook == []  # suppressed through the widget's signal


def test_attribute_fallback_and_methods(qtbot) -> None:
    server = ServerSocket()
    qtbot.addWidget(server)
    server.Loaded()
    server.Address, server.Port = "127.0.0.1", 0
    with qtbot.waitSignal(server.OnListen, timeout=2000):
        server.Open()
    assert server.Active and server.Socket.LocalPort > 0
    assert server.Socket is server.component.Socket
    assert server.Socket.ActiveConnections == 0
    server.LineEnd = "\r\n"
    assert server.component.LineEnd == "\r\n"
    server.Close()
    assert not server.Active
    with pytest.raises(AttributeError):
        server.NoSuchThing  # noqa: B018


def test_nothing_opens_at_design_time(qtbot) -> None:
    code = textwrap.dedent("""
        import sys
        from PySide6.QtWidgets import QApplication
        app = QApplication([])
        app.setApplicationName("Designer"); app.setOrganizationName("QtProject")
        from sockcomp.widgets import ServerSocket
        from PySide6.QtWidgets import QWidget
        form = QWidget(); s = ServerSocket(form); s.Port = 0; s.Active = True
        form.show(); app.processEvents(); s.Loaded(); app.processEvents()
        print(s.isVisible(), s.Active, s.Socket.SocketHandle)
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env={**__import__("os").environ,
                                          "QT_QPA_PLATFORM": "offscreen"})
    assert out.stdout.split() == ["True", "True", "-1"], out.stderr


def test_signals_forward_to_receivers_in_order(qtbot) -> None:
    """The widget forwards from its constructor: its handlers run where that connection sits,
    before handlers connected to the component later (one connection order, one Var)."""
    client = ClientSocket()
    qtbot.addWidget(client)
    order: list[str] = []
    client.component.OnLookup.connect(lambda *a: order.append("component"))
    client.OnLookup.connect(lambda *a: order.append("widget"))
    client.component.OnLookup.emit(client.component, client.Socket)
    assert order == ["widget", "component"]
    assert isinstance(client, QObject)
