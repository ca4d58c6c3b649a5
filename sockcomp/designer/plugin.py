"""Registers the sockcomp placeholder widgets with Qt Designer (called by ``register_sockcomp.py``).

Kept in an importable module because a ``register*.py`` file runs with separate globals and
locals: classes or functions defined in it cannot see its own imports.
"""
from __future__ import annotations

import os

from PySide6.QtDesigner import QPyDesignerCustomWidgetCollection

from .._designtime import set_design_time
from ..widgets import ClientSocket, ServerSocket

GROUP = "Sockets"
MODULE = "sockcomp.widgets"
HERE = os.path.dirname(os.path.abspath(__file__))

# what a freshly dropped component carries; strings are notr="true" so that uic sets them in
# setupUi (not in retranslateUi, which runs after every other property)
_CLIENT_XML = (
    "<ui language='c++'><widget class='ClientSocket' name='clientSocket1'>"
    "<property name='Host'><string notr='true'></string></property>"
    "<property name='Address'><string notr='true'></string></property>"
    "<property name='Service'><string notr='true'></string></property>"
    "</widget></ui>")
_SERVER_XML = (
    "<ui language='c++'><widget class='ServerSocket' name='serverSocket1'>"
    "<property name='Address'><string notr='true'></string></property>"
    "<property name='Service'><string notr='true'></string></property>"
    "</widget></ui>")

_registered = False


def icon_path(kind: str) -> str:
    """The widget-box icon of ``kind`` (``client``/``server``), rendered if it is missing."""
    path = os.path.join(HERE, f"{kind}socket.png")
    if not os.path.exists(path):
        from .icons import render
        render(path, kind)
    return path


def register() -> None:
    """Add ClientSocket and ServerSocket to Designer's widget box (group "Sockets")."""
    global _registered
    if _registered:
        return
    _registered = True
    set_design_time(True)
    QPyDesignerCustomWidgetCollection.registerCustomWidget(
        ClientSocket, xml=_CLIENT_XML, group=GROUP, module=MODULE, container=False,
        icon=icon_path("client"),
        tool_tip="ClientSocket: TCP client component (Delphi TClientSocket); hidden at run time")
    QPyDesignerCustomWidgetCollection.registerCustomWidget(
        ServerSocket, xml=_SERVER_XML, group=GROUP, module=MODULE, container=False,
        icon=icon_path("server"),
        tool_tip="ServerSocket: TCP server component (Delphi TServerSocket); hidden at run time")
    if os.environ.get("SOCKCOMP_DESIGNER_PROBE"):
        from . import _probe
        _probe.install(os.environ["SOCKCOMP_DESIGNER_PROBE"])
