"""In-Designer self-test, used by the test suite (active only when SOCKCOMP_DESIGNER_PROBE is set).

``SOCKCOMP_DESIGNER_PROBE`` names a JSON script::

    {"result": "/tmp/result.json",
     "forms": [{"ui": "in.ui", "save": "out.ui", "object": "clientSocket1",
                "set": [["Port", 4242], ["ClientType", 1]], "grab": "shot.png"}],
     "drop": "/tmp/dropped.ui"}

Once Designer is up, the probe finds Designer's core through its property editor, records the
widget box, loads each form into a new form window (``setContents``: Designer instantiates our
Python classes), reads the property editor for ``object`` as a user sees it (``editor_rows``:
``[group, property, value]`` from top to bottom; ``tooltips`` per property), edits properties
through the form window's cursor (the property sheet, as a user does), saves ``fw.contents()``
and, for ``drop``, builds a form from the widget-box entries' own XML (what a drag from the box
creates).
It writes everything to ``result`` and leaves with ``os._exit(0)`` (a normal quit could ask
whether to save).
"""
from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QAbstractItemView, QApplication, QTreeView, QWidget

_KEEP: list[Any] = []


def _core() -> Any:
    import shiboken6
    from PySide6.QtDesigner import QDesignerPropertyEditorInterface

    for widget in QApplication.allWidgets():
        if widget.metaObject().className() == "qdesigner_internal::PropertyEditor":
            editor: Any = shiboken6.wrapInstance(shiboken6.getCppPointer(widget)[0],
                                                 QDesignerPropertyEditorInterface)
            _KEEP.append(editor)
            core = editor.core()
            _KEEP.append(core)
            return core
    raise RuntimeError("Designer's property editor not found")


def _property_editor_rows(core: Any) -> list[list[str]]:
    """What the property editor shows, top to bottom: ``[group, property, value]`` rows."""
    rows: list[list[str]] = []
    editor = core.propertyEditor()
    for view in editor.findChildren(QTreeView):
        if not view.isVisibleTo(editor):
            continue
        model = view.model()
        root = view.rootIndex()
        for r in range(model.rowCount(root)):
            group = model.index(r, 0, root)
            for k in range(model.rowCount(group)):
                name = model.data(model.index(k, 0, group))
                value = model.data(model.index(k, 1, group))
                rows.append([str(model.data(group)), str(name),
                             "" if value is None else str(value)])
    return rows


def _property_tooltips(core: Any) -> dict[str, str]:
    """The tooltip of each property row (Designer's "description tooltip")."""
    tips: dict[str, str] = {}
    editor = core.propertyEditor()
    for view in editor.findChildren(QTreeView):
        if not view.isVisibleTo(editor):
            continue
        model = view.model()
        root = view.rootIndex()
        for r in range(model.rowCount(root)):
            group = model.index(r, 0, root)
            for k in range(model.rowCount(group)):
                index = model.index(k, 0, group)
                tip = model.data(index, Qt.ItemDataRole.ToolTipRole)
                tips[str(model.data(index))] = "" if tip is None else str(tip)
    return tips


def _describe(widget: QWidget) -> dict[str, Any]:
    mo = widget.metaObject()
    return {
        "class": mo.className(),
        "python_class": type(widget).__name__,
        "hidden": widget.isHidden(),
        "size": [widget.width(), widget.height()],
        "signals": [bytes(mo.method(i).methodSignature().data()).decode()
                    for i in range(mo.methodOffset(), mo.methodCount())
                    if mo.method(i).methodType().name == "Signal"],
    }


