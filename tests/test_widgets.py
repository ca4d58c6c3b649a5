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
from enum import Enum
from pathlib import Path

import pytest
from PySide6.QtCore import QMetaMethod, QMetaObject, QObject, Slot
from PySide6.QtTest import QSignalSpy
from PySide6.QtUiTools import QUiLoader
from PySide6.QtWidgets import QLabel, QWidget

import sockcomp
from sockcomp import ESocketError, ctBlocking, ctNonBlocking, foDiscard, stThreadBlocking
from sockcomp.widgets import CUSTOM_WIDGETS, ClientSocket, ServerSocket
from tests.test_qt_properties import CLIENT, READ_ONLY, SERVER

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


def test_assigning_a_handler_on_the_widget_assigns_it_on_the_component(qtbot) -> None:
    """``ui.clientSocket1.OnLookup = handler`` (Delphi's ``ClientSocket1.OnLookup := …``) is
    the component's assigned handler: a later assignment replaces it, None removes it."""
    client = ClientSocket()
    qtbot.addWidget(client)
    seen: list[str] = []
    client.OnLookup = lambda Sender, Socket: seen.append("first")
    client.OnLookup = lambda Sender, Socket: seen.append(f"second {Sender is client.component}")
    client.component.OnLookup.emit(client.component, client.Socket)
    assert seen == ["second True"]
    client.OnLookup = None
    client.component.OnLookup.emit(client.component, client.Socket)
    assert seen == ["second True"]
    with pytest.raises(TypeError, match="callable"):
        client.OnLookup = 42


# ---------------------------------------------------------------------------------------------
# every property of the component, mirrored from its meta-object

def own_properties(obj: QObject) -> dict:
    """The properties a widget or component adds to QWidget's or QObject's, in order."""
    mo = obj.metaObject()
    first = (QWidget if isinstance(obj, QWidget) else QObject).staticMetaObject.propertyCount()
    return {mo.property(i).name(): mo.property(i) for i in range(first, mo.propertyCount())}


@pytest.mark.parametrize("cls, values", [(ClientSocket, CLIENT), (ServerSocket, SERVER)],
                         ids=["ClientSocket", "ServerSocket"])
def test_the_widget_has_every_property_of_its_component(qtbot, cls, values) -> None:
    widget = cls()
    qtbot.addWidget(widget)
    ours, theirs = own_properties(widget), own_properties(widget.component)
    assert list(ours) == sorted(theirs, key=str.lower)  # all of them, Object Inspector order
    assert set(ours) == set(values)  # the list test_qt_properties keeps
    for name, prop in ours.items():
        component_prop = theirs[name]
        writable = name not in READ_ONLY
        assert prop.isWritable() == component_prop.isWritable() == writable, name
        assert prop.isDesignable() == writable, name  # read-only: runtime state, not designed
        assert bytes(prop.notifySignal().name()).decode() == f"{name}Changed"
        assert [bytes(n).decode() for n in prop.notifySignal().parameterNames()] == [name]
        assert getattr(cls, name).__doc__ == getattr(type(widget.component), name).__doc__
        assert callable(getattr(widget, f"get{name}"))
        assert hasattr(widget, f"set{name}") == writable, name
        if component_prop.isEnumType():  # typed with the widget's own T-enum: drop-downs
            enum, component_enum = prop.enumerator(), component_prop.enumerator()
            assert (enum.scope(), enum.name()) == (cls.__name__, "T" + component_enum.name())
            keys = [enum.key(i) for i in range(enum.keyCount())]
            assert keys == [component_enum.key(i) for i in range(component_enum.keyCount())]
            assert [enum.value(i) for i in range(enum.keyCount())] == \
                [component_enum.value(i) for i in range(component_enum.keyCount())]
        else:
            assert prop.typeName() == component_prop.typeName(), name


@pytest.mark.parametrize("cls, values", [(ClientSocket, CLIENT), (ServerSocket, SERVER)],
                         ids=["ClientSocket", "ServerSocket"])
