"""The operator commands that replace the seed's list_pods.sh and GraphQL stock query, run as the
user runs them (`python -m runpod_deploy.run gpus|pods`), against the emulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from runpod_provider.client import RunPodClient
from runpod_provider.wire import CreatePodRequest, GpuRequest

ROOT = Path(__file__).resolve().parents[2]


def run(emulator, *args: str) -> str:
    env = {**os.environ, "RUNPOD_API_URL": emulator.api_url, "RUNPOD_API_KEY": emulator.api_key}
    return subprocess.run([sys.executable, "-m", "runpod_deploy.run", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True, timeout=60).stdout


def test_gpus_shows_stock_in_the_data_center_for_the_preference_list(emulator):
    emulator.set_stock("EU-RO-1", "NVIDIA L40S", "NONE")
    out = run(emulator, "gpus", "--data-center", "EU-RO-1")
    rows = {line.split("  ")[0].strip(): line for line in out.splitlines()[1:]}
    assert list(rows) == ["NVIDIA L40S", "NVIDIA A100 80GB PCIe", "NVIDIA GeForce RTX 4090"]
    assert rows["NVIDIA L40S"].rstrip().endswith("NONE")
    assert rows["NVIDIA A100 80GB PCIe"].rstrip().endswith("HIGH")
    assert "1.39" in rows["NVIDIA A100 80GB PCIe"]


def test_pods_lists_only_this_stacks_pods_with_status_gpu_and_price(emulator):
    with RunPodClient(emulator.api_key, emulator.api_url) as c:
        for name in ("runpod-deploy-dev-olmocr-abc123", "someone-elses-pod"):
            c.create_pod(CreatePodRequest(name=name, image="img", gpu=GpuRequest(id="NVIDIA L40S", count=1),
                                          dataCenterIds=["EU-RO-1"]))
    out = run(emulator, "pods", "--stack", "dev")
    assert "runpod-deploy-dev-olmocr-abc123" in out and "NVIDIA L40S" in out and "0.86" in out
    assert "someone-elses-pod" not in out


def test_without_a_key_the_commands_say_how_to_set_one_and_create_no_stack(emulator, tmp_path):
    backend = tmp_path / "state"
    backend.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("RUNPOD_API_KEY", "PULUMI_ACCESS_TOKEN")}
    env.update(RUNPOD_API_URL=emulator.api_url, PULUMI_BACKEND_URL=f"file://{backend}",
               PULUMI_CONFIG_PASSPHRASE="x", PULUMI_HOME=str(tmp_path / "home"), STACK="nosuchstack",
               PATH=f"{ROOT / '.tools' / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    res = subprocess.run([sys.executable, "-m", "runpod_deploy.run", "gpus"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    assert "no RunPod key: export RUNPOD_API_KEY" in res.stderr
    assert not list(backend.rglob("*.json")), "a read-only command created a stack"
    assert not (ROOT / "Pulumi.nosuchstack.yaml").exists(), "a read-only command wrote a stack file"
