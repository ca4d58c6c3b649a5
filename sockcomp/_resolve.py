"""Name and service lookup off the component's thread (the WSAAsyncGetHostByName analogue).

``getaddrinfo`` can block for seconds on a slow resolver, so host names are looked up in a small
pool of worker threads and the answer is posted back to the requesting thread's pump. Numeric
addresses are converted synchronously (no lookup, no blocking).
"""
from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, Union

from ._pump import Pump
from ._settings import check_port, check_service
from .errors import WSATYPE_NOT_FOUND, ESocketError

__all__ = ["AddrInfo", "lookup_async", "lookup_numeric", "Lookup", "service_port",
           "address_of"]

AddrInfo = tuple  # (family, type, proto, canonname, sockaddr) as returned by getaddrinfo

_executor: Optional[ThreadPoolExecutor] = None


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sockcomp-lookup")
    return _executor


class Lookup:
    """A pending lookup; :meth:`cancel` makes sure its callback never runs."""

    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def lookup_async(pump: Pump, host: str, port: Union[int, str],
                 callback: Callable[[Optional[list[AddrInfo]], Optional[OSError]], None],
                 flags: int = 0) -> Lookup:
    """Resolve ``host``/``port`` in a worker; ``callback(infos, error)`` runs in pump's thread."""
    handle = Lookup()

    def deliver(infos: Optional[list[AddrInfo]], error: Optional[OSError]) -> None:
        if not handle.cancelled:
            callback(infos, error)

    def work() -> None:
        try:
            infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, flags)
        except OSError as exc:
            pump.call_soon_threadsafe(deliver, None, exc)
        else:
            pump.call_soon_threadsafe(deliver, infos, None)

    _pool().submit(work)
    return handle


def lookup_numeric(address: str, port: Union[int, str], flags: int = 0) -> list[AddrInfo]:
    """Convert a numeric address (IPv4 or IPv6) without any network lookup.

    A service *name* is still looked up in the local services database; that is a file read,
    not a network query. Raises :class:`socket.gaierror` on failure.
    """
    return socket.getaddrinfo(address, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0,
                              flags | socket.AI_NUMERICHOST)


def service_port(service: str, port: int) -> int:
    """The TCP port of ``service`` (digits, or a name from the services database such as
    ``'http'``), else ``port`` when ``service`` is ''. Reads a local file, never the network.
    Raises ESocketError 10109 (API 'getservbyname') for an unknown name, and ESocketError
    ``Invalid port number`` for a port (or digits) outside 0..65535."""
    service = check_service(service)
    if not service:
        return check_port(port)
    if service.isdigit():
        return int(service)
    try:
        return socket.getservbyname(service, "tcp")
    except OSError as exc:
        raise ESocketError.from_code(WSATYPE_NOT_FOUND, "getservbyname") from exc


def address_of(name: str) -> str:
    """The first address of host ``name`` as text (IPv4 or IPv6, as the resolver orders
    them); waits for the resolver. Raises ESocketError (11001 unknown host, API
    'getaddrinfo')."""
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_UNSPEC, socket.SOCK_STREAM)
    except OSError as exc:
        raise ESocketError.from_os_error(exc, "getaddrinfo") from exc
    return str(infos[0][4][0])
