"""The real Qt Designer (``pyside6-designer``, offscreen) with the sockcomp plugin.

One Designer run (about 2 s) per plugin entry: ``python -m sockcomp.designer`` (the launcher, as
users start it) and ``designer_plugins/`` (a checkout, set up by hand). Inside Designer the probe
(sockcomp/designer/_probe.py) records the widget box, loads forms into form windows, reads the
property editor, edits properties through the property sheet and saves what Designer would
save. The saved .ui files are then compiled with pyside6-uic and loaded with QUiLoader, and
``Active=True`` in them must connect / listen once the form is loaded.

A form that sets every property of both components (the values of test_qt_properties: none of
them a default) goes through uic, QUiLoader and a Designer load-and-save; each component must
end up with each value.
"""
# ruff: noqa: E501  (the .ui fixtures below are one XML element per line)
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from enum import Enum
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from PySide6.QtCore import QMetaObject, Slot
from PySide6.QtUiTools import QUiLoader
from PySide6.QtWidgets import QLabel, QWidget

from sockcomp.widgets import CUSTOM_WIDGETS, ClientSocket, ServerSocket
from tests.test_qt_properties import CLIENT, SERVER

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
UIC = Path(sys.executable).with_name("pyside6-uic")

FORM = """<?xml version="1.0" encoding="UTF-8"?>
<ui version="4.0"><class>Form</class>
 <widget class="QWidget" name="Form">
  <property name="geometry"><rect><x>0</x><y>0</y><width>300</width><height>120</height></rect></property>
  <layout class="QVBoxLayout" name="verticalLayout">
   <item><widget class="QLabel" name="label"><property name="text"><string>init</string></property></widget></item>
  </layout>
  <widget class="ServerSocket" name="serverSocket1">
   <property name="geometry"><rect><x>200</x><y>10</y><width>32</width><height>32</height></rect></property>
   <property name="Address"><string notr="true">127.0.0.1</string></property>
  </widget>
  <widget class="ClientSocket" name="clientSocket1">
   <property name="geometry"><rect><x>240</x><y>10</y><width>32</width><height>32</height></rect></property>
   <property name="Host"><string notr="true">127.0.0.1</string></property>
   <property name="Port"><number>5000</number></property>
   <property name="ClientType"><enum>ClientSocket::TClientType::ctBlocking</enum></property>
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


#: every writable property of each component with a value that is not its default
EVERY = {cls: {**{k: v for k, v in values.items() if v is not None}, "Active": True}
         for cls, values in ((ClientSocket, CLIENT), (ServerSocket, SERVER))}


def ui_value(cls: type, name: str, value: Any) -> str:
    """``value`` of property ``name`` as the element of a .ui ``<property>``, as Designer
    writes it (LineEnd with escapes: uic and XML readers lose a CR, even as ``&#13;``)."""
    if name == "LineEnd":
        value = value.encode("unicode_escape").decode("ascii")
    if isinstance(value, bool):
        return f"<bool>{str(value).lower()}</bool>"
    if isinstance(value, Enum):
        return f"<enum>{cls.__name__}::T{type(value).__name__}::{value.name}</enum>"
    if isinstance(value, int):
        return f"<number>{value}</number>"
    return f'<string notr="true">{escape(value)}</string>'


def every_property_ui(stdset: bool = True) -> str:
    """A form with a ClientSocket and a ServerSocket that set every property."""
    body = ""
    for cls, name in ((ClientSocket, "clientSocket1"), (ServerSocket, "serverSocket1")):
        flag = ' stdset="0"' if stdset else ""
        props = "".join(
            f'\n   <property name="{prop}"{flag}>{ui_value(cls, prop, EVERY[cls][prop])}</property>'
            for prop in sorted(EVERY[cls], key=str.lower))
        body += f'\n  <widget class="{cls.__name__}" name="{name}">{props}\n  </widget>'
    return FORM_TEMPLATE.format(body=body)


FORM_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<ui version="4.0"><class>Form</class>
 <widget class="QWidget" name="Form">
  <property name="geometry"><rect><x>0</x><y>0</y><width>300</width><height>120</height></rect></property>{body}
 </widget>
 <customwidgets>
  <customwidget><class>ClientSocket</class><extends>QWidget</extends><header>sockcomp.widgets</header></customwidget>
  <customwidget><class>ServerSocket</class><extends>QWidget</extends><header>sockcomp.widgets</header></customwidget>
 </customwidgets>
</ui>
"""


def check_every_value(window: QWidget) -> None:
    """Each component of an every-property form got each value (its Qt properties say so),
    and the form's Active=True is pending (it is called off before the loop turns: UseTLS,
    Service 'echo' … are no place to connect or listen)."""
    widgets = {cls: window.findChild(cls, name)
               for cls, name in ((ClientSocket, "clientSocket1"), (ServerSocket, "serverSocket1"))}
    pending = {cls: widget.component.Active for cls, widget in widgets.items() if widget}
    for widget in widgets.values():
        if widget is not None:
            widget.Close()
    assert pending == {ClientSocket: True, ServerSocket: True}
    for cls, widget in widgets.items():
        assert type(widget) is cls
        component = widget.component
        for prop, value in EVERY[cls].items():
            if prop == "Active":
                continue
            assert component.property(prop) == value, (cls, prop, component.property(prop))
            assert widget.property(prop) == value, (cls, prop)
            if isinstance(value, Enum):
                assert isinstance(getattr(component, prop), type(value))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_designer(tmp: Path, script: dict, command: list[str], env: dict) -> dict:
    """Start the real Designer with the probe script; returns the probe's findings."""
    script["result"] = str(tmp / "result.json")
    (tmp / "script.json").write_text(json.dumps(script), encoding="utf-8")
    env = dict(env, QT_QPA_PLATFORM="offscreen", SOCKCOMP_DESIGNER_PROBE=str(tmp / "script.json"),
               QT_LOGGING_RULES="qt.pysideplugin.debug=true")
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=90)
    # the plugin loaded our register file (PySide's own log); no Python error in it
    assert "register_sockcomp.py" in run.stderr, run.stderr
    assert "Error running" not in run.stderr, run.stderr
    assert (tmp / "result.json").exists(), (run.returncode, run.stderr[-3000:])
    result = json.loads((tmp / "result.json").read_text(encoding="utf-8"))
    assert "error" not in result, result.get("error")
    return result


