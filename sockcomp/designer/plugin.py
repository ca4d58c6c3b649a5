"""Registers the sockcomp placeholder widgets with Qt Designer (called by ``register_sockcomp.py``).

Kept in an importable module because a ``register*.py`` file runs with separate globals and
locals: classes or functions defined in it cannot see its own imports.

``ClientSocket`` and ``ServerSocket`` are registered by type (``registerCustomWidget``). Their
XML carries *property specifications*: the component's documentation as each property's tooltip
in the property editor, and ``notr="true"`` for every string property (host and file names:
nothing to translate, and uic then sets them in ``setupUi`` rather than in ``retranslateUi``,
which runs after every other property). Each placeholder created in Designer calls
:func:`~._sheet.socket_properties_first`, which puts its socket properties at the top of the
property editor.
"""
from __future__ import annotations

import os
from xml.sax.saxutils import escape, quoteattr

from PySide6.QtDesigner import QPyDesignerCustomWidgetCollection

from .. import widgets
from .._designtime import set_design_time
from ..widgets import ClientSocket, ServerSocket
from ._sheet import socket_properties_first

GROUP = "Sockets"
MODULE = "sockcomp.widgets"
HERE = os.path.dirname(os.path.abspath(__file__))

# what a freshly dropped component carries; strings are notr="true" so that uic sets them in
# setupUi (not in retranslateUi, which runs after every other property)
_CLIENT_XML = (
    "<widget class='ClientSocket' name='clientSocket1'>"
    "<property name='Host'><string notr='true'></string></property>"
    "<property name='Address'><string notr='true'></string></property>"
    "<property name='Service'><string notr='true'></string></property>"
    "</widget>")
_SERVER_XML = (
    "<widget class='ServerSocket' name='serverSocket1'>"
    "<property name='Address'><string notr='true'></string></property>"
    "<property name='Service'><string notr='true'></string></property>"
    "</widget>")

#: string properties edited as multi-line text (Designer's editor then takes "\n" for a newline)
_MULTILINE = frozenset({"BannerTooBusy"})

_registered = False


def icon_path(kind: str) -> str:
    """The widget-box icon of ``kind`` (``client``/``server``), rendered if it is missing."""
    path = os.path.join(HERE, f"{kind}socket.png")
    if not os.path.exists(path):
        from .icons import render
        render(path, kind)
    return path


def dom_xml(cls: type, widget_xml: str) -> str:
    """The widget-box XML of ``cls``: ``widget_xml`` plus the property specifications."""
    specs = []
    for prop in cls._properties:  # type: ignore[attr-defined]
        if not prop.writable:
            continue
        if prop.doc:
            specs.append(f"<tooltip name={quoteattr(prop.name)}>{escape(prop.doc)}</tooltip>")
        if prop.value_type is str:
            kind = "multiline" if prop.name in _MULTILINE else "singleline"
            specs.append(f"<stringpropertyspecification name={quoteattr(prop.name)} "
                         f"notr='true' type='{kind}'/>")
    return (f"<ui language='c++'>{widget_xml}<customwidgets><customwidget>"
            f"<class>{cls.__name__}</class><propertyspecifications>{''.join(specs)}"
            f"</propertyspecifications></customwidget></customwidgets></ui>")


def register() -> None:
    """Add ClientSocket and ServerSocket to Designer's widget box (group "Sockets")."""
    global _registered
    if _registered:
        return
    _registered = True
    set_design_time(True)
    widgets._designer_hook = socket_properties_first
    QPyDesignerCustomWidgetCollection.registerCustomWidget(
        ClientSocket, xml=dom_xml(ClientSocket, _CLIENT_XML), group=GROUP, module=MODULE,
        container=False, icon=icon_path("client"),
        tool_tip="ClientSocket: TCP client component (Delphi TClientSocket); hidden at run time")
    QPyDesignerCustomWidgetCollection.registerCustomWidget(
        ServerSocket, xml=dom_xml(ServerSocket, _SERVER_XML), group=GROUP, module=MODULE,
        container=False, icon=icon_path("server"),
        tool_tip="ServerSocket: TCP server component (Delphi TServerSocket); hidden at run time")
    if os.environ.get("SOCKCOMP_DESIGNER_PROBE"):
        from . import _probe
        _probe.install(os.environ["SOCKCOMP_DESIGNER_PROBE"])
