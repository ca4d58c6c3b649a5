"""Qt Designer placeholders for the socket components: ``ClientSocket`` and ``ServerSocket``.

Qt Designer only places QWidgets, so each component gets a small placeholder widget: at design
time it shows the component's 32×32 icon on the form, at run time it hides itself and takes no
room. The widget *owns* a real component (``widget.component``, a
:class:`sockcomp.ClientSocket` / :class:`sockcomp.ServerSocket` parented to the widget) and
exposes it to Designer, uic and QUiLoader:

* the VCL properties as Qt properties with the VCL names (``Host``, ``Port``, ``Active``,
  ``ClientType`` …) and Qt-style setters (``setHost``, ``setPort`` …), so both
  ``setProperty("Port", 5000)`` (what Designer-saved files use) and ``setPort(5000)`` (what uic
  emits for hand-written files without ``stdset="0"``) work; plain attribute access
  (``ui.clientSocket1.Port = 5000``) works as on the component;
* the enums as drop-downs: ``ClientSocket.TClientType`` (``ctNonBlocking``, ``ctBlocking``),
  ``ServerSocket.TServerType`` (``stNonBlocking``, ``stThreadBlocking``) and ``TFramingMode``
  (``fmNone``, ``fmLine``, ``fmPacket``). They are ``IntEnum`` s with the VCL ordinals, so they
  compare equal to ``sockcomp.ctBlocking`` and friends;
* every ``On*`` event of the component as a signal of the widget with the same name and
  arguments. ``Sender`` is the widget where the component would pass itself (OnConnect,
  OnListen …), so a handler can test ``Sender is self.ui.clientSocket1``; server ``OnClient*``
  events keep the ``ServerWinSocket`` as Sender, as in the VCL. Because the signals live on the
  widget, ``QMetaObject.connectSlotsByName`` auto-connects form methods named
  ``on_<objectName>_<Event>`` decorated with ``@Slot(object, object)`` (four ``object`` s for
  ``OnError``), e.g. ``on_clientSocket1_OnConnect``;
* ``Socket``, ``Open()``, ``Close()``, ``Loaded()`` and every other component attribute
  (``SendQueueLength`` … via attribute fallback).

``Active = True`` in a .ui opens after the form is loaded: the component is created inside
``setupUi``/``QUiLoader.load`` and treats that event-loop turn as its loading phase, so the socket
opens on the next turn, with every property and ``connectSlotsByName`` connection in place.
Inside Designer nothing ever opens.

Why the enums are declared in a base class with the same name as the widget: PySide6 registers
an ``@QEnum`` only once its class is created, so a ``Property`` typed with it must live in a
subclass; Designer saves the value as ``<enum>ClientSocket::TClientType::ctBlocking</enum>`` and
uic emits ``ClientSocket.TClientType.ctBlocking``, which resolves because uic imports
``ClientSocket``. The enum types carry Delphi's ``T`` prefix because the property itself is
called ``ClientType``.
"""
from __future__ import annotations

from enum import Enum, IntEnum
from typing import Any, Callable, Optional, Union

from PySide6.QtCore import Property, QEnum, QMetaMethod, QObject, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QLinearGradient, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QWidget

from . import components
from .enums import ClientType, FramingMode, ServerType
from ._designtime import in_designer

__all__ = ["ClientSocket", "ServerSocket", "paint_icon", "CUSTOM_WIDGETS"]

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
# the shared placeholder behaviour

def _enum_value(value: Any) -> int:
    """An enum member of any flavour (ours, sockcomp's, a Qt one) or an int, as an int."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an enum member or an int, got {value!r}")
    return int(value)


def _event_signals(component_class: type) -> dict[str, Signal]:
    """A fresh ``Signal`` for every ``On*`` signal of ``component_class``, same arity, so the
    widget always mirrors the component's events (in declaration order)."""
    mo = component_class.staticMetaObject  # type: ignore[attr-defined]
    found: dict[str, Signal] = {}
    for i in range(mo.methodCount()):
        method = mo.method(i)
        name = bytes(method.name()).decode()
        if method.methodType() == QMetaMethod.MethodType.Signal and name.startswith("On"):
            found[name] = Signal(*([object] * method.parameterCount()))
    return found