@pytest.fixture(scope="module")
def designer(tmp_path_factory) -> dict:
    """One run of ``python -m sockcomp.designer`` with a form of ours, the samples, a drop."""
    tmp = tmp_path_factory.mktemp("designer")
    port = free_port()
    (tmp / "form.ui").write_text(FORM, encoding="utf-8")
    script = {
        "forms": [
            {"ui": str(tmp / "form.ui"), "save": str(tmp / "client_saved.ui"),
             "object": "clientSocket1",
             "set": [["Port", port], ["ClientType", 0], ["Active", True], ["ConnectTimeout", 2500]],
             "grab": str(tmp / "client.png")},
            {"ui": str(tmp / "client_saved.ui"), "save": str(tmp / "saved.ui"),
             "object": "serverSocket1",
             "set": [["Port", port], ["ServerType", 1], ["ThreadCacheSize", 4], ["Active", True]]},
            {"ui": str(SAMPLES / "chat_client.ui"), "save": str(tmp / "chat_client.ui"),
             "object": "clientSocket1"},
            {"ui": str(SAMPLES / "chat_server.ui"), "save": str(tmp / "chat_server.ui"),
             "object": "serverSocket1"},
        ],
        "drop": str(tmp / "dropped.ui"),
    }
    (tmp / "every.ui").write_text(every_property_ui(), encoding="utf-8")
    script["forms"] += [
        {"ui": str(tmp / "every.ui"), "save": str(tmp / "every_saved.ui"), "object": "clientSocket1"},
        {"ui": str(tmp / "every.ui"), "save": str(tmp / "every_saved2.ui"), "object": "serverSocket1"},
        {"ui": str(tmp / "bogus.ui"), "save": str(tmp / "bogus_saved.ui"), "object": "clientSocket1"},
    ]
    (tmp / "bogus.ui").write_text(FORM.replace(
        '<property name="Port"><number>5000</number></property>',
        '<property name="Port"><number>5000</number></property>\n'
        '   <property name="Bogus" stdset="0"><number>7</number></property>'), encoding="utf-8")
    result = run_designer(tmp, script, [sys.executable, "-m", "sockcomp.designer"], os.environ)
    result["tmp"] = tmp
    result["port"] = port
    return result


def test_widget_box_has_a_sockets_group_with_icons(designer) -> None:
    assert [e["name"] for e in designer["widgetbox"]["Sockets"]] == ["ClientSocket", "ServerSocket"]
    for name in ("ClientSocket", "ServerSocket"):
        shown = designer["plugins"][name]
        assert shown["icon_null"] is False
        assert "hidden at run time" in shown["tooltip"]


