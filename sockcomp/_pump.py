"""Readiness pump: the Qt-side replacement for WSAAsyncSelect's hidden window.

One :class:`Pump` serves every sockcomp socket of a thread. On Linux every socket joins one
``epoll`` watched by a single ``QSocketNotifier``, whose activation dispatches all ready sockets
in one batch; Qt polls every notifier's descriptor on every turn of its loop, so the epoll keeps
that cost flat when a thread holds thousands of connections. A socket found ready in
:data:`PROMOTE_AFTER` wakes while one of the thread's :data:`DIRECT_SLOTS` is free moves to
``QSocketNotifier`` objects of its own, the shortest path from Qt's event loop to a handler. A
busy long-lived connection (a chat, a control link) gets one; a short one (connect, request,
close) never does, because enabling a notifier is dearer than an epoll registration (with Qt's
glib dispatcher each enable and disable also wakes the loop). Notifiers are recycled.
Elsewhere a fallback uses one ``QSocketNotifier`` per direction per socket. Both expose the
same interface:

* ``register(fd, handler, mask)`` / ``modify(fd, mask)`` / ``unregister(fd)`` where ``mask`` is a
  combination of :data:`READ`, :data:`WRITE` and :data:`ERRORS`, and ``handler(events)``
  receives the ready bits. :data:`ERRORS` asks for errors and hang-ups even while neither
  direction is watched (an error the kernel reports while the application is not reading must
  still end the connection at once); an error or hang-up is reported as the ``ERRORS`` bit,
  with ``READ`` too when reading is watched, so the next ``recv`` tells what happened. A mask
  of 0 watches nothing at all;
* ``call_soon(fn, *args)`` runs ``fn`` on a later turn of this thread's event loop, never
  re-entrantly inside the caller; ``call_soon_threadsafe`` does the same from any thread.

Handlers must tolerate spurious readiness (a descriptor number can be reused within one batch).
Exceptions escaping a handler go to the application exception hook: the loop never dies.
"""
from __future__ import annotations

import os
import select
import socket
import threading
from collections import deque
from typing import Any, Callable, Optional

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, QSocketNotifier

from .errors import HandleException

__all__ = ["DIRECT_SLOTS", "PROMOTE_AFTER", "Pump", "READ", "WRITE", "ERRORS", "current_pump"]

READ = 0x001    # == select.EPOLLIN
WRITE = 0x004   # == select.EPOLLOUT
ERRORS = 0x008  # == select.EPOLLERR: watch for (and report) an error or a hang-up
_ERR_BITS = 0x008 | 0x010  # EPOLLERR | EPOLLHUP
_IO_BITS = READ | WRITE
_EPOLL_BATCH = 1024  # most events one wake takes from the epoll

#: Sockets per thread with notifiers of their own before the epoll takes over. Few, because Qt
#: polls every enabled notifier on every turn of its loop: an idle one costs ~0.07 µs per turn
#: (measured: 6.3 µs per wake with none, 8.7 with 32, 10.9 with 64), more than the epoll's
#: extra ``epoll_wait`` saves once a few of them are idle (docs/benchmarks.md).
DIRECT_SLOTS = 4

#: Wakes in which an epoll-watched socket was ready before it takes a free direct slot. A
#: short connection is ready in two or three (its request, its end), so it stays in the epoll.
PROMOTE_AFTER = 8

Handler = Callable[[int], None]

_local = threading.local()


def current_pump() -> "Pump":
    """The pump of the calling thread, created on first use (needs a Qt event dispatcher)."""
    pump = getattr(_local, "pump", None)
    if pump is None:
        if QCoreApplication.instance() is None:
            raise RuntimeError(
                "sockcomp components need a QCoreApplication (or QApplication) to exist "
                "before they are opened")
        backend = os.environ.get("SOCKCOMP_PUMP", "")
        if backend == "notifier" or not hasattr(select, "epoll"):
            pump = NotifierPump()
        else:
            pump = EpollPump()
        _local.pump = pump
    return pump


