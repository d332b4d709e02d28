"""Fixtures for tests/startup (the harness itself is devkit/startup.py)."""

from __future__ import annotations

import pytest

from devkit.startup import Harness


@pytest.fixture
def h(tmp_path):
    """A temp WORKSPACE, stubs on PATH, and helpers to start the real script and read stub calls."""
    harness = Harness(tmp_path)
    yield harness
    harness.cleanup()