def test_designer_instantiates_our_classes_and_shows_them(designer) -> None:
    form = designer["forms"][0]
    assert form["loaded"]
    objects = form["objects"]
    assert objects["clientSocket1"]["class"] == "ClientSocket"
    assert objects["serverSocket1"]["python_class"] == "ServerSocket"
    for obj in objects.values():
        assert obj["hidden"] is False and obj["size"] == [32, 32]  # the icon shows on the form
    assert "OnConnect(PyObject,PyObject)" in objects["clientSocket1"]["signals"]
    assert "OnError(PyObject,PyObject,PyObject,PyObject)" in objects["clientSocket1"]["signals"]
    assert "OnClientRead(PyObject,PyObject)" in objects["serverSocket1"]["signals"]
    from PySide6.QtGui import QImage
    image = QImage(str(designer["tmp"] / "client.png"))
    assert image.width() == 32
    assert len({image.pixel(x, y) for x in range(0, 32, 3) for y in range(0, 32, 3)}) > 4


def test_property_editor_lists_the_vcl_properties(designer) -> None:
    client = designer["forms"][0]["editor"]
    assert client["ClientSocket.Host"] == "127.0.0.1"
    assert client["ClientSocket.Port"] == "5000"
    assert client["ClientSocket.ClientType"] == "ctBlocking"  # an enum: the drop-down's key
    assert {"ClientSocket.Address", "ClientSocket.Service", "ClientSocket.Active",
            "ClientSocket.ConnectTimeout"} <= set(client)
    server = designer["forms"][1]["editor"]
    for name in ("Port", "Service", "Address", "ServerType", "ThreadCacheSize", "Active"):
        assert f"ServerSocket.{name}" in server
    assert server["ServerSocket.ServerType"] == "stNonBlocking"
    assert server["ServerSocket.ThreadCacheSize"] == "10"


@pytest.mark.parametrize("form, cls", [(4, ClientSocket), (5, ServerSocket)],
                         ids=["ClientSocket", "ServerSocket"])
def test_property_editor_shows_the_socket_properties_first(designer, form, cls) -> None:
    """The first group is the component's: objectName, then every designable property in the
    widget's (alphabetical) order with the form's values; QWidget's group only after it."""
    rows = designer["forms"][form]["editor_rows"]
    groups = list(dict.fromkeys(group for group, _, _ in rows))
    assert groups[:2] == [cls.__name__, "QWidget"]
    first = [(name, value) for group, name, value in rows if group == cls.__name__]
    designable = [p.name for p in cls._properties if p.writable]
    assert [name for name, _ in first] == ["objectName", *designable]
    assert rows[:len(first)] == [[cls.__name__, name, value] for name, value in first]
    assert "QObject" not in groups  # objectName moved, nothing left there
    read_only = {p.name for p in cls._properties if not p.writable}
    assert read_only and not read_only & {name for _, name, _ in rows}  # not designable
    shown = dict(first)
    assert shown["objectName"] == ("clientSocket1" if cls is ClientSocket else "serverSocket1")
    assert shown["Port"] == "4242" and shown["Framing"] == "fmLine"  # the form's values
    assert shown["FrameOverflow"] == "foDiscard" and shown["Encoding"] == "latin-1"
    assert shown["LineEnd"] == "\\r\\n"  # escaped: a line edit cannot show CR LF
    tips = designer["forms"][form]["tooltips"]  # the component's documentation
    assert tips["Host" if cls is ClientSocket else "ServerType"] == \
        getattr(cls, "Host" if cls is ClientSocket else "ServerType").__doc__


def test_designer_keeps_every_value_of_a_loaded_form(designer) -> None:
    """Designer saves what it loaded, value for value (LineEnd with its escapes: a raw CR
    would not survive the XML, nor uic)."""
    original = ET.parse(designer["tmp"] / "every.ui").getroot()
    saved = ET.parse(designer["tmp"] / "every_saved.ui").getroot()
    for name in ("clientSocket1", "serverSocket1"):
        def props(root: ET.Element) -> dict[str, tuple[str, str]]:
            widget = root.find(f".//widget[@name='{name}']")
            return {p.get("name"): (p[0].tag, p[0].text or "") for p in widget.findall("property")
                    if p.get("name") != "geometry"}
        assert props(saved) == props(original), name
        assert props(saved)["LineEnd"] == ("string", "\\r\\n")
    assert '<string notr="true">' in (designer["tmp"] / "every_saved.ui").read_text(encoding="utf-8")


