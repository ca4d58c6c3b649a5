"""Echo servers for the benchmark suite, one kind per process.

    python bench/servers.py KIND PORT      # echo on 127.0.0.1:PORT, sink on PORT+1
    python bench/servers.py KIND PORT --inproc N [--passes P]
                                           # in-process ping: P passes in the one process
                                           # (default 1), one JSON line each
    SOCKCOMP_BENCH_TREE=/path/to/other/tree python bench/servers.py sockcomp-nb PORT
                                           # the same server on another tree's sockcomp

Every server listens on two ports: ``PORT`` echoes what it receives, ``PORT+1`` reads and
discards (the "one way" bulk test). Both close the connection when the client finishes
sending. When both are listening the process prints ``READY <pid>`` on stdout (followed, for
the sockcomp kinds, by the directory of the ``sockcomp`` package it imported); it runs until
it is terminated (SIGTERM). Every server sets TCP_NODELAY on accepted connections and uses a
listen backlog of 4096, so the kinds differ only in their I/O machinery.

``--inproc N`` measures what the reference measurement of qt.md §4-5 measured: the per-message
cost of an event loop and its callbacks, without a second process's wake-up latency. A minimal
client runs in the server's own thread and event loop: a non-blocking socket watched by the
loop's own readiness primitive (a ``QSocketNotifier`` for the Qt kinds, ``loop.add_reader`` for
the asyncio kinds), doing N sequential 64-byte round trips after N/10 (>= 200) warm-up trips.
Thread-per-connection kinds have no loop to share and do not support it. ``--passes P`` runs
that client P times one after the other in the same process (bench/run.py's warm-up: the
first pass is discarded).

``sockcomp`` is imported from the tree named by the environment variable
``SOCKCOMP_BENCH_TREE`` when it is set (bench/run.py's ``--tree NAME=PATH``), else from the
tree this file is in. Whatever the tree, the servers below use only sockcomp's public API
(``ServerSocket`` with ``Loaded``/``ServerType``/``Address``/``Port``/``Open``/``Close``,
``OnClientRead``/``OnClientError``/``OnGetThread``, the dispatch methods ``ClientRead`` and
``ClientErrorEvent``, ``ServerClientThread.ClientExecute``/``ClientSocket``/``Terminated``,
``WinSocketStream.Read``/``Write``, ``SendBuf``/``ReceiveBytes``/``Connected``/``Close``).

Kinds: sockcomp-nb, sockcomp-nb-override, sockcomp-nb-assigned, sockcomp-thread,
sockcomp-thread-sync, asyncio-protocol, asyncio-streams, uvloop-protocol, uvloop-streams, qtcp,
raw-notifier, raw-epoll, threading-tcpserver.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import socket
import sys
from time import perf_counter as _perf_counter

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

HOST = "127.0.0.1"
BACKLOG = 4096
RECV = 256 * 1024
FLOOR_RECV = 64 * 1024  # the raw floor reads as the reference measurement did (qt.md §5)


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


INPROC = 0  # --inproc N: run the in-process ping client instead of serving the load generator
INPROC_PASSES = 1  # --passes P: that many in-process ping passes, one after the other
MSG = 64


def _ready(port: int = 0) -> None:
    if INPROC:
        _qt_inproc_ping(port)
        return
    where = _sockcomp_dir()
    sys.stdout.write(f"READY {os.getpid()}{' ' + where if where else ''}\n")
    sys.stdout.flush()


def _sockcomp_dir() -> str:
    """The directory of the sockcomp package this process imported ('' if none)."""
    path = getattr(sys.modules.get("sockcomp"), "__file__", None)
    return os.path.dirname(os.path.abspath(path)) if path else ""


class _PingClient:
    """The in-process client: ``on_readable`` is called by the loop when a reply arrived."""

    def __init__(self, port: int, n: int, done, pass_no: int = 1) -> None:
        self.sock = socket.create_connection((HOST, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.n, self.done, self.pass_no = n, done, pass_no
        self.warm = max(n // 10, 200)
        self.trips = self.pending = 0
        self.t0 = 0.0
        self.msg = b"x" * MSG

    def start(self) -> None:
        self.sock.send(self.msg)

    def on_readable(self, *_) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        if not data:
            raise RuntimeError("server closed the connection")
        self.pending += len(data)
        if self.pending < MSG:
            return
        self.pending -= MSG
        self.trips += 1
        if self.trips == self.warm:
            self.t0 = _perf_counter()
        elif self.trips == self.warm + self.n:
            seconds = _perf_counter() - self.t0
            sys.stdout.write(json.dumps({"value": self.n / seconds, "unit": "rt/s",
                                         "us_per_rt": seconds / self.n * 1e6,
                                         "pass": self.pass_no,
                                         "sockcomp": _sockcomp_dir()}) + "\n")
            sys.stdout.flush()
            self.done()
            return
        self.sock.send(self.msg)


_inproc_alive: list = []  # the in-process client and its notifier, kept for the loop's life


def _qt_inproc_ping(port: int, pass_no: int = 1) -> None:
    from PySide6.QtCore import QCoreApplication, QSocketNotifier, QTimer
    app = QCoreApplication.instance()

    def done() -> None:
        notifier.setEnabled(False)
        client.sock.close()
        if pass_no < INPROC_PASSES:  # the next pass, once this callback has returned
            QTimer.singleShot(0, lambda: _qt_inproc_ping(port, pass_no + 1))
        else:
            app.quit()

    client = _PingClient(port, INPROC, done, pass_no)
    notifier = QSocketNotifier(client.sock.fileno(), QSocketNotifier.Type.Read, app)
    notifier.activated.connect(client.on_readable)
    client.start()
    _inproc_alive.append((client, notifier))


async def _asyncio_inproc_ping(port: int, pass_no: int = 1) -> None:
    import asyncio
    loop = asyncio.get_running_loop()
    finished = loop.create_future()
    client = _PingClient(port, INPROC, lambda: finished.set_result(None), pass_no)
    fd = client.sock.fileno()
    loop.add_reader(fd, client.on_readable)
    client.start()
    try:
        await finished
    finally:
        loop.remove_reader(fd)
        client.sock.close()


def _qt_app():
    from PySide6.QtCore import QCoreApplication
    app = QCoreApplication.instance() or QCoreApplication([])
    # SIGTERM must end app.exec(): Python signal handlers only run when Python code runs,
    # so wake the interpreter periodically with a timer.
    from PySide6.QtCore import QTimer
    signal.signal(signal.SIGTERM, lambda *_: app.quit())
    timer = QTimer(app)
    timer.timeout.connect(lambda: None)
    timer.start(200)
    return app


# ------------------------------------------------------------------------------ sockcomp
def _silence(Sender, Socket, ErrorEvent, ErrorCode) -> None:
    ErrorCode.value = 0  # resets from the load generator are expected, not failures


def serve_sockcomp_nb(port: int, override: bool = False, assigned: bool = False) -> None:
    """stNonBlocking. Default: handlers connected to OnClientRead and OnClientError, as most
    applications do. ``override``: the same handlers as overridden dispatch methods of a
    ServerSocket subclass (ClientRead, ClientErrorEvent), which skips the Qt signal.
    ``assigned``: the handlers assigned the Delphi way (``s.OnClientRead = handler``)."""
    from sockcomp import ServerSocket, stNonBlocking
    if override and not callable(getattr(ServerSocket, "ClientRead", None)):
        # a tree from before the dispatch methods: the subclass would never echo
        sys.exit("sockcomp-nb-override: this sockcomp's ServerSocket has no ClientRead "
                 "dispatch method to override")

    class EchoServer(ServerSocket):
        def ClientRead(self, Socket):
            Socket.SendBuf(Socket.ReceiveBytes())

        def ClientErrorEvent(self, Socket, ErrorEvent, ErrorCode):
            ErrorCode.value = 0

    class SinkServer(EchoServer):
        def ClientRead(self, Socket):
            Socket.ReceiveBytes()

    app = _qt_app()
    servers = []
    for p, sink in ((port, False), (port + 1, True)):
        if override:
            s = SinkServer() if sink else EchoServer()
        else:
            s = ServerSocket()
            if sink:
                def handler(Sender, Socket):
                    Socket.ReceiveBytes()
            else:
                def handler(Sender, Socket):
                    Socket.SendBuf(Socket.ReceiveBytes())
            if assigned:
                s.OnClientRead = handler
                s.OnClientError = _silence
            else:
                s.OnClientRead.connect(handler)
                s.OnClientError.connect(_silence)
        s.Loaded()
        s.ServerType = stNonBlocking
        s.Address, s.Port = HOST, p
        s.Open()
        servers.append(s)
    _ready(port)
    app.exec()


def _recv_send_loop(s: socket.socket, sink: bool) -> None:
    """A thread-per-connection server's whole loop on a blocking socket: ``recv``, then
    ``sendall`` what came (``sink``: discard it), until the end of the stream or a reset.
    ThreadingTCPServer's handler and the bare thread-mode floor share it, so the two run the
    same Python per message."""
    try:
        while True:
            data = s.recv(RECV)
            if not data:
                return
            if not sink:
                s.sendall(data)
    except ConnectionError:
        pass


def serve_sockcomp_thread(port: int, sync: bool = False, bare: bool = False) -> None:
    """stThreadBlocking. Default: the Delphi idiom, a ServerClientThread whose ClientExecute
    echoes through a WinSocketStream. ``sync``: the default ClientExecute, OnClientRead
    synchronized to the component's thread (the handler echoes there). ``bare``: the floor of
    the thread machinery, the same server and threads with ClientExecute calling the OS
    socket's ``recv`` and ``sendall`` directly, as ThreadingTCPServer's handler does (no
    time-outs, no Terminate, no error events)."""
    from sockcomp import ServerClientThread, ServerSocket, WinSocketStream, stThreadBlocking

    class EchoThread(ServerClientThread):
        sink = False

        def ClientExecute(self):
            sock = self.ClientSocket
            stream = WinSocketStream(sock, 60000)
            while not self.Terminated and sock.Connected:
                data = stream.Read(RECV)
                if not data:
                    sock.Close()
                    break
                if not self.sink:
                    stream.Write(data)

    class BareEchoThread(ServerClientThread):
        sink = False

        def ClientExecute(self):
            sock = self.ClientSocket
            os_sock = sock.transport.sock
            os_sock.settimeout(None)  # a blocking descriptor, as accept() made it
            _recv_send_loop(os_sock, self.sink)
            sock.Close()

    class BareSinkThread(BareEchoThread):
        sink = True

    class SinkThread(EchoThread):
        sink = True

    app = _qt_app()
    servers = []
    classes = (BareEchoThread, BareSinkThread) if bare else (EchoThread, SinkThread)
    for p, cls in zip((port, port + 1), classes, strict=True):
        s = ServerSocket()
        s.Loaded()
        s.ServerType = stThreadBlocking
        s.Address, s.Port = HOST, p
        if sync:
            if cls is SinkThread:
                s.OnClientRead.connect(lambda Sender, Socket: Socket.ReceiveBytes())
            else:
                s.OnClientRead.connect(
                    lambda Sender, Socket: Socket.SendBuf(Socket.ReceiveBytes()))
        else:
            s.OnGetThread.connect(
                lambda Sender, ClientSocket, SocketThread, cls=cls:
                setattr(SocketThread, "value", cls(False, ClientSocket)))
        s.OnClientError.connect(_silence)
        s.Open()
        servers.append(s)
    _ready()
    app.exec()
    for s in servers:
        s.Close()


# ------------------------------------------------------------------------------ asyncio
def _run_asyncio(port: int, streams: bool, use_uvloop: bool) -> None:
    import asyncio

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            transport.get_extra_info("socket").setsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def data_received(self, data):
            self.transport.write(data)

    class Sink(Echo):
        def data_received(self, data):
            pass

    async def echo_stream(reader, writer, sink=False):
        try:
            while True:
                data = await reader.read(RECV)
                if not data:
                    break
                if not sink:
                    writer.write(data)
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def main():
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
        if streams:
            s1 = await asyncio.start_server(echo_stream, HOST, port, backlog=BACKLOG)
            s2 = await asyncio.start_server(
                lambda r, w: echo_stream(r, w, True), HOST, port + 1, backlog=BACKLOG)
        else:
            s1 = await loop.create_server(Echo, HOST, port, backlog=BACKLOG)
            s2 = await loop.create_server(Sink, HOST, port + 1, backlog=BACKLOG)
        if INPROC:
            for pass_no in range(1, INPROC_PASSES + 1):
                await _asyncio_inproc_ping(port, pass_no)
        else:
            _ready()
            await stop
        s1.close()
        s2.close()

    if use_uvloop:
        import uvloop
        uvloop.run(main())
    else:
        asyncio.run(main())


# ------------------------------------------------------------------------------ Qt
def serve_qtcp(port: int) -> None:
    from PySide6.QtNetwork import QAbstractSocket, QHostAddress, QTcpServer
    app = _qt_app()
    servers = []

    def make(p: int, sink: bool) -> QTcpServer:
        server = QTcpServer()
        server.setMaxPendingConnections(BACKLOG)
        if hasattr(server, "setListenBacklogSize"):
            server.setListenBacklogSize(BACKLOG)

        def on_new() -> None:
            while server.hasPendingConnections():
                conn = server.nextPendingConnection()
                conn.setSocketOption(QAbstractSocket.SocketOption.LowDelayOption, 1)
                if sink:
                    conn.readyRead.connect(lambda c=conn: c.readAll())
                else:
                    conn.readyRead.connect(lambda c=conn: c.write(c.readAll()))
                conn.disconnected.connect(conn.deleteLater)

        server.newConnection.connect(on_new)
        if not server.listen(QHostAddress(HOST), p):
            raise OSError(server.errorString())
        return server

    servers.append(make(port, False))
    servers.append(make(port + 1, True))
    _ready(port)
    app.exec()


# ------------------------------------------------------------------------------ raw floor
def _listener(port: int) -> socket.socket:
    """A non-blocking listening socket on HOST:port for the raw floors."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((HOST, port))
    ls.listen(BACKLOG)
    ls.setblocking(False)
    return ls


