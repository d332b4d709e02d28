"""Fixtures for driving the plain Pulumi CLI (devkit.cli) on a throwaway file backend."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from devkit.cli import LANGUAGE_HOST, search_path


@pytest.fixture(scope="session")
def pulumi_cli() -> str:
    """The CLI's version. Fails (never skips) without `pulumi` or without the Python language host
    beside it: without the host, `pulumi up` cannot run a Python program at all."""
    os.environ["PATH"] = search_path()
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        pytest.fail("no `pulumi` CLI: run `bash scripts/setup.sh` (the README's `make test` does)")
    if shutil.which(LANGUAGE_HOST) is None and not (Path(pulumi).resolve().parent / LANGUAGE_HOST).exists():
        pytest.fail(f"no {LANGUAGE_HOST} beside {pulumi}: `pulumi up` cannot run a Python program. "
                    "Run `bash scripts/setup.sh` (it builds the host next to a CLI built from the Go module proxy)")
    return subprocess.run(["pulumi", "version"], capture_output=True, text=True, check=True).stdout.strip()


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


TEAMMATE_POD = "runpod-deploy-teammate-olmocr-q7x2k9"  # another stack's pod, same RunPod account


@pytest.fixture
def teammate(engine_emulator) -> str:
    """A pod of another stack on the same account, created before the test: nothing may touch it."""
    from runpod_provider.client import RunPodClient
    from runpod_provider.wire import CreatePodRequest, GpuRequest

    emu = engine_emulator
    with RunPodClient(emu.api_key, emu.api_url) as c:
        pod = c.create_pod(CreatePodRequest(name=TEAMMATE_POD, image="runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404",
                                            gpu=GpuRequest(id="NVIDIA L40S", count=1), dataCenterIds=["EU-RO-1"]))
    return pod.id