@pytest.mark.parametrize("source", ["every.ui", "every_saved.ui"], ids=["form", "designer-saved"])
def test_every_value_arrives_through_quiloader(qtbot, designer, source) -> None:
    loader = QUiLoader()
    for cls in CUSTOM_WIDGETS:
        loader.registerCustomWidget(cls)
    window = QWidget()
    qtbot.addWidget(window)
    assert loader.load(str(designer["tmp"] / source), window) is not None
    check_every_value(window)


@pytest.mark.parametrize("stdset", [True, False], ids=["designer-style", "hand-written"])
def test_every_value_arrives_through_uic(qtbot, tmp_path, stdset) -> None:
    ui = tmp_path / "every.ui"
    ui.write_text(every_property_ui(stdset), encoding="utf-8")
    code = subprocess.run([str(UIC), str(ui)], capture_output=True, text=True, check=True).stdout
    if stdset:
        assert 'self.clientSocket1.setProperty(u"FrameOverflow", ClientSocket.TFrameOverflow.foDiscard)' in code
    else:  # every property through its Qt-style setter
        assert "self.serverSocket1.setFrameOverflow(ServerSocket.TFrameOverflow.foDiscard)" in code
        assert "self.clientSocket1.setKeepAliveInterval(2000)" in code
    namespace: dict = {}
    exec(compile(code, "ui_every.py", "exec"), namespace)
    window = QWidget()
    qtbot.addWidget(window)
    namespace["Ui_Form"]().setupUi(window)
    check_every_value(window)


def test_designer_shows_an_unknown_property_as_dynamic(designer, qtbot, hook) -> None:
    """Designer keeps (and shows) what the component lacks; loading that form reports it."""
    rows = designer["forms"][6]["editor_rows"]
    assert ["Dynamic Properties", "Bogus", "7"] in rows  # right under the socket properties
    assert list(dict.fromkeys(group for group, _, _ in rows)) == \
        ["ClientSocket", "Dynamic Properties", "QWidget"]
    assert saved_props(designer["tmp"] / "bogus_saved.ui", "clientSocket1")["Bogus"] == "7"
    loader = QUiLoader()
    for cls in CUSTOM_WIDGETS:
        loader.registerCustomWidget(cls)
    window = QWidget()
    qtbot.addWidget(window)
    loader.load(str(designer["tmp"] / "bogus_saved.ui"), window)
    assert [str(e) for e in hook] == [
        "ClientSocket 'clientSocket1' has no property 'Bogus' (set by its form); the form's "
        "Active is ignored, the component stays closed"]


def saved_props(path: Path, name: str) -> dict[str, str]:
    root = ET.parse(path).getroot()
    widget = root.find(f".//widget[@name='{name}']")
    assert widget is not None
    props = {}
    for prop in widget.findall("property"):
        value = prop[0]
        props[prop.get("name")] = value.text or ""
    return props


def test_property_edits_are_saved_into_the_ui(designer) -> None:
    saved = designer["tmp"] / "saved.ui"
    port = str(designer["port"])
    client = saved_props(saved, "clientSocket1")
    assert client["Port"] == port and client["Active"] == "true"
    assert client["ClientType"] == "ClientSocket::TClientType::ctNonBlocking"
    assert client["ConnectTimeout"] == "2500" and client["Host"] == "127.0.0.1"
    server = saved_props(saved, "serverSocket1")
    assert server["Port"] == port and server["Active"] == "true"
    assert server["ServerType"] == "ServerSocket::TServerType::stThreadBlocking"
    assert server["ThreadCacheSize"] == "4"
    text = saved.read_text(encoding="utf-8")
    assert "<header>sockcomp.widgets</header>" in text
    assert "<signal>OnDisconnect(PyObject,PyObject)</signal>" in text  # the connection survived


def test_a_dropped_component_carries_the_default_xml(designer) -> None:
    assert "name='clientSocket1'" in designer["dom"]["ClientSocket"]
    dropped = saved_props(designer["tmp"] / "dropped.ui", "clientSocket1")
    assert dropped["Host"] == "" and "Port" not in dropped  # untouched values are not saved
    text = (designer["tmp"] / "dropped.ui").read_text(encoding="utf-8")
    assert '<string notr="true"/>' in text  # set in setupUi, not retranslateUi
    assert saved_props(designer["tmp"] / "dropped.ui", "serverSocket1") is not None
    drop = designer["forms"][-1]  # in the property editor, its own properties come first
    assert drop["ui"].endswith("dropped.ui.in.ui")
    assert drop["editor_rows"][:3] == [["ClientSocket", "objectName", "clientSocket1"],
                                       ["ClientSocket", "Active", ""],
                                       ["ClientSocket", "Address", ""]]
    assert "propertyspecifications" in designer["dom"]["ClientSocket"]  # tooltips, notr


