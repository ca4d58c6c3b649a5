"""TLS as a layer over a socket stream, and the ``ssl.SSLContext`` the components' properties make.

:class:`TLSStream` wraps a non-blocking OS socket the way trio's ``SSLStream`` wraps a stream:
OpenSSL works on memory buffers (``ssl.MemoryBIO``), and this class moves ciphertext between
them and the socket. It offers the same operations as the plain stream (``recv``, ``send``,
``shutdown_write``, ``drain``) plus the handshake, so the socket object drives TLS and plain
TCP with one code path, in the event loop or in a worker thread, and the handshake is a life
cycle phase like any other (bounded by ConnectTimeout and IdleTimeout).

Every method raises ``BlockingIOError`` where a plain non-blocking socket would (nothing to read
yet; the kernel's send buffer is full). One lock serializes the OpenSSL object, so a worker
thread may read while the component's thread sends.
"""
from __future__ import annotations

import socket
import ssl
import threading
from typing import Any, Optional

from .errors import TLS_CERTIFICATE_INVALID, ESocketError

__all__ = ["client_context", "server_context", "host_for_sni", "TLSStream", "HANDSHAKE_DONE",
           "WANT_READ", "WANT_WRITE"]

#: Ciphertext read from the kernel per call.
RAW_CHUNK = 64 * 1024
#: Plaintext encrypted per send (a few TLS records), so a big queued chunk is not encrypted
#: into memory all at once.
PLAIN_CHUNK = 64 * 1024

HANDSHAKE_DONE = 0
WANT_READ = 0x001   # == _pump.READ
WANT_WRITE = 0x004  # == _pump.WRITE


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


class TLSStream:
    """TLS over one non-blocking OS socket (see the module docstring).

    ``recv(n)`` returns decrypted bytes (``b''`` at the end of the stream, with or without the
    peer's close_notify), ``send(data)`` encrypts and returns the plaintext bytes taken.
    Ciphertext the kernel did not take waits in ``_wire``; :meth:`drain` pushes it (and a FIN
    asked for by :meth:`shutdown_write` once it is out).
    """

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, server_side: bool,
                 server_hostname: Optional[str]) -> None:
        self.sock = sock
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = context.wrap_bio(self._in, self._out, server_side=server_side,
                                     server_hostname=None if server_side else server_hostname)
        self._lock = threading.Lock()
        self._wire = b""
        self._fin_due = False

    # -- handshake --------------------------------------------------------------------------
    def handshake(self) -> int:
        """One step: HANDSHAKE_DONE, or WANT_READ / WANT_WRITE (wait for that, then call again).

        Raises ``ssl.SSLError`` (certificate rejected, protocol failure) or ``OSError``; the
        peer closing mid-handshake is ``ConnectionResetError``."""
        with self._lock:
            while True:
                try:
                    self._obj.do_handshake()
                    done = True
                except ssl.SSLWantReadError:
                    done = False
                self._collect()
                if not self._push():
                    return WANT_WRITE
                if done:
                    return HANDSHAKE_DONE
                try:
                    raw = self.sock.recv(RAW_CHUNK)
                except BlockingIOError:
                    return WANT_READ
                if not raw:
                    raise ConnectionResetError(104, "Connection closed during the TLS handshake")
                self._in.write(raw)

    @property
    def cipher(self) -> Any:
        """The negotiated cipher, as ``ssl.SSLObject.cipher()``."""
        return self._obj.cipher()

    def getpeercert(self, binary_form: bool = False) -> Any:
        """The peer's certificate, as ``ssl.SSLObject.getpeercert``."""
        return self._obj.getpeercert(binary_form)

    # -- data -------------------------------------------------------------------------------
    def recv(self, size: int) -> bytes:
        """Up to ``size`` decrypted bytes: all that is available now. BlockingIOError: none."""
        with self._lock:
            out: list[bytes] = []
            got = 0
            while got < size:
                try:
                    data = self._obj.read(size - got)
                except ssl.SSLWantReadError:
                    if self._in.eof:
                        data = b""
                    else:
                        try:
                            raw = self.sock.recv(RAW_CHUNK)
                        except BlockingIOError:
                            break
                        if raw:
                            self._in.write(raw)
                        else:
                            self._in.write_eof()
                        continue
                except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                    data = b""
                if not data:  # close_notify, or the TCP end without it (a ragged EOF)
                    if not out:
                        self._flush_after_read()
                        return b""
                    break
                out.append(data)
                got += len(data)
            self._flush_after_read()
            if not out:
                raise BlockingIOError(11, "no TLS data yet")
            return out[0] if len(out) == 1 else b"".join(out)

    def _flush_after_read(self) -> None:
        """Reading may produce records to send (key updates, alerts): send them along."""
        if self._out.pending:
            self._collect()
            self._push()

    def pending(self) -> int:
        """Bytes decrypted or received but not yet returned (the kernel cannot report them)."""
        with self._lock:
            return self._obj.pending() + self._in.pending

    def send(self, data: Any) -> int:
        """Encrypt and send up to PLAIN_CHUNK bytes of ``data``; returns the bytes taken.
        Raises BlockingIOError while earlier ciphertext is still waiting for the kernel."""
        with self._lock:
            if self._wire and not self._push():
                raise BlockingIOError(11, "TLS output pending")
            try:
                taken = self._obj.write(data[:PLAIN_CHUNK])
            except ssl.SSLWantReadError:  # a renegotiation needs the peer first
                raise BlockingIOError(11, "TLS wants to read") from None
            self._collect()
            self._push()
            return taken

    @property
    def has_output(self) -> bool:
        """Ciphertext (or a FIN) is still waiting for the kernel."""
        return bool(self._wire) or self._fin_due

    def drain(self) -> bool:
        """Push waiting ciphertext, then a FIN that is due; True when nothing is left."""
        with self._lock:
            return self._push()

    def shutdown_write(self) -> None:
        """Send close_notify, then FIN; reading goes on until the peer's end (a half-close)."""
        with self._lock:
            try:
                self._obj.unwrap()
            except ssl.SSLWantReadError:
                pass  # close_notify is out; the peer's comes later, with its data
            except (ssl.SSLError, ValueError):
                pass  # the TLS session is already broken: the FIN still says it
            self._collect()
            self._fin_due = True
            self._push()

    # -- ciphertext plumbing (lock held) --------------------------------------------------
    def _collect(self) -> None:
        if self._out.pending:
            self._wire += self._out.read()

    def _push(self) -> bool:
        wire = self._wire
        while wire:
            try:
                sent = self.sock.send(wire)
            except BlockingIOError:
                self._wire = wire
                return False
            wire = wire[sent:]
        self._wire = b""
        if self._fin_due:
            self._fin_due = False
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        return True
