"""The Pod resource's lifecycle through the real engine: GPU fallback, readiness, replace vs update."""

from __future__ import annotations

import pytest

from devkit.cli import CommandError
from devkit.program import own_copy
from tests.engine.harness import deploy, dev_models


def one_model(**overrides) -> dict:
    m = dev_models()["olmocr"]
    m.update(overrides)
    return {"olmocr": m}


def only_pod(d) -> dict:
    [r] = d.resources()
    return r


def test_falls_back_to_a100_when_l40s_has_no_stock(engine_emulator, tmp_path, monkeypatch):
    engine_emulator.set_stock("EU-RO-1", "NVIDIA L40S", "NONE")
    d = deploy(engine_emulator, tmp_path, monkeypatch, models=one_model())
    up = d.up()
    assert up.outputs["olmocr_gpu_type"].value == "NVIDIA A100 80GB PCIe"
    [pod] = engine_emulator.pods()
    assert pod["gpu"]["id"] == "NVIDIA A100 80GB PCIe"


def test_falls_back_when_the_catalog_says_yes_but_create_says_no_capacity(engine_emulator, tmp_path, monkeypatch):
    # Catalog stock is advisory: a capacity 400 on create moves on to the next GPU type.
    engine_emulator.inject(method="POST", path="/v2/pods", kind="status", status=400, count=1,
                           detail="There are no longer any instances available with the requested specifications. "
                                  "Please refresh and try again.")
    d = deploy(engine_emulator, tmp_path, monkeypatch, models=one_model())
    up = d.up()
    assert up.outputs["olmocr_gpu_type"].value == "NVIDIA A100 80GB PCIe"
    assert len(engine_emulator.pods()) == 1


def test_no_capacity_anywhere_names_every_candidate_and_creates_nothing(engine_emulator, tmp_path, monkeypatch):
    for gpu in ("NVIDIA L40S", "NVIDIA A100 80GB PCIe", "NVIDIA GeForce RTX 4090"):
        engine_emulator.set_stock("EU-RO-1", gpu, "NONE")
    d = deploy(engine_emulator, tmp_path, monkeypatch, models=one_model())
    with pytest.raises(CommandError) as e:
        d.up()
    msg = str(e.value)
    for gpu in ("NVIDIA L40S", "NVIDIA A100 80GB PCIe", "NVIDIA GeForce RTX 4090"):
        # Every type was still asked (stock is a hint), and the error names each answer.
        assert f"{gpu}: 400 There are no longer any instances available" in msg
        assert f"{gpu}: 400" in msg and "(catalog stock: NONE)" in msg
    assert engine_emulator.pods() == []


# A pod that never serves: tests/engine/test_faults.py (deleted, last logs in the error, next up succeeds).


def test_a_changed_pod_agent_updates_the_pod_in_place(engine_emulator, tmp_path, monkeypatch):
    d = deploy(engine_emulator, tmp_path, monkeypatch, models=one_model())
    d.up()
    pod_id = only_pod(d)["id"]
    old_b64 = engine_emulator.pods()[0]["env"]["STARTUP_B64"]
    # A new version of the pod agent, edited in the checkout the way a user edits it before `pulumi up`.
    agent = own_copy(d.work_dir, "startup") / "agent" / "main.py"
    agent.write_text(agent.read_text() + "\n# v2 of the agent\n")
    up = d.up()
    assert up.changes.get("update") == 1
    assert up.changes.get("replace", 0) == 0
    [pod] = engine_emulator.pods()
    assert pod["id"] == pod_id and pod["env"]["STARTUP_B64"] != old_b64
    assert "VLLM_API_KEY" in pod["env"]  # PATCH replaces the whole env: the secrets were resent
    assert ("PATCH", f"/v2/pods/{pod_id}") in [(r["method"], r["path"]) for r in engine_emulator.requests]


def test_changed_vllm_args_update_the_pod_in_place(engine_emulator, tmp_path, monkeypatch):
    d = deploy(engine_emulator, tmp_path, monkeypatch, models=one_model())
    d.up()
    pod_id = only_pod(d)["id"]
    d.write_config({**d.config, "models": one_model(vllmArgs=["--enforce-eager"])})
    up = d.up()
    assert up.changes.get("update") == 1
    [pod] = engine_emulator.pods()
    assert pod["id"] == pod_id and pod["env"]["VLLM_EXTRA_ARGS_JSON"] == '["--enforce-eager"]'


def test_a_changed_gpu_list_replaces_the_pod(engine_emulator, tmp_path, monkeypatch):
    d = deploy(engine_emulator, tmp_path, monkeypatch, models=one_model())
    d.up()
    old_id = only_pod(d)["id"]
    d.write_config({**d.config, "gpuTypes": ["NVIDIA A100 80GB PCIe"]})
    up = d.up()
    assert up.changes.get("replace") == 1
    [pod] = engine_emulator.pods()
    assert pod["id"] != old_id and pod["gpu"]["id"] == "NVIDIA A100 80GB PCIe"
    assert only_pod(d)["id"] == pod["id"]


def test_keys_stay_the_same_across_ups(engine_emulator, tmp_path, monkeypatch):
    d = deploy(engine_emulator, tmp_path, monkeypatch, models=one_model())
    first = d.up().outputs["olmocr_api_key"].value
    d.write_config({**d.config, "models": one_model(vllmArgs=["--enforce-eager"])})
    second = d.up().outputs["olmocr_api_key"].value
    assert first == second and len(first) >= 32


def test_a_user_set_key_replaces_the_generated_one(engine_emulator, tmp_path, monkeypatch):
    d = deploy(engine_emulator, tmp_path, monkeypatch, models=one_model())
    d.set_config("runpod-deploy:modelSecrets.olmocr.apiKey", "my-own-key-123", secret=True, path=True)
    up = d.up()
    assert up.outputs["olmocr_api_key"].value == "my-own-key-123"
    assert engine_emulator.pods()[0]["env"]["VLLM_API_KEY"] == "my-own-key-123"


# A start refused for a taken GPU: tests/engine/test_lifecycle.py (with `wakeWithoutGpu: fail`; the
# default replaces the pod: tests/engine/test_live3.py).