class _ComponentWidget(QWidget):
    """Placeholder widget owning a component: icon at design time, hidden at run time."""

    _component_class: type = QObject
    _icon_kind = "client"
    _event_names: tuple[str, ...] = ()

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setFixedSize(QSize(ICON_SIZE, ICON_SIZE))
        self.setToolTip(type(self).__name__)
        # created here, i.e. inside setupUi / QUiLoader.load: the component's loading phase
        # covers every property the form sets, so Active=True opens on the next loop turn
        self.component = component = self._component_class(self)
        for name in self._event_names:
            getattr(component, name).connect(self._forwarder(name))
        if not in_designer():
            self.setVisible(False)

    def _forwarder(self, name: str) -> Callable[..., None]:
        signal = getattr(self, name)
        component = self.component

        def forward(*args: Any) -> None:
            if args and args[0] is component:
                args = (self,) + args[1:]
            signal.emit(*args)

        return forward

    def paintEvent(self, event: Any) -> None:  # noqa: N802 (Qt name)
        painter = QPainter(self)
        paint_icon(painter, QRectF(self.rect()), self._icon_kind)
        painter.end()

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt name)
        return QSize(ICON_SIZE, ICON_SIZE)

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
        return getattr(component, name)

    def __setattr__(self, name: str, value: Any) -> None:
        # component attributes the widget does not declare (AllowHalfClose's relatives, new
        # options…) are set on the component, so ``widget.X = v`` means what it says
        component = self.__dict__.get("component")
        if (component is not None and not name.startswith("_") and not hasattr(type(self), name)
                and hasattr(component, name)):
            setattr(component, name, value)
        else:
            super().__setattr__(name, value)

    # --- accessors shared by both components (Qt properties are declared per class below)
    def getActive(self) -> bool:
        return bool(self.component.Active)

    def setActive(self, value: bool) -> None:
        self.component.Active = bool(value)

    def getAddress(self) -> str:
        return self.component.Address

    def setAddress(self, value: str) -> None:
        self.component.Address = str(value)

    def getPort(self) -> int:
        return self.component.Port

    def setPort(self, value: int) -> None:
        self.component.Port = value if isinstance(value, int) else int(value)

    def getService(self) -> str:
        return self.component.Service

    def setService(self, value: str) -> None:
        self.component.Service = str(value)

    def getAllowHalfClose(self) -> bool:
        return bool(self.component.AllowHalfClose)

    def setAllowHalfClose(self, value: bool) -> None:
        self.component.AllowHalfClose = bool(value)

    def getMaxFrameSize(self) -> int:
        return int(self.component.MaxFrameSize)

    def setMaxFrameSize(self, value: int) -> None:
        self.component.MaxFrameSize = int(value)

    @property
    def LineEnd(self) -> str:
        return self.component.LineEnd

    @LineEnd.setter
    def LineEnd(self, value: str) -> None:
        self.component.LineEnd = value

    @property
    def FrameOverflow(self) -> Any:
        return self.component.FrameOverflow

    @FrameOverflow.setter
    def FrameOverflow(self, value: Any) -> None:
        self.component.FrameOverflow = value


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


_ClientSocketEnums = ClientSocket


