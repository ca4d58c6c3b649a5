"""Qt Designer placeholders for the socket components: ``ClientSocket`` and ``ServerSocket``.

Qt Designer only places QWidgets, so each component gets a small placeholder widget: at design
time it shows the component's 32×32 icon on the form, at run time it hides itself and takes no
room. The widget *owns* a real component (``widget.component``, a
:class:`sockcomp.ClientSocket` / :class:`sockcomp.ServerSocket` parented to the widget) and
mirrors it for Designer, uic and QUiLoader. The mirror is derived from the component's
meta-object when this module is imported, so it always matches the component:

* **every property** of the component is a Qt property of the widget with the same name and
  type, and the same ``<Name>Changed`` signal (forwarded from the component). They are
  declared in alphabetical order, as Delphi's Object Inspector lists them; Designer shows and
  saves them in that order. Each writable property has Qt-style accessors ``setXxx`` /
  ``getXxx``, so ``setProperty("Port", 5000)`` (what Designer-saved files use), ``setPort(5000)``
  (what uic emits for hand-written files without ``stdset="0"``) and plain attribute access
  (``ui.clientSocket1.Port = 5000``) all reach the component, which checks the value.
  The read-only run-time values (``KeepAliveDetectionTime``, and the client's ``Reconnecting``
  and ``ReconnectAttempt``) are readable properties of the widget but not designable: Designer
  never shows or saves a property that cannot be written, and these describe a live connection;
* the enum properties are typed with the widget's own Qt enums, so Designer shows drop-downs:
  ``ClientSocket.TClientType`` (``ctNonBlocking``, ``ctBlocking``), ``ServerSocket.TServerType``
  (``stNonBlocking``, ``stThreadBlocking``), ``TFramingMode`` (``fmNone``, ``fmLine``,
  ``fmPacket``) and ``TFrameOverflow`` (``foClose``, ``foDiscard``). They are ``IntEnum`` s with
  the VCL ordinals, so they compare equal to ``sockcomp.ctBlocking`` and friends; the setters
  take these, the component's enums and plain ints alike;
* every ``On*`` event of the component is a signal of the widget with the same name and
  argument names (``Sender``, ``Socket`` …). ``Sender`` is the widget where the component
  would pass itself (OnConnect, OnListen …), so a handler can test
  ``Sender is self.ui.clientSocket1``; server ``OnClient*`` events keep the ``ServerWinSocket``
  as Sender, as in the VCL. Because the signals live on the widget,
  ``QMetaObject.connectSlotsByName`` auto-connects form methods named
  ``on_<objectName>_<Event>`` decorated with ``@Slot(object, object)`` (four ``object`` s for
  ``OnError``), e.g. ``on_clientSocket1_OnConnect``;
* ``Socket``, ``Open()``, ``Close()``, ``Loaded()`` and every other component attribute
  (``SendQueueLength`` … via attribute fallback).

``Active = True`` in a .ui opens after the form is loaded: the component is created inside
``setupUi``/``QUiLoader.load`` and treats that event-loop turn as its loading phase, so the socket
opens on the next turn, with every property and ``connectSlotsByName`` connection in place.
Inside Designer nothing ever opens.

**A property the component does not have is an error.** uic and QUiLoader set a .ui property
that a class does not declare as a *dynamic* property, which would silently do nothing. While
the component is loading (the turn in which the widget was created), the widget catches that
(``QEvent.DynamicPropertyChange``), passes an :class:`~sockcomp.ESocketError` naming the
property and the widget to the application exception hook (:func:`sockcomp.HandleException`),
and ignores the form's ``Active = True``: the component stays closed until code opens it. The
form itself loads completely, with uic and QUiLoader alike. A hand-written .ui without
``stdset="0"`` makes uic call ``setBogus(…)`` instead, which raises ``AttributeError`` from
``setupUi`` (again with the component kept closed). Qt's own dynamic properties (``_q_…``),
dynamic properties set after the loading phase, and Designer itself (which shows an unknown
property as a *Dynamic Property*) are left alone.

Why the enums are declared in a base class with the same name as the widget: PySide6 registers
an ``@QEnum`` only once its class is created, so a ``Property`` typed with it must live in a
subclass; Designer saves the value as ``<enum>ClientSocket::TClientType::ctBlocking</enum>`` and
uic emits ``ClientSocket.TClientType.ctBlocking``, which resolves because uic imports
``ClientSocket``. The enum types carry Delphi's ``T`` prefix because the properties themselves
are called ``ClientType``, ``Framing`` … The enums are written out (they are public names that
.ui files refer to); an import-time check keeps them identical to the component's.
"""
from __future__ import annotations

