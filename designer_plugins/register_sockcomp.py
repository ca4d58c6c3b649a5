# Qt Designer plugin entry for a source checkout: point PYSIDE_DESIGNER_PLUGINS here.
#
#     PYSIDE_DESIGNER_PLUGINS=$PWD/designer_plugins pyside6-designer
#
# (`python -m sockcomp.designer` does the same for an installed sockcomp and also sets PYTHONPATH
# to the virtual environment's site-packages, which Designer's embedded Python needs on Linux.)
# PySide6's plugin runs this file with separate globals and locals: no functions, classes or
# comprehensions here (they could not see the imports), only top-level statements.
import os
import sys

# the plugin put this directory on sys.path; make the checkout's sockcomp importable too
for _entry in list(sys.path):
    if os.path.basename(os.path.normpath(_entry)) == "designer_plugins":
        _checkout = os.path.dirname(os.path.abspath(_entry))
        if os.path.isdir(os.path.join(_checkout, "sockcomp")) and _checkout not in sys.path:
            sys.path.insert(0, _checkout)

from sockcomp.designer.plugin import register  # noqa: E402

register()