def serve_raw_notifier(port: int) -> None:
    """The floor: plain sockets, one QSocketNotifier per direction, echo in Python."""
    from PySide6.QtCore import QSocketNotifier
    app = _qt_app()
    conns: dict[int, "Conn"] = {}

    class Conn:
        __slots__ = ("sock", "rn", "wn", "pending", "sink")

        def __init__(self, sock: socket.socket, sink: bool) -> None:
            self.sock = sock
            self.sink = sink
            self.pending = b""
            fd = sock.fileno()
            self.rn = QSocketNotifier(fd, QSocketNotifier.Type.Read)
            self.wn = QSocketNotifier(fd, QSocketNotifier.Type.Write)
            self.wn.setEnabled(False)
            self.rn.activated.connect(self.on_read)
            self.wn.activated.connect(self.on_write)

        def on_read(self, *_) -> None:
            try:
                data = self.sock.recv(FLOOR_RECV)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.close()
                return
            if self.sink:
                return
            try:
                sent = self.sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                self.close()
                return
            if sent < len(data):
                self.pending = data[sent:]
                self.rn.setEnabled(False)   # backpressure: stop reading until drained
                self.wn.setEnabled(True)

        def on_write(self, *_) -> None:
            try:
                sent = self.sock.send(self.pending)
            except BlockingIOError:
                return
            except OSError:
                self.close()
                return
            self.pending = self.pending[sent:]
            if not self.pending:
                self.wn.setEnabled(False)
                self.rn.setEnabled(True)

        def close(self) -> None:
            self.rn.setEnabled(False)
            self.wn.setEnabled(False)
            conns.pop(self.sock.fileno(), None)
            self.sock.close()

    listeners = []
    for p, sink in ((port, False), (port + 1, True)):
        ls = _listener(p)
        n = QSocketNotifier(ls.fileno(), QSocketNotifier.Type.Read)

        def on_accept(*_, ls=ls, sink=sink) -> None:
            while True:
                try:
                    c, _addr = ls.accept()
                except (BlockingIOError, InterruptedError):
                    return
                c.setblocking(False)
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conns[c.fileno()] = Conn(c, sink)

        n.activated.connect(on_accept)
        listeners.append((ls, n))
    _ready(port)
    app.exec()


