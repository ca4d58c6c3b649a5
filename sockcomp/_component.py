"""What ClientSocket and ServerSocket share (Delphi's TAbstractSocket / TCustomSocket).

A component owns its socket object and, through it, every OS socket it opened: destroying the
component (its parent deleted, ``deleteLater()``, the last reference dropped) closes them
without firing any event, as the VCL's destructor and QTcpServer do, and frees the port. To
make "the last reference dropped" possible, nothing the event loop holds (the pump, timers)
refers to the component strongly: socket objects reach it through weak references.

``Active`` works like a form-loaded Delphi component: setting it during the event-loop turn in
which the component was created (as ``setupUi`` does, property after property) only records the
wish; the socket opens on the next turn, once every property is set. Call :meth:`Loaded` to end
that phase earlier. Inside Qt Designer nothing ever opens.

Every property is a real Qt property (:func:`qt_property`) with a change signal named
``<Property>Changed``, so ``QObject.property()``/``setProperty()``, Designer, bindings and QML
see them; Python code reads and writes them as attributes, as before.
"""
from __future__ import annotations

import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable, Optional

import shiboken6
from PySide6.QtCore import Property, QMetaMethod, QObject, QTimer, Signal

from ._designtime import in_designer
from ._idle import IdleWatch
from ._pump import current_pump
from ._reaping import Reaper
from ._settings import DOCS, check_port, check_service, check_text
from .enums import FrameOverflow, FramingMode, ScktComp
from .errors import ESocketError
from .winsock import CustomWinSocket

__all__ = ["SocketComponent", "weak_method", "ACTIVE_ERROR", "qt_property",
           "setting_property", "event"]

ACTIVE_ERROR = "Can't change value while socket is active"


def weak_method(obj: Any, name: str, default: Any = None) -> Callable[..., Any]:
    """A callable that runs ``obj.name(*args)`` while ``obj`` lives (else returns
    ``default``), without keeping ``obj`` alive."""
    ref = weakref.ref(obj)
    func = getattr(type(obj), name)

    def call(*args: Any) -> Any:
        target = ref()
        if target is None:
            return default
        return func(target, *args)

    call.__name__ = call.__qualname__ = name
    return call


def event(*arguments: str) -> Signal:
    """A component event: a Qt signal whose arguments (all Python objects) carry the VCL names
    (``Sender``, ``Socket``…), which Designer's signal/slot editor and QML show."""
    return Signal(*([object] * len(arguments)), arguments=list(arguments))


def qt_property(name: str, type_: type, fget: Callable[[Any], Any],
                fset: Optional[Callable[[Any, Any], None]] = None, doc: str = "") -> dict[str, Any]:
    """A Qt property ``name`` of ``type_`` and its change signal ``<name>Changed(value)``, for
    a class body (``locals().update(qt_property(...))``). The setter emits the signal when the
    value it leaves differs from before; a read-only property's owner emits it itself."""
    changed = Signal(type_, arguments=[name])
    signal_name = name + "Changed"
    setter = None
    if fset is not None:
        def setter(self: Any, value: Any) -> None:
            old = fget(self)
            fset(self, value)
            new = fget(self)
            if new != old:
                getattr(self, signal_name).emit(new)
    return {name: Property(type_, fget, setter, notify=changed, doc=doc), signal_name: changed}


def setting_property(name: str, type_: type) -> dict[str, Any]:
    """A per-connection setting as a Qt property of the component: the setting ``name`` of its
    socket object (client) or listening socket (server, where it is the default of every client
    accepted from then on), checked and documented by :mod:`sockcomp._settings`."""

    def fget(self: "SocketComponent") -> Any:
        return getattr(self._settings_target(), name)

    def fset(self: "SocketComponent", value: Any) -> None:
        setattr(self._settings_target(), name, value)
        self._settings_changed(name)

    return qt_property(name, type_, fget, fset, DOCS[name])


def _closer(sock: CustomWinSocket) -> Callable[[], None]:
    """What a destroyed component's reaper runs: close its sockets, firing nothing."""
    def close() -> None:
        try:
            sock.abandon()
        except RuntimeError:  # Qt is being torn down (application exit): no events, no Qt
            sock.drop_os_sockets()
    return close