from enum import Enum, IntEnum
from typing import Any, Callable, NamedTuple, Optional

from PySide6.QtCore import (
    Property,
    QEnum,
    QEvent,
    QMetaMethod,
    QMetaProperty,
    QObject,
    QPointF,
    QRectF,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QLinearGradient, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QWidget

from . import components
from ._designtime import in_designer
from .errors import ESocketError, HandleException

__all__ = ["ClientSocket", "ServerSocket", "paint_icon", "CUSTOM_WIDGETS", "MirroredProperty"]

ICON_SIZE = 32


# ---------------------------------------------------------------------------------------------
# icons (drawn, no artwork files needed; sockcomp/designer/*.png are rendered from this code)

def paint_icon(painter: QPainter, rect: QRectF, kind: str) -> None:
    """Draw the component icon of ``kind`` (``"client"`` or ``"server"``) into ``rect``."""
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.translate(rect.topLeft())
    painter.scale(rect.width() / 32.0, rect.height() / 32.0)
    client = kind == "client"
    top, bottom = (QColor("#5b9bd5"), QColor("#1f4e79")) if client else \
        (QColor("#70ad47"), QColor("#375623"))
    grad = QLinearGradient(0, 0, 0, 32)
    grad.setColorAt(0.0, top)
    grad.setColorAt(1.0, bottom)
    painter.setPen(QPen(bottom.darker(130), 1.0))
    painter.setBrush(grad)
    painter.drawRoundedRect(QRectF(1, 1, 30, 30), 5, 5)
    white = QColor("#ffffff")
    painter.setPen(QPen(white, 1.6, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
                        Qt.PenJoinStyle.RoundJoin))
    painter.setBrush(Qt.BrushStyle.NoBrush)
    if client:
        # a monitor with its stand
        painter.drawRoundedRect(QRectF(5, 5, 15, 11), 1.5, 1.5)
        painter.drawLine(QPointF(12.5, 16), QPointF(12.5, 19))
        painter.drawLine(QPointF(9, 19.5), QPointF(16, 19.5))
    else:
        # a server rack: three units with a status light each
        for y in (5.0, 9.5, 14.0):
            painter.drawRoundedRect(QRectF(5, y, 15, 3.5), 1, 1)
        painter.setBrush(QColor("#ffe066"))
        painter.setPen(Qt.PenStyle.NoPen)
        for y in (6.75, 11.25, 15.75):
            painter.drawEllipse(QPointF(17.5, y), 0.9, 0.9)
        painter.setPen(QPen(white, 1.6, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        painter.setBrush(Qt.BrushStyle.NoBrush)
    # the plug: a cable from the machine down to a two-pin plug at the bottom right
    cable = QPainterPath(QPointF(20 if client else 20, 11 if client else 11))
    cable.cubicTo(QPointF(25, 11), QPointF(25, 17), QPointF(24, 20))
    painter.drawPath(cable)
    painter.setBrush(white)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.drawRoundedRect(QRectF(20, 20, 8, 5), 1.2, 1.2)
    painter.drawRect(QRectF(21.5, 25, 1.4, 3))
    painter.drawRect(QRectF(25.1, 25, 1.4, 3))
    # the letter, as on Delphi's palette glyphs
    font = QFont()
    font.setPixelSize(10)
    font.setBold(True)
    painter.setFont(font)
    painter.setPen(white)
    painter.drawText(QRectF(3, 20, 14, 10), Qt.AlignmentFlag.AlignCenter, "C" if client else "S")
    painter.restore()


# ---------------------------------------------------------------------------------------------
# the mirror of a component's meta-object

#: Qt type name of a component property -> the Python type of the widget's property
_PYTHON_TYPES: dict[str, type] = {"bool": bool, "int": int, "QString": str}


class MirroredProperty(NamedTuple):
    """One property of a component as its placeholder widget declares it."""

    name: str
    #: ``bool``, ``int``, ``str``, or the widget's T-prefixed enum
    value_type: type
    #: the component's enum for an enum property (``sockcomp.ClientType`` …), else None
    component_enum: Optional[type]
    writable: bool
    doc: str


def _enum_value(value: Any) -> int:
    """An enum member of any flavour (ours, sockcomp's, a Qt one) or an int, as an int."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an enum member or an int, got {value!r}")
    return int(value)


#: String properties that Designer shows and saves with C escapes (``\\r\\n``): a line edit
#: cannot type a CR or LF, and Designer writes a CR unescaped into the .ui, where XML readers
#: turn CR LF into LF. Their setters decode escapes, so a .ui may hold either form.
_ESCAPED = frozenset({"LineEnd"})


def _escape(value: str) -> str:
    """``"\\r\\n"`` for CR LF: backslash escapes for what a line edit cannot show."""
    return value.encode("unicode_escape").decode("ascii")


def _unescape(value: Any, name: str) -> Any:
    """The inverse of :func:`_escape`; anything without a backslash passes unchanged."""
    if isinstance(value, str) and "\\" in value:
        try:
            return value.encode("latin-1", "backslashreplace").decode("unicode_escape")
        except UnicodeDecodeError:
            raise ESocketError(f"Invalid {name} {value!r}: a backslash escape is broken") \
                from None
    return value


def _find_enum(component_class: type, name: str) -> type:
    """The Python enum called ``name`` declared in ``component_class`` or a base (ScktComp)."""
    for klass in component_class.__mro__:
        found = klass.__dict__.get(name)
        if isinstance(found, type) and issubclass(found, Enum):
            return found
    raise TypeError(f"{component_class.__name__}: enum {name} not found")


def _text(name: Any) -> str:
    """A meta-object name as ``str`` (PySide returns ``str`` or byte arrays, by version)."""
    return name if isinstance(name, str) else bytes(name).decode()


def _meta_properties(component_class: type) -> list[QMetaProperty]:
    """The component's own Qt properties (not QObject's), in alphabetical order."""
    mo = component_class.staticMetaObject  # type: ignore[attr-defined]
    first = QObject.staticMetaObject.propertyCount()  # type: ignore[attr-defined]
    found = [mo.property(i) for i in range(first, mo.propertyCount())]
    return sorted(found, key=lambda p: _text(p.name()).lower())


def _check_enums(component_class: type, holder: type) -> None:
    """Every enum property of the component has ``T<Enum>`` in ``holder``, member for member
    (the widget's enums are public names in .ui files: written out, checked here)."""
    for prop in _meta_properties(component_class):
        if not prop.isEnumType():
            continue
        name = _text(prop.enumerator().name())
        ours = holder.__dict__.get(f"T{name}")
        theirs = _find_enum(component_class, name)
        if ours is None or [(m.name, m.value) for m in ours] != \
                [(m.name, m.value) for m in theirs]:  # type: ignore[attr-defined]
            raise TypeError(f"{holder.__name__}.T{name} must mirror {theirs.__qualname__}")


def _mirror(component_class: type, holder: type) -> dict[str, Any]:
    """The class body of a placeholder widget for ``component_class``: a signal per ``On*``
    event (same arguments, same names), and per property a Qt ``Property`` with its
    ``<Name>Changed`` signal and ``get<Name>``/``set<Name>`` accessors, typed with ``holder``'s
    enums. Also ``_events`` and ``_properties``, what the widget's constructor wires up."""
    body: dict[str, Any] = {}
    mo = component_class.staticMetaObject  # type: ignore[attr-defined]
    events = []
    for i in range(mo.methodCount()):
        method = mo.method(i)
        name = _text(method.name())
        if method.methodType() == QMetaMethod.MethodType.Signal and name.startswith("On"):
            arguments = [_text(n) for n in method.parameterNames()]
            body[name] = Signal(*([object] * method.parameterCount()), arguments=arguments)
            events.append(name)
    mirrored = []
    for prop in _meta_properties(component_class):
        name = _text(prop.name())
        component_enum: Optional[type] = None
        if prop.isEnumType():
            enum_name = _text(prop.enumerator().name())
            component_enum = _find_enum(component_class, enum_name)
            type_: type = holder.__dict__[f"T{enum_name}"]
        elif _text(prop.typeName()) in _PYTHON_TYPES:
            type_ = _PYTHON_TYPES[_text(prop.typeName())]
        else:  # a new kind of property: teach the mirror its Python type
            raise TypeError(f"{component_class.__name__}.{name}: unsupported property type "
                            f"{_text(prop.typeName())}")
        doc = getattr(component_class, name).__doc__ or ""
        spec = MirroredProperty(name, type_, component_enum, prop.isWritable(), doc)
        mirrored.append(spec)
        body.update(_mirrored_property(spec))
    body["_events"] = tuple(events)
    body["_properties"] = tuple(mirrored)
    return body


def _mirrored_property(spec: MirroredProperty) -> dict[str, Any]:
    """``<Name>``, ``<Name>Changed``, ``get<Name>`` and (if writable) ``set<Name>``."""
    name, type_, component_enum = spec.name, spec.value_type, spec.component_enum

    if component_enum is None:
        def fget(self: "_ComponentWidget") -> Any:
            return getattr(self.component, name)

        def fset(self: "_ComponentWidget", value: Any) -> None:
            setattr(self.component, name, value)
    else:
        def fget(self: "_ComponentWidget") -> Any:
            return type_(int(getattr(self.component, name)))

        def fset(self: "_ComponentWidget", value: Any) -> None:
            setattr(self.component, name, component_enum(_enum_value(value)))

    if name == "Active":
        def fset(self: "_ComponentWidget", value: Any) -> None:  # noqa: F811
            self._write_active(value)
    elif name in _ESCAPED:
        def fget(self: "_ComponentWidget") -> Any:  # noqa: F811
            value = getattr(self.component, name)
            return _escape(value) if in_designer() else value

        def fset(self: "_ComponentWidget", value: Any) -> None:  # noqa: F811
            setattr(self.component, name, _unescape(value, name))

    fget.__name__ = fget.__qualname__ = f"get{name}"
    fget.__doc__ = spec.doc
    fset.__name__ = fset.__qualname__ = f"set{name}"
    fset.__doc__ = f"Set {name} (Qt-style setter, what uic calls for a .ui without stdset)."
    changed = Signal(type_, arguments=[name])
    body: dict[str, Any] = {
        name: Property(type_, fget, fset if spec.writable else None, notify=changed,
                       doc=spec.doc, designable=spec.writable),
        f"{name}Changed": changed,
        f"get{name}": fget,
    }
    if spec.writable:
        body[f"set{name}"] = fset
    return body


# ---------------------------------------------------------------------------------------------
# the shared placeholder behaviour

#: Set by the Designer plugin (sockcomp.designer.plugin): called with every placeholder widget
#: created inside Qt Designer, at the end of its constructor.
_designer_hook: Optional[Callable[[QWidget], None]] = None


class _ComponentWidget(QWidget):
    """Placeholder widget owning a component: icon at design time, hidden at run time."""

    _component_class: type = QObject
    _icon_kind = "client"
    _events: tuple[str, ...] = ()
    _properties: tuple[MirroredProperty, ...] = ()

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        self._unknown_properties: list[str] = []
        super().__init__(parent)
        self.setFixedSize(QSize(ICON_SIZE, ICON_SIZE))
        self.setToolTip(type(self).__name__)
        # created here, i.e. inside setupUi / QUiLoader.load: the component's loading phase
        # covers every property the form sets, so Active=True opens on the next loop turn
        self.component = component = self._component_class(self)
        for name in self._events:
            getattr(component, name).connect(self._event_forwarder(name))
        for spec in self._properties:
            getattr(component, f"{spec.name}Changed").connect(self._change_forwarder(spec))
        if not in_designer():
            self.setVisible(False)
        elif _designer_hook is not None:
            _designer_hook(self)

    def _event_forwarder(self, name: str) -> Callable[..., None]:
        signal = getattr(self, name)
        component = self.component

        def forward(*args: Any) -> None:
            if args and args[0] is component:
                args = (self,) + args[1:]
            signal.emit(*args)

        return forward

    def _change_forwarder(self, spec: MirroredProperty) -> Callable[[Any], None]:
        emit = getattr(self, f"{spec.name}Changed").emit
        if spec.component_enum is None:
            return emit
        type_ = spec.value_type
        return lambda value: emit(type_(int(value)))

    def paintEvent(self, event: Any) -> None:  # noqa: N802 (Qt name)
        painter = QPainter(self)
        paint_icon(painter, QRectF(self.rect()), self._icon_kind)
        painter.end()

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt name)
        return QSize(ICON_SIZE, ICON_SIZE)

    # --- properties a form sets that the component does not have
    def _loading(self) -> bool:
        """True during the component's loading phase (the turn it was created in)."""
        return bool(self.component.Loading)

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.DynamicPropertyChange:
            name = _text(event.propertyName())  # type: ignore[attr-defined]
            if (not name.startswith("_q_") and self.property(name) is not None
                    and "component" in self.__dict__ and self._loading()
                    and not in_designer()):
                self._unknown_property(name)
                HandleException(ESocketError(
                    f"{type(self).__name__} '{self.objectName()}' has no property '{name}' "
                    f"(set by its form); the form's Active is ignored, the component stays "
                    f"closed"))
        return super().event(event)

    def _unknown_property(self, name: str) -> None:
        """A form set ``name``, which the component lacks: keep the component closed."""
        self._unknown_properties.append(name)
        if self.component.Active:  # only the stored wish of the loading phase
            self.component.Active = False

    def _write_active(self, value: Any) -> None:
        if value and self._unknown_properties and self._loading():
            return  # the form had unknown properties: its Active=True is not honoured
        self.component.Active = value

    # --- the component's methods and attributes
    @property
    def Socket(self) -> Any:
        """The component's socket object (``ClientWinSocket`` / ``ServerWinSocket``)."""
        return self.component.Socket

    def Open(self) -> None:
        self.component.Open()

    def Close(self) -> None:
        self.component.Close()

    def Loaded(self) -> None:
        self.component.Loaded()

    def __getattr__(self, name: str) -> Any:
        # only reached for names the widget does not have: fall back to the component
        if name.startswith("_") or name == "component":
            raise AttributeError(name)
        try:
            component = object.__getattribute__(self, "component")
        except AttributeError:
            raise AttributeError(name) from None
        try:
            return getattr(component, name)
        except AttributeError:
            if name.startswith("set") and name[3:4].isupper():
                # uic's call for a hand-written .ui property without stdset="0"
                prop = name[3:]
                if self._loading() and not in_designer():
                    self._unknown_property(prop)
                what = "a read-only property" if hasattr(type(self), prop) else "no property"
                raise AttributeError(f"{type(self).__name__} '{self.objectName()}' has {what} "
                                     f"'{prop}' (no {name}())") from None
            raise

    def __setattr__(self, name: str, value: Any) -> None:
        # component attributes the widget does not declare (TLSContext …) are set on the
        # component, so ``widget.X = v`` means what it says
        component = self.__dict__.get("component")
        if component is not None and name in component.EVENT_NAMES:
            component.assign_handler(name, value)  # ``widget.OnRead = handler``, as Delphi's
            return
        if (component is not None and not name.startswith("_") and not hasattr(type(self), name)
                and hasattr(component, name)):
            setattr(component, name, value)
        else:
            super().__setattr__(name, value)


# ---------------------------------------------------------------------------------------------
# ClientSocket: the enum holder (same class name, see the module docstring), then the widget

class ClientSocket(_ComponentWidget):
    @QEnum
    class TClientType(IntEnum):
        ctNonBlocking = 0
        ctBlocking = 1

    @QEnum
    class TFramingMode(IntEnum):
        fmNone = 0
        fmLine = 1
        fmPacket = 2

    @QEnum
    class TFrameOverflow(IntEnum):
        foClose = 0
        foDiscard = 1


_ClientSocketEnums = ClientSocket
_check_enums(components.ClientSocket, _ClientSocketEnums)


class ClientSocket(_ClientSocketEnums):  # type: ignore[no-redef]
    """Designer placeholder for :class:`sockcomp.ClientSocket` (see the module docstring)."""

    _component_class = components.ClientSocket
    _icon_kind = "client"
    # OnConnect, OnRead …; Active, Address, AllowHalfClose … with ActiveChanged, setActive …
    locals().update(_mirror(components.ClientSocket, _ClientSocketEnums))

    component: components.ClientSocket


# ---------------------------------------------------------------------------------------------
# ServerSocket

class ServerSocket(_ComponentWidget):
    @QEnum
    class TServerType(IntEnum):
        stNonBlocking = 0
        stThreadBlocking = 1

    @QEnum
    class TFramingMode(IntEnum):
        fmNone = 0
        fmLine = 1
        fmPacket = 2

    @QEnum
    class TFrameOverflow(IntEnum):
        foClose = 0
        foDiscard = 1


_ServerSocketEnums = ServerSocket
_check_enums(components.ServerSocket, _ServerSocketEnums)


class ServerSocket(_ServerSocketEnums):  # type: ignore[no-redef]
    """Designer placeholder for :class:`sockcomp.ServerSocket` (see the module docstring)."""

    _component_class = components.ServerSocket
    _icon_kind = "server"
    locals().update(_mirror(components.ServerSocket, _ServerSocketEnums))

    component: components.ServerSocket


#: what ``QUiLoader.registerCustomWidget`` needs for forms that use the components
CUSTOM_WIDGETS = (ClientSocket, ServerSocket)
