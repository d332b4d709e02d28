"""Fixtures that drive the real Pulumi CLI through the Automation API on a throwaway file backend."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.engine.harness import ROOT, TOOLS


def _pulumi_available() -> bool:
    if TOOLS.is_dir():
        os.environ["PATH"] = f"{TOOLS}{os.pathsep}{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"
    return shutil.which("pulumi") is not None


@pytest.fixture(scope="session")
def pulumi_cli() -> str:
    if not _pulumi_available():
        pytest.fail("no `pulumi` CLI: run `bash scripts/setup.sh` (the README's `make test` does)")
    version = subprocess.run(["pulumi", "version"], capture_output=True, text=True, check=True).stdout.strip()
    return version


@pytest.fixture
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pulumi_cli: str) -> Path:
    """A private file:// backend and PULUMI_HOME per test: no login, no shared state between tests."""
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"file://{state}")
    monkeypatch.setenv("PULUMI_HOME", str(tmp_path / "pulumi-home"))
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "test-passphrase")
    monkeypatch.setenv("PULUMI_SKIP_UPDATE_CHECK", "true")
    monkeypatch.delenv("PULUMI_ACCESS_TOKEN", raising=False)
    return state



@pytest.fixture
def engine_emulator(backend):
    """An emulator with a realistic random key (so 'the key is absent from state' means something),
    and delays long enough that concurrency and readiness are observable."""
    import secrets

    from runpod_emulator import Emulator

    emu = Emulator(api_keys=("rpa_" + secrets.token_hex(16),), provision_delay=0.4, start_delay=0.3,
                   runtime_delay=0.3, ready_delay=0.4, log_interval=0.05).start()
    yield emu
    emu.stop()