def _direct_call(handler: Callable[..., Any], blocked: Callable[[], bool],
                 arity: int = -1) -> Callable[..., None]:
    """``handler`` called as its signal would call it: not while the component's signals are
    blocked, and an exception printed through ``sys.excepthook`` (as PySide does for a slot).
    ``arity``: the signal's argument count; the two-argument events (``Sender, Socket``: the
    per-message ones) get a call without ``*args``, which packs and unpacks a tuple."""
    if arity == 2:
        def call2(sender: Any, socket: Any) -> None:
            if blocked():
                return
            try:
                handler(sender, socket)
            except BaseException as exc:
                sys.excepthook(type(exc), exc, exc.__traceback__)
        return call2

    def call(*args: Any) -> None:
        if blocked():
            return
        try:
            handler(*args)
        except BaseException as exc:
            sys.excepthook(type(exc), exc, exc.__traceback__)
    return call


_SIGNALS: dict[type, dict[str, tuple[str, QMetaMethod]]] = {}


def _signal(component: QObject, name: str) -> tuple[str, QMetaMethod]:
    """Event ``name``'s ``SIGNAL()`` string (``"2OnRead(PyObject,PyObject)"``) and its
    QMetaMethod, from the component class's meta-object.

    PySide6 6.11/6.12 pitfalls avoided here: ``QMetaMethod.fromSignal`` of a bound signal keeps
    the component alive for good, and ``metaObject()`` asked of an instance whose parent is
    later deleted invalidates the class's ``staticMetaObject`` wrapper for good."""
    cache = _SIGNALS.get(type(component))
    if cache is None:
        cache = _SIGNALS[type(component)] = {}
        mo = type(component).staticMetaObject  # type: ignore[attr-defined]
        for index in range(mo.methodCount()):
            method = mo.method(index)
            if method.methodType() == QMetaMethod.MethodType.Signal:
                cache[bytes(method.name().data()).decode()] = (
                    "2" + bytes(method.methodSignature().data()).decode(), method)
    return cache[name]


def _signature(component: QObject, name: str) -> str:
    """The ``SIGNAL()`` string of event ``name`` (``"2OnRead(PyObject,PyObject)"``)."""
    return _signal(component, name)[0]


def signal_connected(component: QObject, name: str) -> bool:
    """Does event ``name`` of ``component`` have a receiver? (Qt's ``isSignalConnected``;
    ask it in the component's thread.)"""
    return component.isSignalConnected(_signal(component, name)[1])