def test_designer_accepts_the_sample_forms_unchanged(designer) -> None:
    for name in ("chat_client.ui", "chat_server.ui"):
        ours = (SAMPLES / name).read_text(encoding="utf-8")
        assert (designer["tmp"] / name).read_text(encoding="utf-8") == ours, name


class Window(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    @Slot(object, object)
    def on_serverSocket1_OnListen(self, Sender, Socket) -> None:
        self.seen.append("listen")

    @Slot(object, object)
    def on_serverSocket1_OnClientConnect(self, Sender, Socket) -> None:
        self.seen.append("client-connect")
        Socket.SendText("welcome\n")

    @Slot(object, object)
    def on_clientSocket1_OnConnect(self, Sender, Socket) -> None:
        self.seen.append("connect")


def check_saved_form_runs(qtbot, window: Window, port: int) -> None:
    client = window.findChild(ClientSocket, "clientSocket1")
    server = window.findChild(ServerSocket, "serverSocket1")
    assert (client.Host, client.Port, int(client.ClientType), client.ConnectTimeout) == \
        ("127.0.0.1", port, 0, 2500)
    assert (server.Address, server.Port, int(server.ServerType), server.ThreadCacheSize) == \
        ("127.0.0.1", port, 1, 4)
    received: list[str] = []
    client.OnRead.connect(lambda S, Sock: received.append(Sock.ReceiveText()))
    qtbot.waitUntil(lambda: received == ["welcome\n"], timeout=5000)
    assert window.seen[0] == "listen" and {"connect", "client-connect"} <= set(window.seen)
    label = window.findChild(QLabel, "label")
    with qtbot.waitSignal(client.OnDisconnect, timeout=5000):
        client.Close()
    assert label.text() == ""  # the Designer-drawn connection
    server.Close()


def test_uic_output_of_the_saved_file_runs(qtbot, designer) -> None:
    code = subprocess.run([str(UIC), str(designer["tmp"] / "saved.ui")], capture_output=True,
                          text=True, check=True).stdout
    assert "from sockcomp.widgets import (ClientSocket, ServerSocket)" in code
    assert "ClientSocket.TClientType.ctNonBlocking" in code
    assert "self.clientSocket1.OnDisconnect.connect(self.label.clear)" in code
    namespace: dict = {}
    exec(compile(code, "ui_saved.py", "exec"), namespace)
    window = Window()
    qtbot.addWidget(window)
    namespace["Ui_Form"]().setupUi(window)
    check_saved_form_runs(qtbot, window, designer["port"])


def test_quiloader_loads_the_saved_file(qtbot, designer) -> None:
    loader = QUiLoader()
    for cls in CUSTOM_WIDGETS:
        loader.registerCustomWidget(cls)
    window = Window()
    qtbot.addWidget(window)
    loader.load(str(designer["tmp"] / "saved.ui"), window)
    QMetaObject.connectSlotsByName(window)
    check_saved_form_runs(qtbot, window, designer["port"])


def test_checkout_plugin_dir_loads_without_the_launcher(tmp_path) -> None:
    """designer_plugins/ with plain pyside6-designer, as the README's by-hand recipe."""
    env = dict(os.environ)
    env["PYSIDE_DESIGNER_PLUGINS"] = str(ROOT / "designer_plugins")
    import site
    env["PYTHONPATH"] = os.pathsep.join(site.getsitepackages())  # not the checkout: the
    # register file must find it by itself
    designer_exe = Path(sys.executable).with_name("pyside6-designer")
    result = run_designer(tmp_path, {"forms": []}, [str(designer_exe)], env)
    assert [e["name"] for e in result["widgetbox"]["Sockets"]] == ["ClientSocket", "ServerSocket"]


def test_launcher_prints_its_environment() -> None:
    out = subprocess.run([sys.executable, "-m", "sockcomp.designer", "--print-env"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    lines = dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines())
    assert lines["PYSIDE_DESIGNER_PLUGINS"] == str(ROOT / "sockcomp" / "designer")
    assert str(ROOT) in lines["PYTHONPATH"].split(os.pathsep)