class Pump(QObject):
    """Interface shared by the readiness backends (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._soon: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._wake_pending = False
        self._thread = threading.get_ident()
        #: The read-batching timer of this pump's sockets (sockcomp._batching), made on first use.
        self.batch_watch: Any = None

    # -- registration (backend specific) -------------------------------------------------
    def register(self, fd: int, handler: Handler, mask: int) -> None:
        raise NotImplementedError

    def modify(self, fd: int, mask: int) -> None:
        raise NotImplementedError

    def set_handler(self, fd: int, handler: Handler) -> None:
        """Call ``handler`` for ``fd`` from now on (the mask stays)."""
        raise NotImplementedError

    def unregister(self, fd: int, owner: Any = None) -> None:
        """Stop watching ``fd``. With ``owner``, only while ``fd``'s handler is a method of
        ``owner``: an unregister posted from another thread must not remove a new socket that
        reused the number meanwhile."""
        raise NotImplementedError

    def _wake(self) -> None:
        raise NotImplementedError

    # -- deferred calls --------------------------------------------------------------------
    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on a later turn of this thread's event loop."""
        self._soon.append((fn, args))
        if not self._wake_pending:
            self._wake_pending = True
            self._wake()

    def delete_soon(self, obj: QObject) -> None:
        """Delete ``obj`` (a QObject of this thread) on a later turn: unlike ``deleteLater``
        also in a loop driven by ``processEvents()`` alone, and never inside a signal of
        ``obj`` being emitted now (a timer ended from its own timeout)."""
        self.call_soon(_delete_if_valid, obj)

    def call_soon_threadsafe(self, fn: Callable[..., Any], *args: Any) -> None:
        """Like :meth:`call_soon`, callable from any thread."""
        self._soon.append((fn, args))
        self._wake()

    def in_own_thread(self) -> bool:
        """True in the thread this pump serves (the component's thread)."""
        return threading.get_ident() == self._thread

    @property
    def thread_ident(self) -> int:
        """``threading.get_ident()`` of the thread this pump serves."""
        return self._thread

    def _run_soon(self) -> None:
        self._wake_pending = False
        soon = self._soon
        for _ in range(len(soon)):
            fn, args = soon.popleft()
            try:
                fn(*args)
            except BaseException as exc:
                HandleException(exc)
        if soon and not self._wake_pending:
            self._wake_pending = True
            self._wake()


def _delete_if_valid(obj: QObject) -> None:
    if shiboken6.isValid(obj):
        shiboken6.delete(obj)


def _handled_by(handler: Optional[Handler], owner: Any) -> bool:
    """Is ``handler`` a method of ``owner``?"""
    return getattr(handler, "__self__", None) is owner


class _DirectWatch:
    """A socket watched by notifiers of its own; recycled for the next socket when released.

    The read notifier exists from the start, the write notifier from the first time the socket
    waits to send. Re-pointing a notifier at another descriptor (``setSocket``) costs about what
    an epoll registration does; creating and connecting a new one costs ten times more.
    """

    __slots__ = ("pump", "soon", "fd", "handler", "mask", "reader", "writer", "writer_fd",
                 "errors", "errors_fd")

    def __init__(self, pump: "EpollPump") -> None:
        self.pump = pump
        self.soon = pump._soon  # read after every event: a QObject's attributes read slower
        self.fd = -1
        self.handler: Optional[Handler] = None
        self.mask = 0
        self.reader = QSocketNotifier(QSocketNotifier.Type.Read, pump)
        self.reader.activated.connect(self._on_read)  # no parameters: see EpollPump._dispatch
        self.writer: Optional[QSocketNotifier] = None
        self.writer_fd = -1
        self.errors: Optional[QSocketNotifier] = None
        self.errors_fd = -1

    def attach(self, fd: int, handler: Handler, mask: int) -> None:
        self.fd, self.handler, self.mask = fd, handler, 0
        self.reader.setSocket(fd)  # leaves it disabled
        self.set_mask(mask)

    def set_mask(self, mask: int) -> None:
        before = self.mask
        changed = mask ^ before
        self.mask = mask
        if changed & READ:
            self.reader.setEnabled(bool(mask & READ))
        if changed & WRITE:
            writer = self.writer
            if writer is None:
                writer = self.writer = QSocketNotifier(QSocketNotifier.Type.Write, self.pump)
                writer.activated.connect(self._on_write)
            if self.writer_fd != self.fd:
                writer.setSocket(self.fd)
                self.writer_fd = self.fd
            writer.setEnabled(bool(mask & WRITE))
        # errors while reading is off: an Exception notifier reports ERR and HUP (both Qt
        # dispatchers, measured), which the read notifier would otherwise have reported
        watch_errors = mask & ERRORS and not mask & READ
        if watch_errors != (before & ERRORS and not before & READ):
            notifier = self.errors
            if notifier is None:
                notifier = self.errors = QSocketNotifier(QSocketNotifier.Type.Exception,
                                                         self.pump)
                notifier.activated.connect(self._on_error)
            if self.errors_fd != self.fd:
                notifier.setSocket(self.fd)
                self.errors_fd = self.fd
            notifier.setEnabled(bool(watch_errors))

    def release(self) -> None:
        self.set_mask(0)
        self.handler = None
        self.fd = -1

    def _on_read(self) -> None:
        self._fire(READ)

    def _on_write(self) -> None:
        self._fire(WRITE)

    def _on_error(self) -> None:
        self._fire(ERRORS)

    def _fire(self, events: int) -> None:
        handler = self.handler
        if handler is not None:
            try:
                handler(events)
            except BaseException as exc:
                HandleException(exc)
        if self.soon:
            self.pump._run_soon()