class SocketComponent(ScktComp):
    """The base of ClientSocket and ServerSocket (``TAbstractSocket``); a QObject that knows the
    ScktComp enumerations (:class:`~sockcomp.enums.ScktComp`).

    Events are Qt signals: ``OnConnect.connect(handler)`` adds a handler. Assigning one, as
    Pascal's ``ClientSocket1.OnConnect := Handler``, sets the event's one *assigned* handler:
    ``comp.OnConnect = handler`` replaces the previously assigned one (handlers connected with
    ``connect`` stay) and ``comp.OnConnect = None`` removes it.
    """

    #: Names of the component's events (its signals named On…), per class.
    EVENT_NAMES: frozenset[str] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.EVENT_NAMES = frozenset(
            name for klass in cls.__mro__ for name, value in vars(klass).items()
            if name.startswith("On") and isinstance(value, Signal))

    def __init__(self, socket: CustomWinSocket, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self._address = ""
        self._port = 0
        self._service = ""
        self._stored_active = False
        self._active = False  # set by the events, before the handlers run (as the VCL)
        self._use_tls = False
        self._loading = True
        try:
            pump: Any = current_pump()
            pump.call_soon(weak_method(self, "_end_loading"))
        except RuntimeError:  # no QCoreApplication yet: nothing to defer to
            pump = None
            self._loading = False
        self.__dict__["_fires_pump"] = pump  # the component thread's (assigned handlers)
        # ends the component in its own thread, whichever thread lets it go (_reaping)
        self._reaper = Reaper.for_component(self, _closer(socket), pump)
        self._idle = IdleWatch(self._owned_timer(), weak_method(self, "_watched_sockets", ()),
                               pump)
        # made now, while the object is whole: Qt may notify a disconnect while PySide is
        # tearing the wrapper down, and no weak reference should be created then
        self.__dict__["_fires_refresh"] = weak_method(self, "_refresh_fires")

    def _owned_timer(self) -> QTimer:
        """A single-shot timer of the component's thread, stopped when the component ends (in
        that thread, whichever thread destroys the component)."""
        return self._reaper.timer(self)

    def _end_loading(self) -> None:
        try:
            self.Loaded()
        except RuntimeError:
            pass  # the C++ side was deleted before the loop turned

    def __del__(self) -> None:
        # Python finalizes an object wherever its last reference goes (the cyclic collector
        # runs in any thread). A component finalized outside its own thread is kept and
        # deleted there (_reaping); a C++ parent owns the others.
        reaper = self.__dict__.get("_reaper")
        if reaper is not None and shiboken6.isValid(self) and shiboken6.ownedByPython(self):
            reaper.destroy_later(self)

    @property
    def Loading(self) -> bool:
        """True while the component is being loaded: the event-loop turn in which it was
        created (a form being set up), until :meth:`Loaded` (Delphi's ``csLoading``)."""
        return self._loading

    def Loaded(self) -> None:
        """End the loading phase: if ``Active`` was set meanwhile, open now (not in Designer)."""
        if not self._loading:
            return
        self._loading = False
        if self._stored_active and not in_designer():
            self.Open()

    def _is_active(self) -> bool:
        return self._active

    def _set_active(self, value: bool) -> None:
        """The events move ``Active`` (before their handlers run, as the VCL); tell bindings."""
        if value != self._active:
            self._active = value
            self.ActiveChanged.emit(self.Active)

    # ------------------------------------------------------------------ dispatch wiring
    #: The component's dispatch methods (README, "Handlers without signals").
    _DISPATCH_METHODS: frozenset[str] = frozenset()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.EVENT_NAMES:
            self.assign_handler(name, value)
            return
        super().__setattr__(name, value)
        if name in self._DISPATCH_METHODS and hasattr(self, "_emit"):
            self._bind_dispatch()  # a dispatch method replaced on this instance

    def assign_handler(self, name: str, handler: Optional[Callable[..., Any]]) -> None:
        """Event ``name``'s assigned handler becomes ``handler`` (None: none); what
        ``comp.OnX = handler`` does. The handler is connected to the signal like any slot
        (a later assignment replaces it, slots connected otherwise stay); while it is the
        event's only receiver the component calls it without a Qt emit, which is faster.
        Raises TypeError when ``handler`` is not callable."""
        if handler is not None and not callable(handler):
            raise TypeError(f"{name} takes a callable (or None), not {handler!r}")
        signal = getattr(self, name)
        assigned: dict[str, tuple[Callable[..., Any], Any]] = self.__dict__.setdefault(
            "_assigned_handlers", {})
        previous = assigned.pop(name, None)
        if previous is not None and previous[1]:
            QObject.disconnect(previous[1])
        if handler is not None:
            assigned[name] = (handler, signal.connect(handler))
        pump = self.__dict__.get("_fires_pump")  # None without a QCoreApplication: emit
        if pump is not None and pump.thread_ident == threading.get_ident():
            self._refresh_fires()
        else:
            self._post_refresh()

    def _bind_dispatch(self) -> None:
        """Resolve once what each event calls, so an event pays no method lookup."""
        raise NotImplementedError

    # ------------------------------------------------------------------ assigned handlers
    # ``comp.OnX = handler`` connects ``handler`` like any slot, so every emit reaches it in
    # connection order. While it is the event's only receiver (the Delphi case: one handler
    # per event), the hot events call it directly instead of emitting: a PySide emit costs
    # several microseconds, a call a fraction of one. Any connect or disconnect on the event
    # (QSignalSpy, a Designer form, QML, another slot) switches it back to emitting at once;
    # the direct call returns on the next event-loop turn if the handler is again the only
    # receiver (asked of Qt there, in the component's thread: Qt may call connectNotify with
    # an internal lock held, from any thread).
    def _fire(self, name: str) -> Callable[..., None]:
        """What firing event ``name`` calls now: the signal's ``emit``, or the assigned
        handler itself while it is the only receiver."""
        fires: dict[str, Callable[..., None]] = self.__dict__.get("_fires") or {}
        return fires.get(name) or getattr(self, name).emit

    def _refresh_fires(self) -> None:
        """Component thread: call each assigned handler directly while it is its event's only
        receiver (its own connection alive, one receiver in all), else emit."""
        self.__dict__["_fires_posted"] = False
        generation = self.__dict__.get("_fires_generation", 0)
        assigned = self.__dict__.get("_assigned_handlers") or {}
        fires: dict[str, Callable[..., None]] = {}
        for name, (handler, connection) in assigned.items():
            if connection and self.receivers(_signature(self, name)) == 1:
                fires[name] = _direct_call(handler, self.signalsBlocked,
                                           _signal(self, name)[1].parameterCount())
        if generation == self.__dict__.get("_fires_generation", 0):  # no connect meanwhile
            self.__dict__["_fires"] = fires
            self._bind_dispatch()

    def _receivers_changed(self, signal: QMetaMethod, came: bool) -> None:
        """Qt (any thread, maybe under Qt's lock): a receiver of ``signal`` came or went.
        An event with an assigned handler is emitted from now on; a later turn asks Qt
        whether the direct call may come back."""
        name = bytes(signal.name().data()).decode()
        if name not in (self.__dict__.get("_assigned_handlers") or {}):
            return
        fires = self.__dict__.get("_fires") or {}
        if name in fires:
            self.__dict__["_fires_generation"] = self.__dict__.get("_fires_generation", 0) + 1
            self.__dict__["_fires"] = {key: value for key, value in fires.items() if key != name}
            self._bind_dispatch()
        elif came:
            return  # emitting already; one more receiver cannot bring the direct call back
        self._post_refresh()

    def _post_refresh(self) -> None:
        pump = self.__dict__.get("_fires_pump")
        refresh = self.__dict__.get("_fires_refresh")
        if pump is not None and refresh is not None and not self.__dict__.get("_fires_posted"):
            self.__dict__["_fires_posted"] = True
            pump.call_soon_threadsafe(refresh)

    def connectNotify(self, signal: QMetaMethod) -> None:
        """Qt: a receiver was connected: events with an assigned handler emit again."""
        self._receivers_changed(signal, True)

    def disconnectNotify(self, signal: QMetaMethod) -> None:
        """Qt: a receiver was disconnected: the direct call may come back."""
        self._receivers_changed(signal, False)

    def _overrides(self, owner: type, name: str) -> bool:
        """True when a subclass or this instance replaces ``owner``'s dispatch method ``name``."""
        return getattr(getattr(self, name), "__func__", None) is not getattr(owner, name)

    def _dispatch_call(self, owner: type, name: str,
                       emit: Callable[..., None]) -> Callable[..., None]:
        """What an event calls, with its signal's arguments: the signal's ``emit`` itself (what
        the default method does, one call shorter), or the override of dispatch method
        ``name``, which takes them without Sender."""
        if not self._overrides(owner, name):
            return emit
        method = getattr(self, name)
        return lambda Sender, *args: method(*args)

    def _watched_sockets(self) -> list[CustomWinSocket]:
        raise NotImplementedError

    def _change(self, old: Any, new: Any) -> bool:
        """True when ``new`` differs from ``old``; raises if it may not change now."""
        same = old.lower() == new.lower() if isinstance(old, str) else old == new
        if same:
            return False
        if self._is_active():
            raise ESocketError(ACTIVE_ERROR)
        return True

    def Open(self) -> None:
        """Open the socket (``Active := True``): :meth:`DoActivate` (True)."""
        self.DoActivate(True)

    def Close(self) -> None:
        """Close the socket (``Active := False``): :meth:`DoActivate` (False)."""
        self.DoActivate(False)

    def DoActivate(self, Value: bool) -> None:
        """Open (True) or close (False): what ``Active``, :meth:`Open`, :meth:`Close` and the
        end of loading call (``TAbstractSocket.DoActivate``). Override it to act on every
        activation; call ``super().DoActivate(Value)`` to open or close."""
        if Value:
            self._activate()
        else:
            self._deactivate()

    def _activate(self) -> None:
        raise NotImplementedError

    def _deactivate(self) -> None:
        raise NotImplementedError

    def _get_active(self) -> bool:
        if in_designer():
            return self._stored_active
        return self._active or (self._loading and self._stored_active)

    def _set_active_property(self, value: bool) -> None:
        value = bool(value)
        if self._loading or in_designer():
            self._stored_active = value
            return
        if value:
            self.Open()
        else:
            self.Close()

    def _get_address(self) -> str:
        return self._address

    def _set_address(self, value: str) -> None:
        value = check_text(value, "Address")
        if self._change(self._address, value):
            self._address = value

    def _get_port(self) -> int:
        return self._port

    def _set_port(self, value: int) -> None:
        value = check_port(value)
        if self._change(self._port, value):
            self._port = value

    def _get_service(self) -> str:
        return self._service

    def _set_service(self, value: str) -> None:
        value = check_service(value)
        if self._change(self._service, value):
            self._service = value

    def _get_use_tls(self) -> bool:
        return self._use_tls

    def _set_use_tls(self, value: bool) -> None:
        self._use_tls = bool(value)

    locals().update(qt_property(
        "Active", bool, _get_active, _set_active_property,
        "True while connected (client) or listening (server). Setting it opens or closes; "
        "set while the component is being loaded (a form), it opens on the next event-loop "
        "turn."))
    locals().update(qt_property(
        "Address", str, _get_address, _set_address,
        "Numeric IPv4 or IPv6 address (client: of the server; server: to bind, '' = every "
        "interface). Not changeable while active."))
    locals().update(qt_property("Port", int, _get_port, _set_port,
                                "TCP port, 0..65535 (ignored when Service is set)."))
    locals().update(qt_property(
        "Service", str, _get_service, _set_service,
        "Service name ('http', 'echo', ...) or number as text; beats Port when set."))
    locals().update(qt_property(
        "UseTLS", bool, _get_use_tls, _set_use_tls,
        "Encrypt the connections with TLS; OnConnect / OnClientConnect fire after the "
        "handshake (beyond the VCL)."))
    for _name, _type in (("AllowHalfClose", bool), ("Encoding", str), ("Framing", FramingMode),
                         ("FrameOverflow", FrameOverflow), ("LineEnd", str),
                         ("MaxFrameSize", int), ("SendQueueLimit", int),
                         ("SendQueueLowWater", int), ("IdleTimeout", int),
                         ("HandshakeTimeout", int), ("KeepAlive", bool), ("KeepAliveTime", int),
                         ("KeepAliveInterval", int), ("KeepAliveCount", int)):
        locals().update(setting_property(_name, _type))
    del _name, _type

    def _get_detection_time(self) -> int:
        return int(self._settings_target().KeepAliveDetectionTime)

    if TYPE_CHECKING:  # the Qt properties made here, as type checkers see them
        from PySide6.QtCore import SignalInstance
        Active: bool
        ActiveChanged: SignalInstance
        Address: str
        Port: int
        Service: str
        UseTLS: bool
        AllowHalfClose: bool
        Encoding: str
        Framing: FramingMode
        FrameOverflow: FrameOverflow  # type: ignore[assignment]  # the enum is named so too
        LineEnd: str
        MaxFrameSize: int
        SendQueueLimit: int
        SendQueueLowWater: int
        IdleTimeout: int
        HandshakeTimeout: int
        KeepAlive: bool
        KeepAliveTime: int
        KeepAliveInterval: int
        KeepAliveCount: int
        KeepAliveDetectionTime: int
        KeepAliveDetectionTimeChanged: SignalInstance

    locals().update(qt_property(
        "KeepAliveDetectionTime", int, _get_detection_time, None,
        "Longest time (ms) from the last traffic until keepalive reports a vanished peer, from "
        "the values actually set: KeepAliveTime + KeepAliveCount x KeepAliveInterval "
        "(read-only)."))

    def _settings_target(self) -> CustomWinSocket:
        """The socket object whose settings the per-connection properties are."""
        raise NotImplementedError

    def _settings_changed(self, name: str) -> None:
        """A per-connection setting changed (the idle watch may need rescheduling)."""
        self._idle.arm()
        if name.startswith("KeepAlive"):
            self.KeepAliveDetectionTimeChanged.emit(self.KeepAliveDetectionTime)