def serve_raw_epoll(port: int) -> None:
    """The floor of sockcomp's own design: one epoll behind one QSocketNotifier, every ready
    socket of a wake served in one Python loop (accept, echo, backpressure), nothing else."""
    import select

    from PySide6.QtCore import QSocketNotifier
    app = _qt_app()
    ep = select.epoll()
    listeners: dict[int, tuple[socket.socket, bool]] = {}
    conns: dict[int, tuple[socket.socket, bool]] = {}
    pending: dict[int, bytes] = {}
    IN, OUT = select.EPOLLIN, select.EPOLLOUT

    def close(fd: int) -> None:
        sock, _sink = conns.pop(fd)
        pending.pop(fd, None)
        ep.unregister(fd)
        sock.close()

    def on_wake() -> None:  # no parameters: PySide converts none
        for fd, events in ep.poll(0, 1024):
            listener = listeners.get(fd)
            if listener is not None:
                ls, sink = listener
                while True:
                    try:
                        c, _addr = ls.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    c.setblocking(False)
                    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    conns[c.fileno()] = (c, sink)
                    ep.register(c.fileno(), IN)
                continue
            entry = conns.get(fd)
            if entry is None:
                continue
            sock, sink = entry
            if events & OUT:
                try:
                    sent = sock.send(pending[fd])
                except BlockingIOError:
                    continue
                except OSError:
                    close(fd)
                    continue
                rest = pending[fd][sent:]
                if rest:
                    pending[fd] = rest
                    continue
                del pending[fd]
                ep.modify(fd, IN)
                continue
            try:
                data = sock.recv(FLOOR_RECV)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                close(fd)
                continue
            if sink:
                continue
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                close(fd)
                continue
            if sent < len(data):
                pending[fd] = data[sent:]
                ep.modify(fd, OUT)  # backpressure: stop reading until drained

    for p, sink in ((port, False), (port + 1, True)):
        ls = _listener(p)
        listeners[ls.fileno()] = (ls, sink)
        ep.register(ls.fileno(), IN)
    notifier = QSocketNotifier(ep.fileno(), QSocketNotifier.Type.Read)
    notifier.activated.connect(on_wake)
    _ready(port)
    app.exec()


