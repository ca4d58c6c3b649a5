"""``ESocketError``, Winsock-compatible error codes, and the application exception hook.

sockcomp reports errors with the WSA codes a ported Delphi program already tests for
(``if ErrorCode = 10054``); the native ``errno`` is kept alongside. Errors that happen while the
event loop is delivering a notification are never raised into Qt: they go to the application
exception hook (the analogue of ``Application.HandleException``), which defaults to
:func:`sys.excepthook` and can be replaced with :func:`SetExceptionHook`.

Messages keep the VCL's shapes, so code that matches them keeps working: a failed call raised
to its caller reads ``Windows socket error: <text> (<code>), on API '<api>'``; an error of an
asynchronous notification that reaches the hook reads ``Asynchronous socket error <code>:
<text>, on API '<api>'``. :func:`SetErrorProc` routes the first kind to a callback instead.
"""
from __future__ import annotations

import errno as _errno
import os
import socket
import ssl
import sys
import threading
from typing import Callable, Optional

__all__ = [
    "ESocketError", "SetExceptionHook", "HandleException", "SetErrorProc", "raise_error",
    "cannot_create_socket",
    "wsa_code", "error_text",
    "WSAENOADDRESS", "WSAECONNREFUSED", "WSAECONNRESET", "WSAETIMEDOUT", "WSAHOST_NOT_FOUND",
    "WSATYPE_NOT_FOUND", "WSAEADDRINUSE", "WSAESHUTDOWN", "WSAEMFILE", "WSAENOBUFS",
    "TLS_HANDSHAKE_FAILED", "TLS_CERTIFICATE_INVALID",
]

#: ScktComp's private code for "No address specified".
WSAENOADDRESS = 1110
WSAECONNREFUSED = 10061
WSAECONNRESET = 10054
WSAETIMEDOUT = 10060
WSAEADDRINUSE = 10048
WSAESHUTDOWN = 10058
WSAEMFILE = 10024
WSAENOBUFS = 10055  # also: no thread could be started for a connection
WSAHOST_NOT_FOUND = 11001
WSATYPE_NOT_FOUND = 10109
#: sockcomp's codes for TLS failures (Winsock has none; 10900+ is unused by WSA).
TLS_HANDSHAKE_FAILED = 10900
TLS_CERTIFICATE_INVALID = 10901

# errno name -> WSA code (reference/scktcomp.md §10). Names absent on a platform are skipped.
_ERRNO_TO_WSA_NAMES = {
    "EINTR": 10004, "EBADF": 10009, "EACCES": 10013, "EPERM": 10013, "EFAULT": 10014,
    "EINVAL": 10022, "EMFILE": 10024, "EAGAIN": 10035, "EWOULDBLOCK": 10035,
    "EINPROGRESS": 10036, "EALREADY": 10037, "ENOTSOCK": 10038, "EDESTADDRREQ": 10039,
    "EMSGSIZE": 10040, "EPROTOTYPE": 10041, "ENOPROTOOPT": 10042, "EPROTONOSUPPORT": 10043,
    "EOPNOTSUPP": 10045, "EAFNOSUPPORT": 10047, "EADDRINUSE": 10048, "EADDRNOTAVAIL": 10049,
    "ENETDOWN": 10050, "ENETUNREACH": 10051, "ENETRESET": 10052, "ECONNABORTED": 10053,
    "ECONNRESET": 10054, "EPIPE": 10054, "ENOBUFS": 10055, "EISCONN": 10056,
    "ENOTCONN": 10057, "ESHUTDOWN": 10058, "ETIMEDOUT": 10060, "ECONNREFUSED": 10061,
    "EHOSTDOWN": 10064, "EHOSTUNREACH": 10065,
}
_ERRNO_TO_WSA = {
    getattr(_errno, name): code for name, code in _ERRNO_TO_WSA_NAMES.items()
    if hasattr(_errno, name)
}

