# Qt Designer runs every register*.py in PYSIDE_DESIGNER_PLUGINS (PySide6's plugin); this one adds
# the sockcomp components (ClientSocket, ServerSocket) to the widget box, group "Sockets".
# Start Designer with `python -m sockcomp.designer` (or `sockcomp-designer`), which sets it up.
from sockcomp.designer.plugin import register

register()