def test_every_setter_reaches_the_component_and_signals_once(qtbot, cls, values) -> None:
    widget = cls()
    qtbot.addWidget(widget)
    widget.Loaded()
    for name, value in values.items():
        if value is None:
            continue
        spy = QSignalSpy(getattr(widget, f"{name}Changed"))
        getattr(widget, f"set{name}")(value)  # what uic emits for a hand-written .ui
        assert widget.component.property(name) == value and widget.property(name) == value
        assert getattr(widget, name) == value, name
        assert spy.count() == 1 and spy.at(0)[0] == value, name
        if isinstance(value, Enum):  # read back as the widget's own enum
            assert type(getattr(widget, name)) is getattr(cls, "T" + type(value).__name__)
    assert cls.TFrameOverflow.foDiscard == foDiscard
    assert widget.FrameOverflow is cls.TFrameOverflow.foDiscard


def test_line_end_takes_escapes(qtbot) -> None:
    """Designer shows and saves LineEnd escaped (a raw CR does not survive a .ui): the widget
    takes both forms, and reads back the real one at run time."""
    client = ClientSocket()
    qtbot.addWidget(client)
    assert client.setProperty("LineEnd", "\\r\\n")
    assert client.component.LineEnd == "\r\n" and client.LineEnd == "\r\n"
    client.setLineEnd("\n")
    assert client.property("LineEnd") == "\n"
    with pytest.raises(ESocketError, match="Invalid LineEnd"):
        client.setLineEnd("\\")
    assert client.LineEnd == "\n"


def test_read_only_values_and_their_signals_come_through(qtbot) -> None:
    client = ClientSocket()
    qtbot.addWidget(client)
    spy = QSignalSpy(client.KeepAliveDetectionTimeChanged)
    client.KeepAliveCount = 2
    assert client.KeepAliveDetectionTime == client.component.KeepAliveDetectionTime
    assert spy.count() == 1 and spy.at(0)[0] == client.KeepAliveDetectionTime
    assert client.Reconnecting is False and client.ReconnectAttempt == 0
    assert not client.setProperty("Reconnecting", True)  # read-only, as on the component
    with pytest.raises(AttributeError, match="has a read-only property 'Reconnecting'"):
        client.setReconnecting(True)


def test_events_carry_the_component_argument_names(qtbot) -> None:
    for widget in (ClientSocket(), ServerSocket()):
        qtbot.addWidget(widget)
        wmo, cmo = widget.metaObject(), widget.component.metaObject()
        for i in range(cmo.methodCount()):
            method = cmo.method(i)
            if method.methodType() != QMetaMethod.MethodType.Signal or \
                    not bytes(method.name()).startswith(b"On"):
                continue
            ours = wmo.method(wmo.indexOfSignal(bytes(method.methodSignature()).decode()))
            assert [bytes(n) for n in ours.parameterNames()] == \
                [bytes(n) for n in method.parameterNames()]
    mo = ClientSocket().metaObject()  # not staticMetaObject: see test_qml's property test
    error = mo.method(mo.indexOfSignal("OnError(PyObject,PyObject,PyObject,PyObject)"))
    assert [bytes(n).decode() for n in error.parameterNames()] == \
        ["Sender", "Socket", "ErrorEvent", "ErrorCode"]


# ---------------------------------------------------------------------------------------------
# a property the component does not have

BOGUS_FORM = """<?xml version="1.0" encoding="UTF-8"?>
<ui version="4.0"><class>Form</class>
 <widget class="QWidget" name="Form">
  <widget class="ServerSocket" name="serverSocket1">
   <property name="Active" {stdset}><bool>true</bool></property>
   <property name="Address" {stdset}><string notr="true">127.0.0.1</string></property>
   <property name="Bogus" {stdset}><number>1</number></property>
   <property name="Port" {stdset}><number>0</number></property>
  </widget>
  <widget class="ClientSocket" name="clientSocket1">
   <property name="Adress" {stdset}><string notr="true">127.0.0.1</string></property>
   <property name="Active" {stdset}><bool>true</bool></property>
   <property name="Port" {stdset}><number>1</number></property>
  </widget>
  <widget class="ServerSocket" name="serverSocket2">
   <property name="Active" {stdset}><bool>true</bool></property>
   <property name="Address" {stdset}><string notr="true">127.0.0.1</string></property>
   <property name="Port" {stdset}><number>0</number></property>
  </widget>
 </widget>
 <customwidgets>
  <customwidget><class>ClientSocket</class><extends>QWidget</extends><header>sockcomp.widgets</header></customwidget>
  <customwidget><class>ServerSocket</class><extends>QWidget</extends><header>sockcomp.widgets</header></customwidget>
 </customwidgets>
</ui>
"""


