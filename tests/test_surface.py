"""The ScktComp surface, pinned: every public name of Delphi's ScktComp unit, and what became
of it in sockcomp.

``docs/scktcomp-surface.toml`` has one entry per Delphi name (its header explains the fields).
These tests check that:

* the entries are well formed and unique, and cover exactly the names of the reference
  (:data:`REFERENCE`, enumerated from scktcomp.md §1-4, 7 and 8);
* every present name (same, renamed, changed) resolves on the package: a class, an attribute
  of a class or, for what only instances have, of an instance; Qt properties and signals are
  checked in the component's meta-object; enum members have Delphi's ordinals; the message
  texts are in sockcomp's source;
* every absent name has its reason and really is absent, and no note says ``TODO:``;
* every test an entry names exists (the test files are parsed, not imported);
* docs/porting.md section 8 is exactly what the list renders.

After editing the list, rewrite that section of porting.md with::

    python -m tests.test_surface --write
"""
from __future__ import annotations

import ast
import difflib
import importlib
import re
import socket
import sys
import tomllib
import types
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIST = ROOT / "docs" / "scktcomp-surface.toml"
PORTING = ROOT / "docs" / "porting.md"
COMMAND = "python -m tests.test_surface --write"
BEGIN = ("<!-- BEGIN scktcomp-surface: generated from docs/scktcomp-surface.toml by "
         f"`{COMMAND}`; edit the list, not this section -->")
END = "<!-- END scktcomp-surface -->"

STATUSES = ("same", "renamed", "changed", "absent")
KINDS = frozenset({
    "class", "exception", "enum", "set", "enum member", "event type", "procedure type",
    "constant", "record", "message", "procedure", "constructor", "destructor", "property",
    "method", "event",
})
FIELDS = frozenset({"delphi", "kind", "status", "sockcomp", "tests", "note", "qt", "value",
                    "message", "probe"})
TEST_ID = re.compile(r"^tests/(test_\w+\.py)::(?:(\w+)::)?(test_\w+)$")