class EpollPump(Pump):
    """The Linux pump: one shared epoll, and direct notifiers for up to ``direct_slots`` busy
    sockets (ready in ``promote_after`` wakes; 0: the first sockets registered, at once)."""

    def __init__(self, direct_slots: int = DIRECT_SLOTS,
                 promote_after: int = PROMOTE_AFTER) -> None:
        super().__init__()
        self._epoll = select.epoll()
        self._handlers: dict[int, Handler] = {}
        self._masks: dict[int, int] = {}
        self._direct_slots = direct_slots
        self._promote_after = promote_after
        self._wakes: dict[int, int] = {}  # fd: wakes it was ready in, while a slot is free
        self._direct: dict[int, _DirectWatch] = {}
        self._spare: list[_DirectWatch] = []
        self._wakefd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll.register(self._wakefd, READ)
        self._notifier = QSocketNotifier(self._epoll.fileno(), QSocketNotifier.Type.Read, self)
        self._notifier.activated.connect(self._dispatch)
        # What every wake reads, in one attribute: Python reads a QObject's attributes without
        # specialising them (about 40 ns more each). None of these objects is ever replaced.
        self._wake_state = (self._handlers, self._wakefd, self._epoll.poll, self._direct,
                            direct_slots, promote_after, self._soon)

    def register(self, fd: int, handler: Handler, mask: int) -> None:
        stale = self._direct.pop(fd, None)  # the number was closed without unregister()
        if stale is not None:
            stale.release()
            self._spare.append(stale)
        self._wakes.pop(fd, None)
        if not self._promote_after and len(self._direct) < self._direct_slots:
            self._attach_direct(fd, handler, mask)
            return
        self._handlers[fd] = handler
        self._masks[fd] = mask
        if mask:
            self._epoll.register(fd, mask & _IO_BITS)

    def modify(self, fd: int, mask: int) -> None:
        watch = self._direct.get(fd)
        if watch is not None:
            if watch.mask != mask:
                watch.set_mask(mask)
            return
        old = self._masks.get(fd)
        if old is None or old == mask:
            return
        self._masks[fd] = mask
        # epoll always reports ERR and HUP: a mask of 0 (not even errors) leaves the set
        if not mask:
            self._epoll.unregister(fd)
        elif not old:
            self._epoll.register(fd, mask & _IO_BITS)
        else:
            self._epoll.modify(fd, mask & _IO_BITS)

    def set_handler(self, fd: int, handler: Handler) -> None:
        watch = self._direct.get(fd)
        if watch is not None:
            watch.handler = handler
        elif fd in self._handlers:
            self._handlers[fd] = handler

    def unregister(self, fd: int, owner: Any = None) -> None:
        watch = self._direct.get(fd)
        if watch is not None:
            if owner is not None and not _handled_by(watch.handler, owner):
                return
            del self._direct[fd]
            watch.release()
            self._spare.append(watch)
            return
        if owner is not None and not _handled_by(self._handlers.get(fd), owner):
            return
        if self._handlers.pop(fd, None) is not None:
            self._wakes.pop(fd, None)
            if self._masks.pop(fd):
                try:
                    self._epoll.unregister(fd)
                except OSError:
                    pass  # already closed: the kernel dropped it from the set

    def _attach_direct(self, fd: int, handler: Handler, mask: int) -> None:
        watch = self._spare.pop() if self._spare else _DirectWatch(self)
        self._direct[fd] = watch
        watch.attach(fd, handler, mask)

    def _promote(self, ready: list[tuple[int, int]]) -> None:
        """Count the wakes each socket of this batch was ready in; one that reached
        ``promote_after`` leaves the epoll for a free direct slot (its notifiers, being
        level-triggered, report whatever is still pending on the next turn)."""
        wakes = self._wakes
        handlers = self._handlers
        for fd, _events in ready:
            if fd not in handlers:
                continue  # the wake-up descriptor, or unregistered by its handler
            count = wakes.get(fd, 0) + 1
            if count < self._promote_after:
                wakes[fd] = count
                continue
            mask = self._masks[fd]
            if mask:
                try:
                    self._epoll.unregister(fd)
                except OSError:  # closed by another thread, whose unregister is posted
                    continue
            wakes.pop(fd, None)
            del self._masks[fd]
            self._attach_direct(fd, handlers.pop(fd), mask)
            if len(self._direct) >= self._direct_slots:
                return

    def _wake(self) -> None:
        os.eventfd_write(self._wakefd, 1)

    def _dispatch(self) -> None:
        # No parameters on purpose: PySide6 then skips converting the signal's arguments
        # (QSocketDescriptor, QSocketNotifier.Type), about 1.4 µs per activation.
        handlers, wakefd, poll, direct, direct_slots, promote_after, soon = self._wake_state
        ready = poll(0, _EPOLL_BATCH)
        for fd, events in ready:
            if fd == wakefd:
                try:
                    os.eventfd_read(wakefd)
                except BlockingIOError:
                    pass
                continue
            handler = handlers.get(fd)
            if handler is None:
                continue
            if events & _ERR_BITS:
                events = (events & _IO_BITS) | ERRORS
            try:
                handler(events)
            except BaseException as exc:
                HandleException(exc)
        if promote_after and len(direct) < direct_slots:
            try:
                self._promote(ready)
            except BaseException as exc:  # the deferred calls below must run whatever happens
                HandleException(exc)
        if soon:
            self._run_soon()


