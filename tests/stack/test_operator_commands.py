"""The operator commands that replace the seed's list_pods.sh and GraphQL stock query, run as the
user runs them (`python -m runpod_deploy.run gpus|pods`), against the emulator, on a private backend."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devkit.cli import ROOT, isolated_env, search_path
from runpod_provider.client import RunPodClient
from runpod_provider.provider_errors import MISSING_API_KEY as MISSING_KEY
from runpod_provider.wire import CreatePodRequest, GpuRequest


@pytest.fixture
def sandbox(tmp_path: Path) -> dict[str, str]:
    """The environment of a user with no stack and no key: a private empty backend, the emulator's URL
    set by run(), RUNPOD_API_KEY unset."""
    env = {k: v for k, v in os.environ.items() if k not in ("RUNPOD_API_KEY", "PULUMI_ACCESS_TOKEN")}
    return {**env, **isolated_env(tmp_path), "PATH": search_path(env.get("PATH", ""))}


def run(emulator, env: dict[str, str], *args: str, key: str | None = None, check: bool = True):
    env = {**env, "RUNPOD_API_URL": emulator.api_url, **({"RUNPOD_API_KEY": key} if key else {})}
    return subprocess.run([sys.executable, "-m", "runpod_deploy.run", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=check, timeout=120)


def test_gpus_shows_stock_in_the_data_center_for_the_preference_list(emulator, sandbox):
    emulator.set_stock("EU-RO-1", "NVIDIA L40S", "NONE")
    out = run(emulator, sandbox, "gpus", "--data-center", "EU-RO-1", key=emulator.api_key).stdout
    rows = {line.split("  ")[0].strip(): line for line in out.splitlines()[1:]}
    assert list(rows) == ["NVIDIA L40S", "NVIDIA A100 80GB PCIe", "NVIDIA GeForce RTX 4090"]
    assert rows["NVIDIA L40S"].rstrip().endswith("NONE")
    assert rows["NVIDIA A100 80GB PCIe"].rstrip().endswith("HIGH")
    assert "1.39" in rows["NVIDIA A100 80GB PCIe"]


def test_pods_lists_only_this_stacks_pods_with_status_gpu_and_price(emulator, sandbox):
    with RunPodClient(emulator.api_key, emulator.api_url) as c:
        for name in ("runpod-deploy-dev-olmocr-abc123", "someone-elses-pod"):
            c.create_pod(CreatePodRequest(name=name, image="img", gpu=GpuRequest(id="NVIDIA L40S", count=1),
                                          dataCenterIds=["EU-RO-1"]))
    out = run(emulator, sandbox, "pods", "--stack", "dev", key=emulator.api_key).stdout
    assert "runpod-deploy-dev-olmocr-abc123" in out and "NVIDIA L40S" in out and "0.86" in out
    assert "someone-elses-pod" not in out


@pytest.mark.engine
def test_the_key_is_read_from_the_stack_named_by_stack(emulator, sandbox, tmp_path):
    """--stack picks the stack whose secret runpod:apiKey is used (read with `pulumi config get`)."""
    from devkit.cli import Project
    from devkit.program import checkout

    project = Project(checkout(tmp_path / "project"), env=sandbox)
    project.stack("team").set_config("runpod:apiKey", emulator.api_key, secret=True)
    project.stack("other")  # no key: were it used, the command would fail
    out = run(emulator, sandbox, "gpus", "--stack", "team", "--work-dir", str(project.path)).stdout
    assert "NVIDIA L40S" in out
    res = run(emulator, sandbox, "gpus", "--stack", "other", "--work-dir", str(project.path), check=False)
    assert res.returncode != 0 and MISSING_KEY in res.stderr


def test_without_a_key_the_commands_say_how_to_set_one_and_create_no_stack(emulator, sandbox):
    res = run(emulator, sandbox, "gpus", "--stack", "nosuchstack", check=False)
    assert res.returncode != 0
    assert MISSING_KEY in res.stderr and "pulumi config set --secret runpod:apiKey" in MISSING_KEY
    backend = Path(sandbox["PULUMI_BACKEND_URL"].removeprefix("file://"))
    assert not list(backend.rglob("*.json")), "a read-only command created a stack"
    assert not (ROOT / "Pulumi.nosuchstack.yaml").exists(), "a read-only command wrote a stack file"


@pytest.mark.engine
def test_gpus_shows_the_stacks_own_gpu_list_cloud_and_data_center(emulator, sandbox, tmp_path):
    """`make gpus` reads the stack's gpuTypes (and each model's), cloud and dataCenter, not fixed defaults."""
    from devkit.cli import Project
    from devkit.program import checkout

    project = Project(checkout(tmp_path / "project"), env=sandbox)
    team = project.stack("team")
    team.set_config("runpod:apiKey", emulator.api_key, secret=True)
    team.set_config("runpod-deploy:cloud", "COMMUNITY")
    team.set_config("runpod-deploy:gpuTypes", '["NVIDIA GeForce RTX 4090"]')
    out = run(emulator, sandbox, "gpus", "--stack", "team", "--work-dir", str(project.path)).stdout
    header, *rows = out.splitlines()
    assert "(COMMUNITY cloud)" in header and "stock in EU-RO-1" in header
    assert [r.split("  ")[0].strip() for r in rows][0] == "NVIDIA GeForce RTX 4090"