def _run(script: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"forms": []}
    core = _core()
    box = core.widgetBox()
    groups: dict[str, list[dict[str, Any]]] = {}
    dom: dict[str, str] = {}
    for i in range(box.categoryCount()):
        category = box.category(i)
        entries = []
        for j in range(category.widgetCount()):
            w = category.widget(j)
            entries.append({"name": w.name(), "icon": w.iconName()})
            dom[w.name()] = w.domXml()
        groups[category.name()] = entries
    result["widgetbox"] = groups
    result["dom"] = {k: dom[k] for k in ("ClientSocket", "ServerSocket") if k in dom}
    plugin_icons = {}
    for view in box.findChildren(QAbstractItemView):  # what the user sees in the widget box
        model = view.model()
        for r in range(model.rowCount() if model is not None else 0):
            index = model.index(r, 0)
            text = model.data(index, Qt.ItemDataRole.DisplayRole)
            if text in ("ClientSocket", "ServerSocket"):
                icon = model.data(index, Qt.ItemDataRole.DecorationRole)
                plugin_icons[text] = {
                    "icon_null": icon is None or icon.isNull(),
                    "tooltip": model.data(index, Qt.ItemDataRole.ToolTipRole)}
    result["plugins"] = plugin_icons

    manager = core.formWindowManager()
    forms = list(script.get("forms", []))
    if script.get("drop"):
        # a form made of the widget-box entries' XML: what dropping them from the box creates
        body = "".join(_inner_widget(dom[name]) for name in ("ClientSocket", "ServerSocket"))
        path = script["drop"] + ".in.ui"
        with open(path, "w", encoding="utf-8") as f:
            f.write(_FORM.format(body=body))
        forms.append({"ui": path, "save": script["drop"], "object": "clientSocket1",
                      "grab": script.get("drop_grab")})
    for spec in forms:
        entry: dict[str, Any] = {"ui": spec["ui"]}
        result["forms"].append(entry)
        fw = manager.createFormWindow()
        _KEEP.append(fw)
        with open(spec["ui"], encoding="utf-8") as f:
            entry["loaded"] = bool(fw.setContents(f.read()))
        manager.setActiveFormWindow(fw)
        main = fw.mainContainer()
        main.show()
        QApplication.processEvents()
        entry["objects"] = {w.objectName(): _describe(w) for w in main.findChildren(QWidget)
                            if type(w).__module__ == "sockcomp.widgets"}
        name = spec.get("object")
        obj = main.findChild(QWidget, name) if name else None
        if obj is not None:
            fw.clearSelection(False)
            fw.selectWidget(obj, True)
            core.propertyEditor().setObject(obj)
            QApplication.processEvents()
            entry["editor_rows"] = rows = _property_editor_rows(core)
            entry["editor"] = {f"{group}.{name}": value for group, name, value in rows}
            entry["tooltips"] = _property_tooltips(core)
            cursor = fw.cursor()
            for prop, value in spec.get("set", []):
                cursor.setWidgetProperty(obj, prop, value)
                entry.setdefault("after_set", {})[prop] = repr(obj.property(prop))
            if spec.get("grab"):
                entry["grab_ok"] = obj.grab().save(spec["grab"])
        with open(spec["save"], "w", encoding="utf-8") as f:
            f.write(fw.contents())
        entry["saved"] = spec["save"]
    return result


_FORM = """<?xml version="1.0" encoding="UTF-8"?>
<ui version="4.0"><class>Form</class>
 <widget class="QWidget" name="Form">
  <property name="geometry"><rect><x>0</x><y>0</y><width>200</width><height>100</height></rect>
  </property>{body}
 </widget>
</ui>
"""


def _inner_widget(dom_xml: str) -> str:
    start = dom_xml.index("<widget")
    end = dom_xml.rindex("</widget>") + len("</widget>")
    return dom_xml[start:end]


def _main(script_path: str) -> None:
    with open(script_path, encoding="utf-8") as f:
        script = json.load(f)
    try:
        result = _run(script)
    except Exception:
        result = {"error": traceback.format_exc()}
    with open(script["result"], "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(0)


def install(script_path: str) -> None:
    """Run the probe once Designer's main window is up."""
    QTimer.singleShot(int(os.environ.get("SOCKCOMP_DESIGNER_PROBE_DELAY_MS", "700")),
                      lambda: _main(script_path))
