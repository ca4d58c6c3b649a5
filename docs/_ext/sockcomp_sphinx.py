"""Sphinx support for documenting sockcomp's Qt classes, and a completeness check.

autodoc knows Python properties and methods; a PySide6 ``Signal`` or ``Property`` on a class
is neither, and would show as an attribute with an object address for a value. This extension
adds:

``.. py:signal:: OnConnect(Sender, Socket)``
    a Python-domain object type for Qt signals, shown as ``signal OnConnect(Sender, Socket)``
    and cross-referenced with ``:py:meth:`` or ``:py:attr:``.

``.. sockcomp-class:: sockcomp.ClientSocket``
    autodoc's ``autoclass`` with the class's public members listed explicitly (inherited ones
    from sockcomp's private base classes included), followed by its signals and Qt properties,
    read from the class's QMetaObject: the signals' argument names (``Signal(...,
    arguments=[...])``), each property's type, whether it is writable, and its change signal.
    A signal's text is the ``#:`` comment above it in the source. With ``:vcl:``, lowercase
    names are left out (on the VCL classes they are the library's internal protocol between its
    parts), except those listed in ``:public:``.

``.. sockcomp-aliases:: sockcomp``
    every name of the module's ``__all__`` that is an enum member (``ctBlocking``, ``eeConnect``
    …) as module data, with its type and the enum member it names.

``.. sockcomp-others:: sockcomp``
    every name of ``__all__`` not documented above it: the reference stays complete when a
    name is added to ``__all__`` before it is given a place in ``docs/api.rst``.

and, when the build ends, a warning (an error under ``-W``) for every name of
``sockcomp.__all__`` that the manual does not document.
"""
from __future__ import annotations

import enum
import importlib
import inspect
import os
from typing import Any, Iterator

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.domains import ObjType
from sphinx.domains.python import PyMethod, PythonDomain
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

try:  # PySide6 is a dependency of sockcomp, so it is there whenever sockcomp imports
    from PySide6.QtCore import Property as QtProperty
    from PySide6.QtCore import QMetaMethod, QObject, Signal
except ImportError:  # pragma: no cover
    QtProperty = Signal = QObject = QMetaMethod = None  # type: ignore[assignment,misc]

# C++ type names a PySide6 property or signal may report, as Python types.
QT_TYPES = {"QString": "str", "PyObject": "object", "double": "float", "qlonglong": "int",
            "int": "int", "bool": "bool", "QByteArray": "bytes", "QStringList": "list[str]"}
# The package documented (``sockcomp_check_module``), set when the configuration is read.
_PACKAGE = ["sockcomp"]
# QObject members a subclass override does not make part of sockcomp's API.
QT_OVERRIDES = {"staticMetaObject", "connectNotify", "disconnectNotify", "event", "eventFilter",
                "timerEvent", "childEvent", "customEvent"}


class PySignal(PyMethod):
    """``.. py:signal::``: a Qt signal, shown as ``signal Name(args)``."""

    def get_signature_prefix(self, sig: str) -> list[nodes.Node]:
        return [nodes.Text("signal"), addnodes.desc_sig_space()]


def _import(name: str) -> Any:
    module_name, _, rest = name.partition(".")
    obj: Any = importlib.import_module(module_name)
    path = module_name
    for part in rest.split(".") if rest else []:
        try:
            obj = getattr(obj, part)
            path += "." + part
        except AttributeError:
            path += "." + part
            obj = importlib.import_module(path)
    return obj


def _own_classes(cls: type) -> list[type]:
    """``cls`` and its bases from the same package (sockcomp's, not QObject, object, enum …)."""
    package = cls.__module__.split(".")[0]
    return [c for c in cls.__mro__ if c.__module__.split(".")[0] == package]


def _type_name(name: bytes | str) -> str:
    """A Qt type name as Python shows it (``QString`` → ``str``; ``ScktComp::FramingMode`` →
    ``FramingMode`` when sockcomp exports that name)."""
    text = bytes(name).decode() if not isinstance(name, str) else name
    text = QT_TYPES.get(text, text.replace("::", "."))
    last = text.rpartition(".")[2]
    top = importlib.import_module(_PACKAGE[0])
    return last if "." in text and last in getattr(top, "__all__", ()) else text


