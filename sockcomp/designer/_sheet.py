"""Designer's property editor for the placeholders: the socket properties come first.

Designer's property editor groups a widget's properties by the class that declares them, in
the order their first property appears in the widget's *property sheet*: ``QObject``
(objectName), ``QWidget`` (geometry, palette, font … 30-odd rows), then the class's own. For a
socket component the QWidget rows are noise, so each placeholder widget created in Designer
gets ``objectName`` moved into its own group (``ClientSocket`` / ``ServerSocket``). That group
then comes first and reads ``objectName``, ``Active``, ``Address`` …, with QWidget's after it.

Measured with PySide6 6.11 and 6.12 (their Designers), why it is done this way:

* QWidget's properties cannot be *hidden*: Designer's own sheet (``QDesignerPropertySheet``)
  shows every writable, designable meta-property whatever ``setVisible(i, False)`` says (its
  ``isVisible`` falls back to the ``DESIGNABLE`` flag for real properties).
* A Python sheet of our own (``QPyDesignerPropertySheetExtension``) cannot stand in for it:
  Designer's values are private types (``PropertySheetEnumValue``,
  ``PropertySheetStringValue`` …) that PySide cannot carry through Python ("Can't find
  converter for 'qdesigner_internal::PropertySheetEnumValue'"), so enum drop-downs and string
  properties would break.
* So the plugin keeps Designer's sheet and changes one thing through the public
  ``QDesignerPropertySheetExtension`` interface: the group of ``objectName``. It does so from
  the widget's constructor (``sockcomp.widgets._designer_hook``), asking Designer's extension
  manager for the sheet, which Designer creates then (it would right after the constructor
  anyway) and keeps for the widget's lifetime. A ``QExtensionFactory`` would be asked for
  *every* object of every form, and PySide tags each object it wraps with a
  ``_PySideInvalidatePtr`` dynamic property that Designer then warns about.

PySide offers no ``qt_extension<>()``: the extension manager hands the sheet over as a plain
``QObject``. :func:`property_sheet` casts it the way ``qobject_cast`` does, by calling the
object's own ``qt_metacast`` (the second virtual function of every QObject) with the
interface id.
"""
from __future__ import annotations

import ctypes
import sys
from typing import Any, Optional

from PySide6.QtCore import QObject
from PySide6.QtDesigner import QDesignerFormWindowInterface, QDesignerPropertySheetExtension
from PySide6.QtWidgets import QWidget

PROPERTY_SHEET_IID = "org.qt-project.Qt.Designer.PropertySheet"

__all__ = ["PROPERTY_SHEET_IID", "property_sheet", "group_first", "socket_properties_first"]


def property_sheet(sheet_object: QObject) -> Optional[QDesignerPropertySheetExtension]:
    """``qobject_cast<QDesignerPropertySheetExtension *>(sheet_object)``, or None."""
    import shiboken6

    address = shiboken6.getCppPointer(sheet_object)[0]
    vtable = ctypes.c_void_p.from_address(address).value
    if not vtable:
        return None
    # QObject's virtual functions start metaObject(), qt_metacast(), qt_metacall()
    slot = ctypes.c_void_p.from_address(vtable + ctypes.sizeof(ctypes.c_void_p)).value
    if not slot:
        return None
    metacast = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p)(slot)
    interface = metacast(address, PROPERTY_SHEET_IID.encode())
    if not interface:
        return None
    sheet: Any = shiboken6.wrapInstance(interface, QDesignerPropertySheetExtension)
    return sheet


def group_first(sheet: QDesignerPropertySheetExtension, anchor: str) -> bool:
    """Put ``objectName`` into the group of property ``anchor`` (the class's own group), which
    makes that group the first of the property editor. True when done."""
    name_index = sheet.indexOf("objectName")
    anchor_index = sheet.indexOf(anchor)
    if name_index < 0 or anchor_index < 0:
        return False
    sheet.setPropertyGroup(name_index, sheet.propertyGroup(anchor_index))
    return True


def socket_properties_first(widget: QWidget) -> None:
    """For a placeholder widget created in Designer: its own group first (see above)."""
    try:
        form = QDesignerFormWindowInterface.findFormWindow(widget)
        if form is None:  # not on a form (a drag preview …): no property editor involved
            return
        manager = form.core().extensionManager()
        sheet_object = manager.extension(widget, PROPERTY_SHEET_IID)
        sheet = property_sheet(sheet_object) if sheet_object is not None else None
        properties = getattr(widget, "_properties", ())
        if sheet is None or not properties or not group_first(sheet, properties[0].name):
            print(f"sockcomp designer plugin: cannot regroup the properties of "
                  f"{type(widget).__name__}", file=sys.stderr)
    except Exception as exc:  # never take Designer down over the order of rows
        print(f"sockcomp designer plugin: {exc!r}", file=sys.stderr)