# ------------------------------------------------------------------------------ threads
def serve_threading(port: int) -> None:
    import socketserver
    import threading

    class Echo(socketserver.BaseRequestHandler):
        sink = False

        def handle(self):
            s = self.request
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _recv_send_loop(s, self.sink)

    class Sink(Echo):
        sink = True

    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True
        request_queue_size = BACKLOG

    s1 = Server((HOST, port), Echo)
    s2 = Server((HOST, port + 1), Sink)
    threading.Thread(target=s2.serve_forever, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=s1.shutdown).start())
    _ready()
    s1.serve_forever()


KINDS = {
    "sockcomp-nb": serve_sockcomp_nb,
    "sockcomp-nb-override": lambda port: serve_sockcomp_nb(port, override=True),
    "sockcomp-nb-assigned": lambda port: serve_sockcomp_nb(port, assigned=True),
    "sockcomp-thread": serve_sockcomp_thread,
    "sockcomp-thread-sync": lambda port: serve_sockcomp_thread(port, sync=True),
    "sockcomp-thread-bare": lambda port: serve_sockcomp_thread(port, bare=True),
    "asyncio-protocol": lambda port: _run_asyncio(port, streams=False, use_uvloop=False),
    "asyncio-streams": lambda port: _run_asyncio(port, streams=True, use_uvloop=False),
    "uvloop-protocol": lambda port: _run_asyncio(port, streams=False, use_uvloop=True),
    "uvloop-streams": lambda port: _run_asyncio(port, streams=True, use_uvloop=True),
    "qtcp": serve_qtcp,
    "raw-notifier": serve_raw_notifier,
    "raw-epoll": serve_raw_epoll,
    "threading-tcpserver": serve_threading,
}