def load_bogus_form(how: str, tmp_path: Path, qtbot) -> QWidget:
    ui = tmp_path / "bogus.ui"
    ui.write_text(BOGUS_FORM.format(stdset='stdset="0"'), encoding="utf-8")
    window = QWidget()
    qtbot.addWidget(window)
    if how == "uic":
        code = subprocess.run([str(UIC), str(ui)], capture_output=True, text=True,
                              check=True).stdout
        assert 'self.serverSocket1.setProperty(u"Bogus", 1)' in code
        namespace: dict = {}
        exec(compile(code, "ui_bogus.py", "exec"), namespace)
        namespace["Ui_Form"]().setupUi(window)  # does not raise: the hook reports
    else:
        loader = QUiLoader()
        for cls in CUSTOM_WIDGETS:
            loader.registerCustomWidget(cls)
        assert loader.load(str(ui), window) is not None
    return window


@pytest.mark.parametrize("how", ["uic", "QUiLoader"])
def test_an_unknown_property_is_reported_and_keeps_the_component_closed(qtbot, tmp_path, hook,
                                                                        how) -> None:
    window = load_bogus_form(how, tmp_path, qtbot)
    server1 = window.findChild(ServerSocket, "serverSocket1")
    client1 = window.findChild(ClientSocket, "clientSocket1")
    server2 = window.findChild(ServerSocket, "serverSocket2")
    # one ESocketError per unknown property, naming it and the widget; the form loaded whole
    assert [type(e) for e in hook] == [ESocketError, ESocketError]
    assert str(hook[0]) == ("ServerSocket 'serverSocket1' has no property 'Bogus' (set by its "
                            "form); the form's Active is ignored, the component stays closed")
    assert "ClientSocket 'clientSocket1' has no property 'Adress'" in str(hook[1])
    assert server1.Port == 0 and client1.Port == 1 and server2 is not None
    # Active=True before the unknown property was withdrawn, after it refused
    assert not server1.Active and not client1.Active and server2.Active
    for widget in (server1, client1, server2):
        widget.Loaded()  # what the next event-loop turn does: open what the form asked for
    assert server2.Active and server2.Socket.LocalPort > 0  # the sound component opened
    assert server1.Socket.SocketHandle == -1 and not server1.Active
    assert client1.Socket.SocketHandle == -1 and not client1.Active
    server2.Close()
    server1.setProperty("Tag", 1)  # after the loading phase a dynamic property is just that
    assert len(hook) == 2 and server1.property("Tag") == 1
    server1.Active = True  # and code may still open the component
    assert server1.Active and server1.Socket.LocalPort > 0
    server1.Close()


def test_an_unknown_property_in_a_hand_written_ui_fails_setupUi(qtbot, tmp_path, hook) -> None:
    """Without stdset="0" uic calls setBogus(), which does not exist."""
    ui = tmp_path / "bogus.ui"
    ui.write_text(BOGUS_FORM.format(stdset=""), encoding="utf-8")
    code = subprocess.run([str(UIC), str(ui)], capture_output=True, text=True, check=True).stdout
    assert "self.serverSocket1.setBogus(1)" in code
    namespace: dict = {}
    exec(compile(code, "ui_bogus.py", "exec"), namespace)
    window = QWidget()
    qtbot.addWidget(window)
    with pytest.raises(AttributeError, match=r"ServerSocket 'serverSocket1' has no property "
                                             r"'Bogus' \(no setBogus\(\)\)"):
        namespace["Ui_Form"]().setupUi(window)
    server1 = window.findChild(ServerSocket, "serverSocket1")
    server1.Loaded()
    assert not server1.Active and server1.Socket.SocketHandle == -1
    assert hook == []