class _NotifierWatch:
    """One socket's three notifiers (read, write, errors) in the fallback pump; recycled for
    the next socket instead of deleted, so no deferred deletion can outlive the pump."""

    __slots__ = ("pump", "soon", "fd", "handler", "notifiers")

    def __init__(self, pump: "NotifierPump") -> None:
        self.pump = pump
        self.soon = pump._soon  # as _DirectWatch.soon
        self.fd = -1
        self.handler: Optional[Handler] = None
        types = (QSocketNotifier.Type.Read, QSocketNotifier.Type.Write,
                 QSocketNotifier.Type.Exception)
        self.notifiers = [QSocketNotifier(kind, pump) for kind in types]
        read, write, errors = self.notifiers
        read.activated.connect(lambda: self._fire(READ))  # no parameters: see _dispatch
        write.activated.connect(lambda: self._fire(WRITE))
        errors.activated.connect(lambda: self._fire(ERRORS))

    def attach(self, fd: int, handler: Handler, mask: int) -> None:
        self.fd, self.handler = fd, handler
        for notifier in self.notifiers:
            notifier.setSocket(fd)  # leaves it disabled
        self.set_mask(mask)

    def set_mask(self, mask: int) -> None:
        read, write, errors = self.notifiers
        read.setEnabled(bool(mask & READ))
        write.setEnabled(bool(mask & WRITE))
        errors.setEnabled(bool(mask & ERRORS and not mask & READ))

    def release(self) -> None:
        self.set_mask(0)
        self.handler = None
        self.fd = -1

    def _fire(self, events: int) -> None:
        handler = self.handler
        if handler is not None:
            try:
                handler(events)
            except BaseException as exc:
                HandleException(exc)
        if self.soon:
            self.pump._run_soon()


class NotifierPump(Pump):
    """Fallback: QSocketNotifiers for each socket (platforms without epoll)."""

    def __init__(self) -> None:
        super().__init__()
        self._watches: dict[int, _NotifierWatch] = {}
        self._spare: list[_NotifierWatch] = []
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._wake_notifier = QSocketNotifier(
            self._wake_r.fileno(), QSocketNotifier.Type.Read, self)
        self._wake_notifier.activated.connect(self._on_wake)

    def register(self, fd: int, handler: Handler, mask: int) -> None:
        stale = self._watches.pop(fd, None)  # the number was closed without unregister()
        if stale is not None:
            stale.release()
            self._spare.append(stale)
        watch = self._spare.pop() if self._spare else _NotifierWatch(self)
        self._watches[fd] = watch
        watch.attach(fd, handler, mask)

    def modify(self, fd: int, mask: int) -> None:
        watch = self._watches.get(fd)
        if watch is not None:
            watch.set_mask(mask)

    def set_handler(self, fd: int, handler: Handler) -> None:
        watch = self._watches.get(fd)
        if watch is not None:
            watch.handler = handler

    def unregister(self, fd: int, owner: Any = None) -> None:
        watch = self._watches.get(fd)
        if watch is not None and owner is not None and not _handled_by(watch.handler, owner):
            return
        watch = self._watches.pop(fd, None)
        if watch is not None:
            watch.release()
            self._spare.append(watch)

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except BlockingIOError:
            pass  # the pipe is full: a wake-up is pending anyway

    def _on_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        self._run_soon()


def pump_for_thread() -> Optional[Pump]:
    """The calling thread's pump if one exists (no creation)."""
    return getattr(_local, "pump", None)
