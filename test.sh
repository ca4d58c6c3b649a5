#!/bin/sh
# Install sockcomp with its test extras into a virtual environment and run the test suite.
# Usage: ./test.sh [pytest args]      PYTHON=/path/to/python3.12 ./test.sh   picks the interpreter.
set -eu
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv-$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')}"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'
QT_QPA_PLATFORM=offscreen exec "$VENV/bin/python" -m pytest "$@"
