"""Loads a Designer form (.ui) at run time into a window and wires it up like uic would.

``QUiLoader`` builds the widgets (our ``ClientSocket``/``ServerSocket`` placeholders included,
once registered), sets every property, makes the connections drawn in Designer's signal/slot
editor, and then ``connectSlotsByName`` connects the window's ``on_<object>_<signal>`` methods.
The same forms also compile with ``pyside6-uic chat_client.ui -o ui_chat_client.py``.
"""
from __future__ import annotations

import os
from types import SimpleNamespace

from PySide6.QtCore import QMetaObject
from PySide6.QtUiTools import QUiLoader
from PySide6.QtWidgets import QVBoxLayout, QWidget

from sockcomp.widgets import CUSTOM_WIDGETS

HERE = os.path.dirname(os.path.abspath(__file__))


def load_form(name: str, window: QWidget) -> SimpleNamespace:
    """Load ``name`` (a .ui file next to this module) into ``window``; returns its widgets by
    object name (``ui.clientSocket1``, ``ui.sendButton`` …), like uic's ``Ui_Form``."""
    loader = QUiLoader()
    for cls in CUSTOM_WIDGETS:
        loader.registerCustomWidget(cls)
    form = loader.load(os.path.join(HERE, name), window)
    if form is None:
        raise RuntimeError(f"cannot load {name}: {loader.errorString()}")
    layout = QVBoxLayout(window)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(form)
    window.setWindowTitle(form.windowTitle())
    window.resize(form.size())
    named = {w.objectName(): w for w in form.findChildren(QWidget) if w.objectName()}
    named["form"] = form
    QMetaObject.connectSlotsByName(window)
    return SimpleNamespace(**named)
