"""Design-time detection: sockets never open inside Qt Designer."""
from __future__ import annotations

from PySide6.QtCore import QCoreApplication

_forced: bool = False


def in_designer() -> bool:
    """True when running inside Qt Designer (its application identifies itself), or forced."""
    if _forced:
        return True
    app = QCoreApplication.instance()
    return bool(app is not None and app.applicationName() == "Designer"
                and app.organizationName() == "QtProject")


def set_design_time(value: bool) -> None:
    """Force design-time behaviour (used by the Designer plugin's register file)."""
    global _forced
    _forced = value