#: Every public name of ScktComp, enumerated from the reference (scktcomp.md), independently
#: of the list: "Class: Member ..." stands for Class.Member. Names ScktComp takes from the
#: WinSock unit or inherits (TThread, TStream, TComponent) are left out, except the TThread
#: members §7 relies on and the components' Loaded (§3.5).
REFERENCE_TEXT = """
    # §1.1 enumerations and their members
    TServerType TClientType TAsyncStyle TAsyncStyles TSocketEvent TLookupState TErrorEvent
    TServerType: stNonBlocking stThreadBlocking
    TClientType: ctNonBlocking ctBlocking
    TAsyncStyle: asRead asWrite asOOB asAccept asConnect asClose
    TSocketEvent: seLookup seConnecting seConnect seDisconnect seListen seAccept seWrite seRead
    TLookupState: lsIdle lsLookupAddress lsLookupService
    TErrorEvent: eeGeneral eeSend eeReceive eeConnect eeDisconnect eeAccept eeLookup
    # §1.2 event (method-pointer) types and the error procedure type
    TSocketNotifyEvent TSocketErrorEvent TSocketEventEvent TGetSocketEvent TGetThreadEvent
    TThreadNotifyEvent TSocketErrorProc
    # §1.3 constants and message records
    CM_SOCKETMESSAGE CM_DEFERFREE CM_LOOKUPCOMPLETE TCMSocketMessage TCMLookupComplete
    # §1.4 the exception and its messages
    ESocketError sWindowsSocketError sAsyncSocketError sNoAddress sCannotListenOnOpen
    sCannotCreateSocket sSocketAlreadyOpen sCantChangeWhileActive sSocketMustBeBlocking
    sSocketIOError sSocketRead sSocketWrite
    # §2 the classes, the components' constructors and destructors, TCustomSocket's dispatch
    TCustomWinSocket TClientWinSocket TServerClientWinSocket TServerWinSocket
    TServerAcceptThread TServerClientThread TWinSocketStream TAbstractSocket TCustomSocket
    TClientSocket TCustomServerSocket TServerSocket
    TClientSocket: Create Destroy
    TServerSocket: Create Destroy
    TCustomSocket: Event Error
    # §3.1 the components' properties and events (TServerSocket's protected ones included)
    TClientSocket: Active Address ClientType Host Port Service Socket
    TClientSocket: OnLookup OnConnecting OnConnect OnDisconnect OnRead OnWrite OnError
    TServerSocket: Active Port Service ServerType ThreadCacheSize Socket Host Address
    TServerSocket: OnListen OnAccept OnGetThread OnGetSocket OnThreadStart OnThreadEnd
    TServerSocket: OnClientConnect OnClientDisconnect OnClientRead OnClientWrite OnClientError
    TServerSocket: OnLookup OnConnecting OnConnect OnDisconnect OnRead OnWrite OnError
    # §3.3 TCustomWinSocket's properties
    TCustomWinSocket: Connected SocketHandle Handle ASyncStyles Addr RemoteAddr RemoteAddress
    TCustomWinSocket: RemoteHost RemotePort LocalAddress LocalHost LocalPort LookupState Data
    TCustomWinSocket: OnSocketEvent OnErrorEvent
    # §3.4 the subclasses' properties and events
    TClientWinSocket: ClientType
    TServerClientWinSocket: ServerWinSocket
    TServerWinSocket: ServerType ThreadCacheSize ActiveConnections Connections ActiveThreads
    TServerWinSocket: IdleThreads GetClientThread OnGetSocket OnGetThread OnThreadStart
    TServerWinSocket: OnThreadEnd OnClientConnect OnClientDisconnect OnClientRead
    TServerWinSocket: OnClientWrite OnClientError
    TServerAcceptThread: ServerSocket
    TServerClientThread: ClientSocket ServerSocket KeepInCache Data
    TWinSocketStream: TimeOut
    # §3.5 the Active state machine
    TClientSocket: DoActivate Loaded
    TServerSocket: DoActivate Loaded
    # §4.1 TCustomWinSocket's methods
    TCustomWinSocket: Create Destroy Open Listen Close Close(ForceClosed) Disconnect Lock
    TCustomWinSocket: Unlock SendBuf SendText SendStream SendStreamThenDrop ReceiveBuf
    TCustomWinSocket: ReceiveLength ReceiveText Read Write Connect Accept LookupName
    TCustomWinSocket: LookupService
    # §4.2 TServerWinSocket's methods and protected hooks; the server client's constructor
    TServerWinSocket: Accept Disconnect Listen GetClientSocket GetServerThread DoCreateThread
    TServerWinSocket: ThreadStart ThreadEnd ClientConnect ClientDisconnect ClientRead
    TServerWinSocket: ClientWrite ClientErrorEvent
    TServerClientWinSocket: Create
    # §4.3 the components' methods
    TClientSocket: Open Close
    TServerSocket: Open Close
    # §4.4 the global procedure
    SetErrorProc
    # §7 TServerClientThread, with the TThread members it relies on
    TServerClientThread: Create Destroy ClientExecute Execute ReActivate StartConnect
    TServerClientThread: EndConnect DoTerminate HandleException Event Error
    TServerClientThread: Terminated Terminate Synchronize Resume FreeOnTerminate OnTerminate
    # §8 TWinSocketStream
    TWinSocketStream: Create WaitForData Read Write Seek
"""


def reference_names() -> list[str]:
    """:data:`REFERENCE_TEXT` as a list of qualified names (in order, duplicates kept)."""
    names: list[str] = []
    for line in REFERENCE_TEXT.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if ":" in line:
            cls, members = line.split(":", 1)
            names += [f"{cls.strip()}.{member}" for member in members.split()]
        else:
            names += line.split()
    return names


# ------------------------------------------------------------------------------- the list
@lru_cache(maxsize=None)
def _load() -> tuple[dict[str, Any], ...]:
    with LIST.open("rb") as f:
        return tuple(tomllib.load(f)["entry"])


def entries() -> list[dict[str, Any]]:
    return list(_load())


def present() -> list[dict[str, Any]]:
    return [e for e in entries() if e.get("status") != "absent"]


def absent() -> list[dict[str, Any]]:
    return [e for e in entries() if e.get("status") == "absent"]


def _text(note: str) -> str:
    """A note on one line, as the table shows it."""
    return " ".join(note.split())


_GROUPS = {
    "enum": "Enumerations", "set": "Enumerations", "enum member": "Enumerations",
    "event type": "Event and procedure types", "procedure type": "Event and procedure types",
    "constant": "Constants and message records", "record": "Constants and message records",
    "exception": "ESocketError and the messages", "message": "ESocketError and the messages",
    "procedure": "Global procedures",
}