# getaddrinfo failures -> WSA codes, as ws2tcpip.h defines the EAI_* constants on Windows.
_GAI_TO_WSA_NAMES = {
    "EAI_NONAME": 11001, "EAI_AGAIN": 11002, "EAI_FAIL": 11003, "EAI_NODATA": 11004,
    "EAI_ADDRFAMILY": 11004, "EAI_SERVICE": 10109, "EAI_FAMILY": 10047, "EAI_MEMORY": 8,
    "EAI_SOCKTYPE": 10044, "EAI_BADFLAGS": 10022,
}
_GAI_TO_WSA = {
    getattr(socket, name): code for name, code in _GAI_TO_WSA_NAMES.items()
    if hasattr(socket, name)
}

# WSA code -> the first errno that maps to it, for the words of a code without an errno
_WSA_TO_ERRNO: dict[int, int] = {}
for _name, _code in _ERRNO_TO_WSA_NAMES.items():
    if hasattr(_errno, _name):
        _WSA_TO_ERRNO.setdefault(_code, getattr(_errno, _name))

_SPECIAL_TEXT = {
    WSAENOADDRESS: "No address specified",
    WSATYPE_NOT_FOUND: "Service not found",
    WSAHOST_NOT_FOUND: "No such host is known",
    11002: "Temporary failure in name resolution",
    11003: "Non-recoverable failure in name resolution",
    11004: "The name has no address of the requested type",
    10101: "Connection closed in the middle of a message",
    TLS_HANDSHAKE_FAILED: "TLS handshake failed",
    TLS_CERTIFICATE_INVALID: "TLS certificate rejected",
}


def wsa_code(exc: BaseException) -> int:
    """The WSA-compatible code for an exception raised by a ``socket`` call."""
    if isinstance(exc, ESocketError):
        return exc.ErrorCode
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TLS_CERTIFICATE_INVALID
    if isinstance(exc, ssl.SSLError) and not isinstance(exc, ssl.SSLEOFError):
        return TLS_HANDSHAKE_FAILED
    if isinstance(exc, ssl.SSLEOFError):
        return 10054
    if isinstance(exc, socket.gaierror):
        return _GAI_TO_WSA.get(exc.errno or 0, 11003)
    if isinstance(exc, TimeoutError) and getattr(exc, "errno", None) is None:
        return WSAETIMEDOUT
    if isinstance(exc, OSError) and exc.errno is not None:
        return _ERRNO_TO_WSA.get(exc.errno, exc.errno)
    return 10000


def error_text(native_errno: Optional[int], code: int) -> str:
    """Human text for an error: the platform's own words for the errno, else for the errno
    the WSA ``code`` stands for, else sockcomp's own words for its codes."""
    if native_errno is not None and native_errno > 0:
        return os.strerror(native_errno)
    if code in _SPECIAL_TEXT:
        return _SPECIAL_TEXT[code]
    mapped = _WSA_TO_ERRNO.get(code)
    if mapped is not None:
        return os.strerror(mapped)
    return f"Unknown socket error {code}"