INPROC_KINDS = {"sockcomp-nb", "sockcomp-nb-override", "sockcomp-nb-assigned",
                "asyncio-protocol", "asyncio-streams", "uvloop-protocol", "uvloop-streams", "qtcp",
                "raw-notifier", "raw-epoll"}


def main(argv: list[str]) -> None:
    global INPROC, INPROC_PASSES
    usage = (f"usage: servers.py {{{','.join(KINDS)}}} PORT [--inproc N [--passes P]]  "
             f"(--inproc: {', '.join(sorted(INPROC_KINDS))})")
    try:
        if len(argv) in (4, 6) and argv[2] == "--inproc" and argv[0] in INPROC_KINDS:
            INPROC = int(argv[3])
            if len(argv) == 6:
                if argv[4] != "--passes":
                    sys.exit(usage)
                INPROC_PASSES = max(1, int(argv[5]))
            argv = argv[:2]
    except ValueError:
        sys.exit(usage)
    if len(argv) != 2 or argv[0] not in KINDS:
        sys.exit(usage)
    _raise_nofile()
    # sockcomp from the tree run.py names (--tree NAME=PATH), else from this file's tree
    tree = os.environ.get("SOCKCOMP_BENCH_TREE") or \
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    sys.path.insert(0, os.path.abspath(tree))
    KINDS[argv[0]](int(argv[1]))


if __name__ == "__main__":
    main(sys.argv[1:])
