"""The fields read for every message are attributes Python can read the fast way.

Python 3.12 and later do not specialise a read of an instance attribute that shadows a class
attribute of the same name, nor a read from the instance dict of an io base type: each such read
took about twice as long (docs/benchmarks.md, "fifth session"). These tests pin where the
per-message fields live, on real connections in each server mode and on a worker's stream.
"""
from __future__ import annotations

from typing import Any

from sockcomp import ServerClientThread, WinSocketStream
from tests.test_data import Pair, pair, res  # noqa: F401  (fixtures)
from tests.test_thread_server import connect
from tests.test_worker_reads import thread_server
from tests.util import recv_exactly

WAIT = 5000

#: What data_received, ReceiveBytes, SendBuf and a worker's read and write read per message.
PER_MESSAGE = {"_transport", "_waiter", "_pump", "_event_sink", "_framer", "_blocking", "_rx",
               "_mutex", "_life"}


def shadowed(obj: Any) -> set[str]:
    """Instance attributes of ``obj`` that a class in its MRO defines too."""
    return {name for name in vars(obj) if any(name in vars(k) for k in type(obj).__mro__)}


def test_the_per_message_fields_of_both_ends_shadow_no_class_attribute(
        pair: Pair) -> None:  # noqa: F811  (the fixture)
    for sock in (pair.peer, pair.cli.Socket):
        assert PER_MESSAGE <= set(vars(sock)), type(sock).__name__
        assert not PER_MESSAGE & shadowed(sock), type(sock).__name__


def test_a_workers_connection_and_stream_keep_their_fields_the_fast_way(qtbot, qapp) -> None:
    seen: dict[str, Any] = {}

    class Echo(ServerClientThread):
        def ClientExecute(self) -> None:
            stream = WinSocketStream(self.ClientSocket, WAIT)
            stream.Write(stream.Read(64))
            seen["stream dict"] = dict(vars(stream))  # the stream's own fields are in slots
            seen["socket"] = self.ClientSocket

    srv = thread_server([], Echo)
    srv.Open()
    peer = connect(srv.Socket.LocalPort)
    try:
        peer.sendall(b"ping")
        qtbot.waitUntil(lambda: "socket" in seen, timeout=WAIT)  # the loop accepts meanwhile
        assert recv_exactly(peer, 4) == b"ping"
        assert seen["stream dict"] == {}
        sock = seen["socket"]
        assert PER_MESSAGE <= set(vars(sock))
        assert not PER_MESSAGE & shadowed(sock)
    finally:
        peer.close()
        srv.Close()
