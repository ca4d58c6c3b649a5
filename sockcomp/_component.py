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
"""
from __future__ import annotations

import weakref
from typing import Any, Callable, Optional

from PySide6.QtCore import QObject

from ._designtime import in_designer
from ._idle import IdleWatch
from ._pump import current_pump
from ._settings import check_port, check_text
from .errors import ESocketError, HandleException
from .winsock import CustomWinSocket

__all__ = ["SocketComponent", "weak_method", "ACTIVE_ERROR"]

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


def _reaper(sock: CustomWinSocket) -> Callable[..., None]:
    """What runs when the component is destroyed: close its sockets, firing nothing."""
    def reap(*_: Any) -> None:
        try:
            sock.abandon()
        except RuntimeError:  # Qt is being torn down (application exit): no events, no Qt
            sock.drop_os_sockets()
        except BaseException as exc:  # the loop must survive whatever happens here
            HandleException(exc)
    return reap


class SocketComponent(QObject):
    """The base of ClientSocket and ServerSocket (``TAbstractSocket``)."""

    def __init__(self, socket: CustomWinSocket, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self._address = ""
        self._port = 0
        self._service = ""
        self._stored_active = False
        self._active = False  # set by the events, before the handlers run (as the VCL)
        self._loading = True
        self._idle = IdleWatch(self, weak_method(self, "_watched_sockets", ()))
        self.destroyed.connect(_reaper(socket))
        try:
            current_pump().call_soon(weak_method(self, "_end_loading"))
        except RuntimeError:  # no QCoreApplication yet: nothing to defer to
            self._loading = False

    def _end_loading(self) -> None:
        try:
            self.Loaded()
        except RuntimeError:
            pass  # the C++ side was deleted before the loop turned

    def Loaded(self) -> None:
        """End the loading phase: if ``Active`` was set meanwhile, open now (not in Designer)."""
        if not self._loading:
            return
        self._loading = False
        if self._stored_active and not in_designer():
            self.Open()

    def _is_active(self) -> bool:
        return self._active

    # ------------------------------------------------------------------ dispatch wiring
    #: The component's dispatch methods (README, "Handlers without signals").
    _DISPATCH_METHODS: frozenset[str] = frozenset()

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in self._DISPATCH_METHODS and hasattr(self, "_emit"):
            self._bind_dispatch()  # a dispatch method replaced on this instance

    def _bind_dispatch(self) -> None:
        """Resolve once what each event calls, so an event pays no method lookup."""
        raise NotImplementedError

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
        """Open the socket (``Active := True``)."""
        raise NotImplementedError

    def Close(self) -> None:
        """Close the socket (``Active := False``)."""
        raise NotImplementedError

    @property
    def Active(self) -> bool:
        """True while connected (client) or listening (server). Setting it opens or closes."""
        if in_designer():
            return self._stored_active
        return self._active or (self._loading and self._stored_active)

    @Active.setter
    def Active(self, value: bool) -> None:
        value = bool(value)
        if self._loading or in_designer():
            self._stored_active = value
            return
        if value:
            self.Open()
        else:
            self.Close()

    @property
    def Address(self) -> str:
        """Numeric IPv4 or IPv6 address (client: of the server; server: to bind, '' = all)."""
        return self._address

    @Address.setter
    def Address(self, value: str) -> None:
        value = check_text(value, "Address")
        if self._change(self._address, value):
            self._address = value

    @property
    def Port(self) -> int:
        """TCP port, 0..65535 (ignored when Service is set)."""
        return self._port

    @Port.setter
    def Port(self, value: int) -> None:
        value = check_port(value)
        if self._change(self._port, value):
            self._port = value

    @property
    def Service(self) -> str:
        """Service name ('http', 'echo', …) or number as text; beats Port when set."""
        return self._service

    @Service.setter
    def Service(self, value: str) -> None:
        value = check_text(value, "Service")
        if self._change(self._service, value):
            self._service = value

    def _settings_target(self) -> CustomWinSocket:
        """The socket object whose settings the per-connection properties are."""
        raise NotImplementedError

    def _settings_changed(self) -> None:
        """A per-connection setting changed (the idle watch may need rescheduling)."""
        self._idle.arm()


def connection_setting(name: str, doc: str) -> Any:
    """A component property that is the per-connection setting ``name`` of its socket object
    (client) or listening socket (server, where it is the default of every accepted client)."""

    def get(self: SocketComponent) -> Any:
        return getattr(self._settings_target(), name)

    def set_(self: SocketComponent, value: Any) -> None:
        setattr(self._settings_target(), name, value)
        self._settings_changed()

    return property(get, set_, doc=doc)