def group_of(entry: dict[str, Any]) -> str:
    """Where the entry goes in porting.md: its class, or a section for the unit's types."""
    kind = entry["kind"]
    if kind in _GROUPS:
        return _GROUPS[kind]
    return entry["delphi"].split(".", 1)[0]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(items: Optional[list[dict[str, Any]]] = None) -> str:
    """docs/porting.md section 8, between (and including) its markers."""
    items = entries() if items is None else items
    counts = Counter(e["status"] for e in items)
    lines = [
        BEGIN,
        "## 8. Every ScktComp name, and what became of it",
        "",
        "`docs/scktcomp-surface.toml` lists every public name of ScktComp (the types and "
        "constants, the exception and its messages, and each class's constructor, properties, "
        f"methods and events): {len(items)} names, {counts['same']} the same in sockcomp, "
        f"{counts['renamed']} renamed, {counts['changed']} changed and {counts['absent']} "
        "absent. Each present name points to the tests of its behaviour and each absent one "
        "gives its reason; `tests/test_surface.py` checks the list against the package and "
        "this section against the list. The section is generated: edit the list, then run "
        f"`{COMMAND}`.",
        "",
        "Below, for each class, every name that is renamed, changed or absent; the names that "
        "behave the same are only counted. Two rules hold for every name and are not repeated: "
        "a Pascal `var` parameter is a `Var` cell (§3), and a component's event is a Qt signal "
        "that also takes a handler by assignment, `Component.OnX = handler` (§2).",
    ]
    groups: dict[str, list[dict[str, Any]]] = {}
    for entry in items:
        groups.setdefault(group_of(entry), []).append(entry)
    for group, members in groups.items():
        lines += ["", f"### {group}", ""]
        same = sum(1 for e in members if e["status"] == "same")
        listed = [e for e in members if e["status"] != "same"]
        if same:
            word = "name behaves" if same == 1 else "names behave"
            lines += [f"{same} {'other ' if listed else ''}{word} the same (not listed).", ""]
        if not listed:
            continue
        lines += ["| ScktComp | sockcomp | | what differs, and why |", "|---|---|---|---|"]
        for e in listed:
            name = e["delphi"]
            if name.startswith(group + ".") and e["kind"] != "enum member":
                name = name[len(group) + 1:]
            where = f"`{e['sockcomp']}`" if e.get("sockcomp") else "—"
            lines.append(f"| `{name}` | {where} | {e['status']} | {_cell(_text(e['note']))} |")
    lines += ["", END]
    return "\n".join(lines) + "\n"


def _section(text: str) -> Optional[str]:
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return None
    return text[start:end + len(END)] + "\n"


def write() -> None:
    """Rewrite porting.md's generated section (appended when the markers are missing)."""
    text = PORTING.read_text(encoding="utf-8")
    old = _section(text)
    new = render()
    if old is None:
        text = text.rstrip("\n") + "\n\n" + new
    else:
        text = text.replace(old, new, 1)
    PORTING.write_text(text, encoding="utf-8")


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [e.get("delphi", "?") for e in items]


# ------------------------------------------------------------------------- the list itself
def test_every_entry_is_well_formed() -> None:
    problems = []
    for e in entries():
        name = e.get("delphi", "?")
        if set(e) - FIELDS:
            problems.append(f"{name}: unknown fields {sorted(set(e) - FIELDS)}")
        if e.get("kind") not in KINDS:
            problems.append(f"{name}: kind {e.get('kind')!r}")
        status = e.get("status")
        if status not in STATUSES:
            problems.append(f"{name}: status {status!r}")
        note = _text(e.get("note", ""))
        if status != "same" and not note:
            problems.append(f"{name}: a {status} name needs a note (what differs, or why)")
        if status == "absent":
            if e.get("sockcomp"):
                problems.append(f"{name}: absent, yet it names {e['sockcomp']!r}")
        else:
            if not e.get("sockcomp"):
                problems.append(f"{name}: where is it in sockcomp?")
            if not e.get("tests"):
                problems.append(f"{name}: no test of its behaviour")
            if note.startswith("TODO:"):
                problems.append(f"{name}: TODO on a name that is {status}")
        for test in e.get("tests", []):
            if not TEST_ID.match(test):
                problems.append(f"{name}: bad test id {test!r}")
        if (e.get("kind") == "enum member") != isinstance(e.get("value"), int):
            problems.append(f"{name}: an enum member has an int value, nothing else does")
        if (e.get("kind") == "message") != bool(e.get("message")):
            problems.append(f"{name}: a message has its text, nothing else does")
        if e.get("qt") not in (None, "property", "signal"):
            problems.append(f"{name}: qt {e.get('qt')!r}")
        if "probe" in e and status != "absent":
            problems.append(f"{name}: probe is for absent names")
    assert not problems, "\n".join(problems)


