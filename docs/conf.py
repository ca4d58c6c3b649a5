"""Sphinx configuration of the sockcomp manual (``docs/``).

Build it from the repository root (warnings are errors, as in CI):

    .venv/bin/pip install -e '.[docs]'
    .venv/bin/sphinx-build -W --keep-going -b html docs build/docs

The API reference documents the source tree this file sits in (it goes first on ``sys.path``),
whatever sockcomp is installed. Everything comes from PyPI packages: no intersphinx, no network.
"""
from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))   # the sockcomp source tree
sys.path.insert(0, os.path.join(HERE, "_ext"))

import sockcomp  # noqa: E402

project = "sockcomp"
author = "the sockcomp authors"
copyright = "the sockcomp authors (MIT licence)"
release = sockcomp.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sockcomp_sphinx",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store"]

# Markdown guides (MyST): GitHub-style headings get anchors, so "#section" links resolve.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# API reference: members in source order, type hints in the signatures.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_default_options = {"show-inheritance": True}
# No napoleon: the docstrings are plain reStructuredText, and napoleon would read a property's
# "Milliseconds allowed: ..." as a type followed by a description.

# Nothing from the network: no intersphinx, no remote images.
html_theme = "furo"
html_title = f"sockcomp {release}"
html_static_path: list[str] = []
html_show_sourcelink = False

# Files outside docs/ that the manual includes as pages: Markdown links to them go to the page.
sockcomp_outside_docs = {"CHANGELOG.md": "changelog", "bench/README.md": "bench"}
