"""A component's end, in the component's own thread, whichever thread lets it go.

Python frees an object where its last reference goes, and the cyclic collector runs in
whichever thread happens to allocate: a component held in a cycle (a form whose methods are its
handlers) is often collected in a worker or peer thread. Qt objects must be destroyed in their
own thread; a timer stopped from another thread stays registered and crashes the owner when it
comes due. So each component has a :class:`Reaper`, a QObject of the component's thread:

* the component's timers come from it (:meth:`Reaper.timer`), children of the thread's pump,
  not of the component, so a component destroyed elsewhere takes no running timer with it;
* the component's ``destroyed`` signal reaches :meth:`Reaper.reap` (a slot of a QObject, which
  PySide keeps when the component's wrapper dies before its C++ object, as it does when a
  parent is collected in another thread; plain Python slots are dropped then). In the
  component's thread it stops the timers and closes the sockets at once; from another thread
  it is posted there;
* a component whose wrapper is finalized in another thread is kept alive and deleted in its own
  thread by :meth:`Reaper.destroy_later` (``SocketComponent.__del__``).

A thread with no event dispatcher (a plain worker running a blocking client) never turns a loop:
there the work is done in the thread at hand, as nothing else can run it. Reapers and timers
are reused per thread, so a thread that only calls ``processEvents()`` (where ``deleteLater``
never runs) does not accumulate them.
"""
from __future__ import annotations

import threading
import warnings
import weakref
from typing import Any, Callable, Optional

import shiboken6
from PySide6.QtCore import QAbstractEventDispatcher, QMetaObject, QObject, Qt, QThread, QTimer, Slot

from ._pump import Pump
from .errors import HandleException

__all__ = ["Reaper", "SPARES_KEPT"]


#: Reapers (and as many timers) kept per thread for reuse; more are deleted.
SPARES_KEPT = 64


class _Spares:
    """The reapers and timers of one pump (one thread), ready for the next component."""

    def __init__(self) -> None:
        self.reapers: list["Reaper"] = []
        self.timers: list[QTimer] = []


_SPARES: "weakref.WeakKeyDictionary[Pump, _Spares]" = weakref.WeakKeyDictionary()
_ORPHAN_SPARES = _Spares()  # reapers made without a pump (before the QCoreApplication)


def _spares(pump: Optional[Pump]) -> _Spares:
    if pump is None:
        return _ORPHAN_SPARES
    spares = _SPARES.get(pump)
    if spares is None:
        spares = _SPARES[pump] = _Spares()
    return spares


def _loop_can_run(thread: QThread) -> bool:
    """Can ``thread`` ever process a posted call? Not without an event dispatcher."""
    return QAbstractEventDispatcher.instance(thread) is not None


class Reaper(QObject):
    """Ends one component in its own thread: its timers stopped, its sockets closed, nothing
    fired. Made with :meth:`for_component` in the component's thread; ``pump`` is that
    thread's pump (None before there is a QCoreApplication: the timers are then the
    component's own children)."""

    _armed_orphans: set["Reaper"] = set()  # made without a pump: nothing else holds them

    def __init__(self, pump: Optional[Pump]) -> None:
        super().__init__(pump)
        self._pump = pump
        self._thread = threading.get_ident()
        self._close: Optional[Callable[[], None]] = None
        self._timers: list[QTimer] = []
        self._doomed: Any = None

    @classmethod
    def for_component(cls, component: QObject, close: Callable[[], None],
                      pump: Optional[Pump]) -> "Reaper":
        """A reaper for ``component``: ``close()`` (closing its sockets, firing nothing) runs
        when the component is destroyed, in the component's thread."""
        spares = _spares(pump).reapers
        mine = spares and spares[-1]._thread == threading.get_ident()  # orphans: any thread
        reaper = spares.pop() if mine else cls(pump)
        if pump is None:
            cls._armed_orphans.add(reaper)
        reaper._close = close
        component.destroyed.connect(reaper.reap, Qt.ConnectionType.DirectConnection)
        return reaper

    def timer(self, owner: QObject) -> QTimer:
        """A single-shot timer of the component's thread (``owner``: the component, used as
        parent only without a pump), stopped and kept for reuse when the component ends."""
        pump = self._pump
        if pump is None:
            timer = QTimer(owner)
        else:
            spares = _spares(pump).timers
            timer = spares.pop() if spares else QTimer(pump)
        timer.setSingleShot(True)
        self._timers.append(timer)
        return timer

    def in_own_thread(self) -> bool:
        return threading.get_ident() == self._thread

    def destroy_later(self, component: QObject) -> None:
        """Called where ``component``'s wrapper is finalized: outside its own thread (with a
        loop that can run), keep the component and delete it in its thread."""
        if self.in_own_thread() or not _loop_can_run(self.thread()):
            return
        self._doomed = component  # resurrects it until the owner's turn
        QMetaObject.invokeMethod(self, "_destroy_doomed", Qt.ConnectionType.QueuedConnection)

    @Slot()
    def _destroy_doomed(self) -> None:
        component, self._doomed = self._doomed, None
        if component is not None and shiboken6.isValid(component):
            shiboken6.delete(component)  # destroyed -> reap(), here

    @Slot()
    def reap(self) -> None:
        """The component is destroyed: stop its timers, close its sockets, in its thread."""
        if not self.in_own_thread() and _loop_can_run(self.thread()):
            QMetaObject.invokeMethod(self, "reap", Qt.ConnectionType.QueuedConnection)
            return
        close, self._close = self._close, None
        if close is None:
            return
        timers, self._timers = self._timers, []
        try:
            for timer in timers:
                if shiboken6.isValid(timer):  # a component's own child without a pump
                    timer.stop()
            close()
        except RuntimeError:  # Qt is being torn down (application exit)
            pass
        except BaseException as exc:  # the loop must survive whatever happens here
            HandleException(exc)
        finally:
            self._recycle(timers)

    def _recycle(self, timers: list[QTimer]) -> None:
        """Keep the reaper and the timers for the thread's next component (never deleted in
        a slot of theirs; reused, so a loop without ``deleteLater`` does not gather them)."""
        pump = self._pump
        if pump is None:
            Reaper._armed_orphans.discard(self)
            _ORPHAN_SPARES.reapers.append(self)  # its timers died with the component
            return
        if not self.in_own_thread() or not shiboken6.isValid(pump):
            return  # done from a thread without a loop: leave them to the pump
        spares = _spares(pump)
        extra: list[QObject] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # PySide: "Failed to disconnect"
            for timer in timers:
                if shiboken6.isValid(timer):
                    timer.timeout.disconnect()
                    (spares.timers if len(spares.timers) < SPARES_KEPT else extra).append(timer)
        (spares.reapers if len(spares.reapers) < SPARES_KEPT else extra).append(self)
        for obj in extra:  # past the bound (not deleted in this slot of its own)
            pump.delete_soon(obj)
