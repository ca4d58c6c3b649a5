"""Shared fixtures: headless Qt, a capturing exception hook, event recording."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

import sockcomp  # noqa: E402


@pytest.fixture
def hook():
    """Replace the application exception hook; yields the list of exceptions it received."""
    caught: list[BaseException] = []
    previous = sockcomp.SetExceptionHook(caught.append)
    yield caught
    sockcomp.SetExceptionHook(previous)