def describe(exc: BaseException) -> str:
    """A short human description of a socket-layer exception (TLS failures included)."""
    if isinstance(exc, ESocketError):
        return str(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate rejected (certificate verify failed): {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):  # the resolver's own words, e.g. "Name or service..."
        return exc.strerror or error_text(None, wsa_code(exc))
    if isinstance(exc, OSError) and exc.errno:
        return exc.strerror or os.strerror(exc.errno)
    return str(exc) or type(exc).__name__


class ESocketError(OSError):
    """A socket error, shaped like Delphi's ``ESocketError``.

    ``str(e)`` reads like the original (``Windows socket error: Connection refused (10061), on
    API 'connect'``); ``ErrorCode`` is the WSA-compatible code, ``errno`` the native one (or
    ``None``) and ``API`` the call that failed. Errors that are not about an OS call (``No address
    specified``, ``Can't change value while socket is active``) have ``API == ''``.
    """

    ErrorCode: int
    API: str

    def __init__(self, message: str, ErrorCode: int = 0, native_errno: Optional[int] = None,
                 API: str = "") -> None:
        super().__init__(message)
        self.ErrorCode = ErrorCode
        self.errno = native_errno
        self.API = API

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    @classmethod
    def from_code(cls, code: int, api: str, native_errno: Optional[int] = None) -> "ESocketError":
        """Build the VCL-shaped ``Windows socket error: <text> (<code>), on API '<api>'``."""
        text = error_text(native_errno, code)
        message = f"Windows socket error: {text} ({code}), on API '{api}'"
        return cls(message, code, native_errno, api)

    @classmethod
    def asynchronous(cls, code: int, api: str, text: str = "",
                     native_errno: Optional[int] = None) -> "ESocketError":
        """The error of an asynchronous notification, as the application hook receives it:
        ``Asynchronous socket error <code>: <text>, on API '<api>'`` (the VCL's
        ``sAsyncSocketError`` followed by the words and the call)."""
        text = text or error_text(native_errno, code)
        message = f"Asynchronous socket error {code}: {text}, on API '{api}'"
        return cls(message, code, native_errno, api)

    @classmethod
    def from_os_error(cls, exc: BaseException, api: str) -> "ESocketError":
        """Translate an exception from the ``socket`` module into an ESocketError."""
        if isinstance(exc, ESocketError):
            return exc
        code = wsa_code(exc)
        native = None if isinstance(exc, (ssl.SSLError, socket.gaierror)) else \
            getattr(exc, "errno", None)
        return cls(f"Windows socket error: {describe(exc)} ({code}), on API '{api}'", code,
                   native, api)


def cannot_create_socket(exc: OSError) -> OSError:
    """``socket()`` failed: the VCL's ``Can't create new socket``, with the reason (the
    same errno, so the same WSA code: 10024 out of descriptors)."""
    reason = exc.strerror or os.strerror(exc.errno or 0)
    return OSError(exc.errno, f"Can't create new socket: {reason}")


ExceptionHook = Callable[[BaseException], None]
#: ``TSocketErrorProc``: receives the WSA code of a failed call.
SocketErrorProc = Callable[[int], None]

_error_proc = threading.local()


def SetErrorProc(ErrorProc: Optional[SocketErrorProc]) -> Optional[SocketErrorProc]:
    """Install this thread's socket error procedure and return the previous one (``None``:
    raise again). ``SetErrorProc`` of ScktComp, thread-local as there.

    While one is installed, a socket call made in this thread whose operating-system call
    fails (``Listen``: bind, listen, an unknown service; a blocking ``Open``: connect, the
    lookup, the TLS handshake; ``SendBuf``/``ReceiveBuf`` and a ``WinSocketStream`` on a
    blocking socket) calls ``ErrorProc(ErrorCode)`` with the WSA code instead of raising
    :class:`ESocketError`, and returns as it does when OnError cleared the code (the
    socket's ``LastError`` holds the details). Events still fire as always (OnError,
    OnDisconnect); errors of asynchronous notifications still go to the exception hook, and
    invalid arguments and timeouts still raise.
    """
    previous: Optional[SocketErrorProc] = getattr(_error_proc, "proc", None)
    _error_proc.proc = ErrorProc
    return previous


def raise_error(error: "ESocketError") -> None:
    """Raise ``error`` to the caller, or give its code to this thread's error procedure
    (:func:`SetErrorProc`) and return."""
    proc: Optional[SocketErrorProc] = getattr(_error_proc, "proc", None)
    if proc is None or not error.API:  # an invalid argument is no failed call: raised
        raise error
    proc(error.ErrorCode)


def _default_hook(exc: BaseException) -> None:
    sys.excepthook(type(exc), exc, exc.__traceback__)


_hook: ExceptionHook = _default_hook


def SetExceptionHook(hook: Optional[ExceptionHook]) -> ExceptionHook:
    """Install the application exception hook and return the previous one.

    The hook receives every exception that arises while sockcomp handles an asynchronous
    notification (an unsuppressed ``OnError``, a failed lookup, …) — what Delphi shows through
    ``Application.HandleException``. ``None`` restores the default, which calls
    :func:`sys.excepthook`. The hook runs in the component's thread.
    """
    global _hook
    previous = _hook
    _hook = hook if hook is not None else _default_hook
    return previous


def HandleException(exc: BaseException) -> None:
    """Pass ``exc`` to the application exception hook; a failing hook is reported, not raised."""
    try:
        _hook(exc)
    except BaseException as hook_error:  # the loop must survive a broken hook
        try:
            sys.excepthook(type(hook_error), hook_error, hook_error.__traceback__)
        except BaseException:
            pass