def _signals(cls: type) -> Iterator[tuple[str, list[str]]]:
    """The class's own signals (sockcomp's classes only), in declaration order, with the
    argument names (or types, when the signal declares no names)."""
    names = {n for c in _own_classes(cls) for n, v in vars(c).items() if isinstance(v, Signal)}
    meta = cls.staticMetaObject  # type: ignore[attr-defined]
    seen = set()
    for i in range(meta.methodCount()):
        method = meta.method(i)
        if method.methodType() != QMetaMethod.MethodType.Signal:
            continue
        name = bytes(method.name()).decode()
        if name not in names or name in seen:
            continue
        seen.add(name)
        arg_names = [bytes(a).decode() for a in method.parameterNames()]
        if not all(arg_names):  # no ``arguments=[...]``: number them, with their types
            arg_names = [f"arg{n}: {_type_name(t)}"
                         for n, t in enumerate(method.parameterTypes(), 1)]
        yield name, arg_names


def _qt_properties(cls: type) -> Iterator[tuple[str, Any, str, bool, str]]:
    """(name, Property, type, writable, notify signal name) for the class's Qt properties."""
    found = {}
    for c in reversed(_own_classes(cls)):
        for name, value in vars(c).items():
            if isinstance(value, QtProperty):
                found[name] = value
    meta = cls.staticMetaObject  # type: ignore[attr-defined]
    for i in range(meta.propertyCount()):
        prop = meta.property(i)
        name = prop.name()
        if name not in found:
            continue
        value = found.pop(name)
        annotation = getattr(value.fget, "__annotations__", {}).get("return")
        if not isinstance(annotation, str):
            annotation = getattr(annotation, "__name__", None)
        qt_type = _type_name(prop.typeName())
        type_ = annotation if annotation and annotation != "Any" else qt_type
        notify = bytes(prop.notifySignal().name()).decode() if prop.hasNotifySignal() else ""
        yield name, value, type_, value.fset is not None, notify


def _attr_docs(cls: type, name: str) -> list[str]:
    """The ``#:`` comment (or string after the assignment) documenting ``cls.name``."""
    for c in _own_classes(cls):
        if name not in vars(c):
            continue
        try:
            analyzer = ModuleAnalyzer.for_module(c.__module__)
            docs = analyzer.find_attr_docs()
        except Exception:  # noqa: BLE001 - no source: no text
            return []
        return list(docs.get((c.__qualname__, name), []))
    return []


def _documented_attributes(cls: type) -> list[str]:
    """Public attributes of ``cls`` that its module documents (``#:`` or a string after the
    assignment), instance attributes set in ``__init__`` included."""
    try:
        docs = ModuleAnalyzer.for_module(cls.__module__).find_attr_docs()
    except Exception:  # noqa: BLE001 - no source: none
        return []
    return [name for (qualname, name) in docs
            if qualname == cls.__qualname__ and not name.startswith("_")]


def _indent(lines: list[str], by: str = "   ") -> list[str]:
    return [by + line if line.strip() else "" for line in lines]


