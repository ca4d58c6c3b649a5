"""Renders the widget-box icons (``clientsocket.png``, ``serversocket.png``) from the same
QPainter code that draws the placeholders on the form: ``python -m sockcomp.designer.icons``."""
from __future__ import annotations

import os
import sys

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QImage, QPainter


def render(path: str, kind: str, size: int = 32) -> None:
    from ..widgets import paint_icon
    from PySide6.QtGui import QGuiApplication
    if QGuiApplication.instance() is None:  # fonts need a GUI application
        raise RuntimeError("render() needs a QGuiApplication")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    paint_icon(painter, QRectF(0, 0, size, size), kind)
    painter.end()
    if not image.save(path):
        raise OSError(f"cannot write {path}")


def main() -> int:
    from PySide6.QtGui import QGuiApplication
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841
    here = os.path.dirname(os.path.abspath(__file__))
    for kind in ("client", "server"):
        render(os.path.join(here, f"{kind}socket.png"), kind)
    return 0


if __name__ == "__main__":
    sys.exit(main())
