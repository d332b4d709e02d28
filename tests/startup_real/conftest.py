"""Fixtures for tests/startup_real (the harness itself is devkit/startup_real.py).

Every test here is marked `realpkgs`: `pytest -m "not realpkgs"` skips the tier, `-m realpkgs` runs
only it. `make test` (and so CI) runs it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from devkit.startup_real import OLMOCR, RealHarness, stack_config, uv_installed_counts

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(str(item.fspath)).resolve().parent == HERE:
            item.add_marker(pytest.mark.realpkgs)


@pytest.fixture(scope="session")
def real(tmp_path_factory):
    """One WORKSPACE for the tier, on which the pod agent (its payload, as the pod runs it) did its
    cold start with the real packages.

    The cold start runs until Open WebUI is up (both venvs are installed on the container disk and
    archived on the volume, and the admin step created the preset admin in the fresh DATA_DIR); it is
    then stopped. vLLM's entry point is the stand-in (the real vLLM cannot serve without a GPU).
    `real.cold_output` is what it printed.
    """
    harness = RealHarness(tmp_path_factory.mktemp("realpkgs"))
    harness.seed_model(stack_config().models[OLMOCR].model_id)
    run = harness.start(OLMOCR)
    try:
        # Up, not just started: stopping inside the admin step could leave a half-migrated webui.db.
        run.wait_for(r"^runpod-deploy: Open WebUI is up on port", timeout=1800)
    finally:
        run.stop(timeout=120)
    harness.cold_output = run.output
    assert len(uv_installed_counts(run.output)) == 2, run.output[-4000:]
    harness.stand_in_vllm()
    yield harness
    harness.cleanup()
    shutil.rmtree(harness.tmp, ignore_errors=True)  # ~25 GB of venvs and archives; pytest keeps 3 runs