class SockcompClass(SphinxDirective):
    """``.. sockcomp-class:: dotted.Name``: see the module docstring."""

    required_arguments = 1
    has_content = True
    option_spec = {"vcl": directives.flag, "public": directives.unchanged,
                   "exclude": directives.unchanged, "inherits": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        cls = _import(name)
        is_qt = QObject is not None and isinstance(cls, type) and issubclass(cls, QObject)
        signals = list(_signals(cls)) if is_qt else []
        qt_props = list(_qt_properties(cls)) if is_qt else []
        special = {n for n, _ in signals} | {p[0] for p in qt_props} | QT_OVERRIDES
        public = {n.strip() for n in self.options.get("public", "").split(",") if n.strip()}
        exclude = {n.strip() for n in self.options.get("exclude", "").split(",") if n.strip()}
        # ``:inherits: Base``: members that ``Base`` (documented on its own) defines are left
        # out unless this class overrides them
        own = _own_classes(cls)
        stop = self.options.get("inherits", "").strip().rpartition(".")[2]
        if stop:
            names = [c.__name__ for c in own]
            if stop not in names:
                raise self.error(f"{name}: {stop} is not among its bases")
            own = own[:names.index(stop)]
        members = []
        for c in reversed(own):
            for member, value in vars(c).items():
                if member.startswith("_") or member in special or member in exclude:
                    continue
                if "vcl" in self.options and member[:1].islower() and member not in public:
                    continue
                if inspect.isclass(value) and issubclass(value, enum.Enum):
                    continue  # nested enums are documented at module level
                if member not in members:
                    members.append(member)
            # instance attributes documented in the source (``self.X = …`` with a docstring
            # or ``#:`` comment, usually in ``__init__``)
            for member in _documented_attributes(c):
                if member in special or member in exclude or member in members:
                    continue
                if "vcl" in self.options and member[:1].islower() and member not in public:
                    continue
                members.append(member)
        lines = [f".. autoclass:: {name}"]
        if members:
            lines += [f"   :members: {', '.join(members)}", "   :undoc-members:"]
        lines.append("")
        lines += _indent(list(self.content))
        change_signals = {p[4] for p in qt_props if p[4]}
        events = [(n, a) for n, a in signals if n not in change_signals]
        if events:
            lines += ["", "   .. rubric:: Signals", ""]
            for sig, args in events:
                lines += [f"   .. py:signal:: {sig}({', '.join(args)})", ""]
                lines += _indent(_attr_docs(cls, sig), "      ") + [""]
        if qt_props:
            lines += ["", "   .. rubric:: Qt properties", ""]
            for prop, value, type_, writable, notify in qt_props:
                lines += [f"   .. py:property:: {prop}", f"      :type: {type_}", ""]
                doc = inspect.cleandoc(value.__doc__ or "").splitlines()
                lines += _indent(doc, "      ") + [""]
                facts = [] if writable else ["Read-only."]
                if notify:
                    args = dict(signals).get(notify, [])
                    facts.append(f"Change signal: ``{notify}({', '.join(args)})``, emitted with "
                                 "the new value.")
                if facts:
                    lines += ["      " + " ".join(facts), ""]
        return self.parse_text_to_nodes("\n".join(lines), offset=self.content_offset)

    def parse_text_to_nodes(self, text: str, offset: int = 0) -> list[nodes.Node]:
        node = nodes.section()
        node.document = self.state.document
        source = self.get_source_info()[0]
        content = StringList(text.splitlines(), source=source)
        self.state.nested_parse(content, offset, node, match_titles=True)
        return list(node.children)


class SockcompAliases(SphinxDirective):
    """``.. sockcomp-aliases:: module``: the module's enum-member names, as data."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        module = importlib.import_module(self.arguments[0])
        lines = []
        for name in module.__all__:
            value = getattr(module, name)
            if not isinstance(value, enum.Enum):
                continue
            owner = type(value).__name__
            lines += [f".. py:data:: {name}", f"   :type: {owner}",
                      f"   :value: {owner}.{value.name}", "",
                      f"   :py:attr:`{owner}.{value.name}` under its Pascal name.", ""]
        node = nodes.section()
        node.document = self.state.document
        self.state.nested_parse(StringList(lines, source=self.get_source_info()[0]),
                                self.content_offset, node)
        return list(node.children)


class SockcompOthers(SphinxDirective):
    """``.. sockcomp-others:: module``: every name of the module's ``__all__`` that the manual
    has not documented by this point (classes with their members, functions, data), so the
    reference is complete by construction; put it after the hand-grouped sections."""

    required_arguments = 1
    has_content = True

    def run(self) -> list[nodes.Node]:
        module_name = self.arguments[0]
        module = importlib.import_module(module_name)
        documented = self.env.get_domain("py").objects
        lines: list[str] = []
        for name in module.__all__:
            if f"{module_name}.{name}" in documented:
                continue
            value = getattr(module, name)
            full = f"{module_name}.{name}"
            if inspect.isclass(value) and issubclass(value, BaseException):
                lines += [f".. autoexception:: {full}", "   :members:", ""]
            elif inspect.isclass(value):
                lines += [f".. sockcomp-class:: {full}", ""]
            elif callable(value):
                lines += [f".. autofunction:: {full}", ""]
            else:
                lines += [f".. py:data:: {name}", f"   :value: {value!r}", ""]
        if not lines:
            lines = ["None: every public name has its place above."]
        else:
            logger.info("sockcomp-others: %d names of %s.__all__ not grouped in the "
                        "reference", len([ln for ln in lines if ln.startswith(".. ")]),
                        module_name)
        lines = list(self.content) + [""] + lines
        node = nodes.section()
        node.document = self.state.document
        self.state.nested_parse(StringList(lines, source=self.get_source_info()[0]),
                                self.content_offset, node)
        return list(node.children)


def map_outside_links(app: Sphinx, doctree: nodes.document) -> None:
    """Point Markdown links to files outside ``docs/`` at the pages that include them.

    ``[changes](CHANGELOG.md)`` in the README and ``[...](../bench/README.md)`` in a guide are
    right on GitHub; in the manual those files are the pages named in
    ``sockcomp_outside_docs`` (repository path → docname), so the links go there.
    """
    mapping: dict[str, str] = app.config.sockcomp_outside_docs
    root = os.path.dirname(app.srcdir)
    for node in doctree.findall(addnodes.pending_xref):
        if node.get("reftype") != "myst":
            continue
        target = str(node.get("reftarget", ""))
        if node.get("refdomain") == "doc":
            path = os.path.relpath(target, root) if os.path.isabs(target) else target
            key = next((k for k in mapping if os.path.splitext(k)[0] == path), None)
        else:
            key = target if target in mapping else None
        if key is not None:
            node["refdomain"] = "doc"
            node["reftarget"] = mapping[key]
            node["reftargetid"] = None


def public_bases(app: Sphinx, name: str, obj: Any, options: Any, bases: list[Any]) -> None:
    """Show a class's public ancestors, not sockcomp's base classes that are not in
    ``sockcomp.__all__`` (``SocketComponent``, ``ScktComp`` …): the reference documents their
    members on the public class itself."""

    top = importlib.import_module(_PACKAGE[0])

    def private(cls: Any) -> bool:
        module = getattr(cls, "__module__", "")
        if module.split(".")[0] != top.__name__:
            return False
        return (any(part.startswith("_") for part in module.split("."))
                or getattr(top, cls.__name__, None) is not cls)

    def public(cls: Any) -> list[Any]:
        if not private(cls):
            return [cls]
        return [b for base in cls.__bases__ if base is not object for b in public(base)]

    result: list[Any] = []
    for base in bases:
        for b in public(base):
            if b not in result:
                result.append(b)
    bases[:] = result or [object]


def check_public_names(app: Sphinx, env: Any) -> None:
    """Warn for every name of ``sockcomp.__all__`` the manual does not document."""
    module_name = app.config.sockcomp_check_module
    if not module_name:
        return
    module = importlib.import_module(module_name)
    documented = env.get_domain("py").objects
    for name in module.__all__:
        if f"{module_name}.{name}" not in documented:
            logger.warning("public name %s.%s is not documented in the manual (add it to "
                           "docs/api.rst)", module_name, name, type="sockcomp", subtype="api")


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("sphinx.ext.autodoc")
    PythonDomain.object_types.setdefault("signal", ObjType("signal", "meth", "attr", "obj"))
    app.add_directive_to_domain("py", "signal", PySignal)
    app.add_directive("sockcomp-class", SockcompClass)
    app.add_directive("sockcomp-aliases", SockcompAliases)
    app.add_directive("sockcomp-others", SockcompOthers)
    app.add_config_value("sockcomp_check_module", "sockcomp", "env")
    app.add_config_value("sockcomp_outside_docs", {}, "env")
    app.connect("config-inited",
                lambda app, config: _PACKAGE.__setitem__(0, config.sockcomp_check_module
                                                         or "sockcomp"))
    app.connect("doctree-read", map_outside_links)
    app.connect("autodoc-process-bases", public_bases)
    app.connect("env-check-consistency", check_public_names)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
