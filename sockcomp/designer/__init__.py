"""Qt Designer with the sockcomp components: ``python -m sockcomp.designer [form.ui]``.

Also installed as the ``sockcomp-designer`` console script. It runs PySide6's own
``pyside6-designer`` launcher (which preloads libpython so Designer can run Python plugins) with:

* ``PYSIDE_DESIGNER_PLUGINS`` → this package's directory, whose ``register_sockcomp.py`` adds
  *ClientSocket* and *ServerSocket* to the widget box (group "Sockets");
* ``PYTHONPATH`` → this interpreter's site-packages and the directory holding ``sockcomp``.
  Designer embeds its own Python, which does not see a virtual environment's site-packages on
  Linux unless told (so ``No module named 'PySide6'`` would follow).

``--print-env`` prints the variables instead, for people who start Designer some other way.
"""
from __future__ import annotations

import os
import site
import sys
import sysconfig
from typing import Optional, Sequence

__all__ = ["main", "plugin_dir", "designer_env"]


def plugin_dir() -> str:
    """The directory holding ``register_sockcomp.py``."""
    return os.path.dirname(os.path.abspath(__file__))


def _join(*parts: Optional[str]) -> str:
    seen: list[str] = []
    for part in parts:
        for item in (part or "").split(os.pathsep):
            if item and item not in seen:
                seen.append(item)
    return os.pathsep.join(seen)


def designer_env(base: Optional[dict[str, str]] = None) -> dict[str, str]:
    """``base`` (default: ``os.environ``) plus what Designer needs to load the components."""
    env = dict(os.environ if base is None else base)
    project = os.path.dirname(os.path.dirname(plugin_dir()))  # the directory holding sockcomp/
    paths = [project]
    try:
        paths += site.getsitepackages()
    except AttributeError:  # pragma: no cover (old virtualenv's site module)
        pass
    paths.append(sysconfig.get_paths()["purelib"])
    env["PYTHONPATH"] = _join(*paths, env.get("PYTHONPATH"))
    env["PYSIDE_DESIGNER_PLUGINS"] = _join(plugin_dir(), env.get("PYSIDE_DESIGNER_PLUGINS"))
    env.pop("PYSIDE_DISABLE_DESIGNER_PLUGINS", None)
    return env


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--print-env" in args:
        env = designer_env({})
        for key in ("PYSIDE_DESIGNER_PLUGINS", "PYTHONPATH"):
            print(f"export {key}={env[key]!s}")
        return 0
    os.environ.update(designer_env())
    from PySide6.scripts.pyside_tool import designer

    sys.argv = ["pyside6-designer", *args]
    try:
        designer()  # runs the Designer binary and exits with its status
    except SystemExit as done:
        return int(done.code or 0)
    return 0