class ClientSocket(_ClientSocketEnums):  # type: ignore[no-redef]
    """Designer placeholder for :class:`sockcomp.ClientSocket` (see the module docstring)."""

    _component_class = components.ClientSocket
    _icon_kind = "client"
    _events = _event_signals(components.ClientSocket)  # OnConnect, OnRead, …
    locals().update(_events)  # class-body namespace: declares the signals
    _event_names = tuple(_events)
    del _events

    component: components.ClientSocket

    def getHost(self) -> str:
        return self.component.Host

    def setHost(self, value: str) -> None:
        self.component.Host = str(value)

    def getClientType(self) -> "_ClientSocketEnums.TClientType":
        return _ClientSocketEnums.TClientType(int(self.component.ClientType))

    def setClientType(self, value: Union[int, Enum]) -> None:
        self.component.ClientType = ClientType(_enum_value(value))

    def getConnectTimeout(self) -> int:
        return self.component.ConnectTimeout

    def setConnectTimeout(self, value: int) -> None:
        self.component.ConnectTimeout = int(value)

    def getFraming(self) -> "_ClientSocketEnums.TFramingMode":
        return _ClientSocketEnums.TFramingMode(int(self.component.Framing))

    def setFraming(self, value: Union[int, Enum]) -> None:
        self.component.Framing = FramingMode(_enum_value(value))

    # Delphi's Object Inspector order (alphabetical); Designer shows and saves them in this order
    Active = Property(bool, _ComponentWidget.getActive, _ComponentWidget.setActive)
    Address = Property(str, _ComponentWidget.getAddress, _ComponentWidget.setAddress)
    AllowHalfClose = Property(bool, _ComponentWidget.getAllowHalfClose,
                              _ComponentWidget.setAllowHalfClose)
    ClientType = Property(_ClientSocketEnums.TClientType, getClientType, setClientType)
    ConnectTimeout = Property(int, getConnectTimeout, setConnectTimeout)
    Framing = Property(_ClientSocketEnums.TFramingMode, getFraming, setFraming)
    Host = Property(str, getHost, setHost)
    MaxFrameSize = Property(int, _ComponentWidget.getMaxFrameSize,
                            _ComponentWidget.setMaxFrameSize)
    Port = Property(int, _ComponentWidget.getPort, _ComponentWidget.setPort)
    Service = Property(str, _ComponentWidget.getService, _ComponentWidget.setService)


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


_ServerSocketEnums = ServerSocket


class ServerSocket(_ServerSocketEnums):  # type: ignore[no-redef]
    """Designer placeholder for :class:`sockcomp.ServerSocket` (see the module docstring)."""

    _component_class = components.ServerSocket
    _icon_kind = "server"
    _events = _event_signals(components.ServerSocket)  # OnListen, OnClientRead, …
    locals().update(_events)  # class-body namespace: declares the signals
    _event_names = tuple(_events)
    del _events

    component: components.ServerSocket

    def getServerType(self) -> "_ServerSocketEnums.TServerType":
        return _ServerSocketEnums.TServerType(int(self.component.ServerType))

    def setServerType(self, value: Union[int, Enum]) -> None:
        self.component.ServerType = ServerType(_enum_value(value))

    def getThreadCacheSize(self) -> int:
        return self.component.ThreadCacheSize

    def setThreadCacheSize(self, value: int) -> None:
        self.component.ThreadCacheSize = int(value)

    def getFraming(self) -> "_ServerSocketEnums.TFramingMode":
        return _ServerSocketEnums.TFramingMode(int(self.component.Framing))

    def setFraming(self, value: Union[int, Enum]) -> None:
        self.component.Framing = FramingMode(_enum_value(value))

    Active = Property(bool, _ComponentWidget.getActive, _ComponentWidget.setActive)
    Address = Property(str, _ComponentWidget.getAddress, _ComponentWidget.setAddress)
    AllowHalfClose = Property(bool, _ComponentWidget.getAllowHalfClose,
                              _ComponentWidget.setAllowHalfClose)
    Framing = Property(_ServerSocketEnums.TFramingMode, getFraming, setFraming)
    MaxFrameSize = Property(int, _ComponentWidget.getMaxFrameSize,
                            _ComponentWidget.setMaxFrameSize)
    Port = Property(int, _ComponentWidget.getPort, _ComponentWidget.setPort)
    ServerType = Property(_ServerSocketEnums.TServerType, getServerType, setServerType)
    Service = Property(str, _ComponentWidget.getService, _ComponentWidget.setService)
    ThreadCacheSize = Property(int, getThreadCacheSize, setThreadCacheSize)


#: what ``QUiLoader.registerCustomWidget`` needs for forms that use the components
CUSTOM_WIDGETS = (ClientSocket, ServerSocket)