def test_every_name_is_listed_once() -> None:
    names = Counter(ids(entries()))
    assert [n for n, c in names.items() if c > 1] == []


def test_the_list_covers_exactly_the_reference() -> None:
    reference = reference_names()
    assert [n for n, c in Counter(reference).items() if c > 1] == [], "enumerated twice"
    listed = set(ids(entries()))
    missing = [n for n in reference if n not in listed]
    extra = sorted(listed - set(reference))
    assert (missing, extra) == ([], []), (
        f"not in the list: {missing}; not in the reference: {extra}")


def test_no_name_is_left_to_do() -> None:
    """A note starting "TODO:" marks a ScktComp name that sockcomp still has to implement."""
    todo = [f"{e['delphi']}: {_text(e['note'])}" for e in entries()
            if _text(e.get("note", "")).startswith("TODO:")]
    assert not todo, "still to implement:\n" + "\n".join(todo)


# ------------------------------------------------------------------------ the tests named
@lru_cache(maxsize=None)
def _tests_in(filename: str) -> frozenset[str]:
    """The test functions of tests/<filename> (``name`` and ``Class::name``), from its
    syntax tree: the file is not imported."""
    path = ROOT / "tests" / filename
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.add(node.name)
        elif isinstance(node, ast.ClassDef):
            found.update(f"{node.name}::{item.name}" for item in node.body
                         if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return frozenset(found)


def test_every_test_named_exists() -> None:
    missing = []
    for e in entries():
        for test in e.get("tests", []):
            match = TEST_ID.match(test)
            if match is None:
                continue  # reported by test_every_entry_is_well_formed
            filename, cls, func = match.groups()
            if not (ROOT / "tests" / filename).is_file():
                missing.append(f"{e['delphi']}: {test} (no such file)")
                continue
            try:
                names = _tests_in(filename)
            except SyntaxError as exc:
                missing.append(f"{e['delphi']}: {test} (the file does not parse here: {exc})")
                continue
            if (f"{cls}::{func}" if cls else func) not in names:
                missing.append(f"{e['delphi']}: {test}")
    assert not missing, "tests that do not exist:\n" + "\n".join(missing)


# --------------------------------------------------------------------- present in sockcomp
@pytest.fixture(scope="module")
def instances(qapp) -> Iterator[dict[type, Any]]:
    """One instance of each public class, for attributes that only instances have."""
    import sockcomp
    from sockcomp import (
        ClientSocket, ClientWinSocket, CustomWinSocket, ServerClientThread,
        ServerClientWinSocket, ServerSocket, ServerWinSocket, WinSocketStream, ctBlocking,
    )
    from sockcomp._component import SocketComponent

    made: dict[type, Any] = {}
    client = made[ClientSocket] = ClientSocket()
    made[SocketComponent] = client
    server = made[ServerSocket] = ServerSocket()
    made[ServerWinSocket] = server.Socket  # its events are the component's
    made[ClientWinSocket] = ClientWinSocket()
    made[CustomWinSocket] = CustomWinSocket()
    ends = socket.socketpair()
    made[ServerClientWinSocket] = ServerClientWinSocket(ends[0], ServerWinSocket())
    blocking = ClientWinSocket()
    blocking.ClientType = ctBlocking
    made[WinSocketStream] = WinSocketStream(blocking, 1000)
    owner = types.SimpleNamespace(ServerWinSocket=ServerWinSocket(), SocketHandle=-1,
                                  worker=None)
    made[ServerClientThread] = ServerClientThread(True, owner)  # never started
    made[sockcomp.ESocketError] = sockcomp.ESocketError("x")
    yield made
    made[ServerClientWinSocket].Close()
    ends[1].close()
    client.deleteLater()
    server.deleteLater()


def _instance_of(cls: type, instances: dict[type, Any]) -> Any:
    if cls in instances:
        return instances[cls]
    for known, instance in instances.items():
        if issubclass(known, cls):
            return instance
    return None


def resolve(path: str, instances: dict[type, Any]) -> tuple[Any, Any]:
    """``(owner, value)`` of a sockcomp path: ``Name.attr...`` on the package, or
    ``sockcomp.module.Name...``; an attribute missing on a class is looked up on an
    instance of it. Raises AttributeError (or ImportError)."""
    import sockcomp

    parts = path.split(".")
    obj: Any = sockcomp
    rest = parts
    if parts[0] == "sockcomp":
        for cut in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ModuleNotFoundError:
                continue
            rest = parts[cut:]
            break
    owner: Any = None
    for name in rest:
        owner = obj
        try:
            obj = getattr(obj, name)
        except AttributeError:
            instance = _instance_of(obj, instances) if isinstance(obj, type) else None
            if instance is None:
                raise
            obj = getattr(instance, name)
    return owner, obj


def _meta_has(instance: Any, name: str, signal: bool) -> bool:
    from PySide6.QtCore import QMetaMethod

    # A live instance's metaObject(), not cls.staticMetaObject: PySide 6.11/6.12 invalidates
    # the class's staticMetaObject wrapper for good once metaObject() was called on an
    # instance whose parent was then deleted (the Designer placeholders' components are
    # such children), and every later use raises "already deleted".
    meta = instance.metaObject()
    if not signal:
        return meta.indexOfProperty(name) >= 0
    return any(meta.method(i).name().data().decode() == name and
               meta.method(i).methodType() == QMetaMethod.MethodType.Signal
               for i in range(meta.methodCount()))


@pytest.mark.parametrize("entry", present(), ids=ids(present()))
def test_present_names_resolve(entry, instances) -> None:
    from PySide6.QtCore import QObject, SignalInstance

    owner, value = resolve(entry["sockcomp"], instances)
    kind = entry["kind"]
    if kind in ("class", "exception", "constructor"):
        assert isinstance(value, type), f"{entry['sockcomp']} is not a class"
    elif kind in ("method", "procedure", "destructor"):
        assert callable(value), f"{entry['sockcomp']} is not callable"
    elif kind == "enum member":
        assert int(value) == entry["value"], f"{entry['sockcomp']} is {int(value)}"
    elif kind == "event" and not entry.get("qt"):  # an event of a socket object
        instance = _instance_of(owner, instances)
        assert instance is not None
        handler = getattr(instance, entry["sockcomp"].rsplit(".", 1)[1])
        assert isinstance(handler, SignalInstance) or callable(handler)
    if entry.get("qt"):
        assert isinstance(owner, type) and issubclass(owner, QObject)
        name = entry["sockcomp"].rsplit(".", 1)[1]
        assert _meta_has(_instance_of(owner, instances), name,
                         signal=entry["qt"] == "signal"), (
            f"{entry['sockcomp']} is not a Qt {entry['qt']}")


@lru_cache(maxsize=None)
def _package_source() -> str:
    return "\n".join(path.read_text(encoding="utf-8")
                     for path in sorted((ROOT / "sockcomp").rglob("*.py")))


@pytest.mark.parametrize("entry", [e for e in entries() if e["kind"] == "message"],
                         ids=ids([e for e in entries() if e["kind"] == "message"]))
def test_message_texts_are_in_the_source(entry) -> None:
    assert entry["message"] in _package_source()


# ---------------------------------------------------------------------------------- absent
def _probe(entry: dict[str, Any]) -> str:
    """The sockcomp name an absent entry would have: the Delphi name without its T."""
    if "probe" in entry:
        return entry["probe"]
    parts = entry["delphi"].split(".")
    if re.match(r"^T[A-Z]", parts[0]):
        parts[0] = parts[0][1:]
    return ".".join(parts)


@pytest.mark.parametrize("entry", absent(), ids=ids(absent()))
def test_absent_names_are_absent(entry, instances) -> None:
    try:
        _, value = resolve(_probe(entry), instances)
    except (AttributeError, ImportError):
        return
    pytest.fail(f"{entry['delphi']} is listed as absent, but sockcomp.{_probe(entry)} exists "
                f"({value!r}): list where it is and its tests")


# --------------------------------------------------------------------------- porting.md
def test_porting_md_has_the_section_rendered_from_the_list() -> None:
    text = PORTING.read_text(encoding="utf-8")
    current = _section(text)
    assert current is not None, f"porting.md has no generated section: run `{COMMAND}`"
    expected = render()
    if current != expected:
        diff = "".join(difflib.unified_diff(current.splitlines(True), expected.splitlines(True),
                                            "porting.md", "rendered from the list", n=1))
        pytest.fail(f"porting.md section 8 differs from the list; run `{COMMAND}`\n"
                    + diff[:4000])


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(f"usage: {COMMAND}  (rewrites docs/porting.md section 8 from {LIST.name})")
    write()
    print(f"{PORTING.relative_to(ROOT)}: section 8 written from {LIST.relative_to(ROOT)} "
          f"({len(entries())} names)")
