"""Building the ``ssl.SSLContext`` a component's TLS properties describe."""
from __future__ import annotations

import ssl
from typing import Optional

from .errors import TLS_CERTIFICATE_INVALID, ESocketError

__all__ = ["client_context", "server_context"]


def client_context(verify: bool, cafile: str) -> ssl.SSLContext:
    """Verification on (the default): the system's trust store, or ``cafile`` when given."""
    try:
        context = ssl.create_default_context(cafile=cafile or None)
    except (OSError, ssl.SSLError) as exc:
        raise ESocketError(f"TLS CA file {cafile!r} could not be loaded: {exc}",
                           TLS_CERTIFICATE_INVALID) from exc
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def server_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    """A server context presenting ``certfile`` (PEM chain) with ``keyfile`` ('' = in certfile)."""
    if not certfile:
        raise ESocketError("UseTLS needs TLSCertFile (or a TLSContext)", TLS_CERTIFICATE_INVALID)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(certfile, keyfile or None)
    except (OSError, ssl.SSLError) as exc:
        raise ESocketError(f"TLS certificate {certfile!r} could not be loaded: {exc}",
                           TLS_CERTIFICATE_INVALID) from exc
    return context


def host_for_sni(server_name: str, host: str, address: str) -> Optional[str]:
    """The name the client asks for (SNI) and checks the certificate against."""
    return server_name or host or address or None
