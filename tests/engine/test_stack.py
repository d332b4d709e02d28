"""The whole program, end to end: real Pulumi CLI and engine, file backend, RunPod emulator."""

from __future__ import annotations

import json
import re

import pytest

from devkit.cli import CommandError, Project
from tests.engine.harness import ROOT, deploy, dev_models

CONSUMER_PROGRAM = """\
import pulumi

ref = pulumi.StackReference(pulumi.Config().require("producer"))
pulumi.export("ocr_api", ref.get_output("models").apply(lambda m: m["olmocr"]["api_url"]))
"""

MUTATING = ("POST", "PATCH", "DELETE")
API_URL = re.compile(r"^https://[a-z0-9]{14}-8000\.proxy\.runpod\.net/v1$")
WEBUI_URL = re.compile(r"^https://[a-z0-9]{14}-3000\.proxy\.runpod\.net$")


def mutations(emu, since: int = 0) -> list[tuple[str, str]]:
    return [(r["method"], r["path"]) for r in emu.requests[since:] if r["method"] in MUTATING]


def pod_ids(d) -> dict[str, str]:
    return {r["urn"].rsplit("::", 1)[1]: r["id"] for r in d.resources()}


def test_preview_creates_nothing(engine_emulator, tmp_path, monkeypatch):
    d = deploy(engine_emulator, tmp_path, monkeypatch)
    preview = d.preview()
    assert preview.changes.get("create", 0) >= 2 + 6  # 2 pods, 6 generated secrets, components
    assert mutations(engine_emulator) == []
    assert engine_emulator.pods() == []


def test_up_creates_both_pods_concurrently_and_outputs_the_proxy_urls(engine_emulator, tmp_path, monkeypatch):
    d = deploy(engine_emulator, tmp_path, monkeypatch)
    up = d.up()
    out = {k: v.value for k, v in up.outputs.items()}
    for model in ("olmocr", "qwen3vl"):
        assert API_URL.match(out[f"{model}_api_url"]), out[f"{model}_api_url"]
        assert WEBUI_URL.match(out[f"{model}_webui_url"])
        pod_id = out[f"{model}_pod_id"]
        assert out[f"{model}_api_url"] == f"https://{pod_id}-8000.proxy.runpod.net/v1"
        assert out[f"{model}_gpu_type"] == "NVIDIA L40S"
        assert out[f"{model}_cost_per_hr"] > 0
        assert up.outputs[f"{model}_api_key"].secret
    assert out["models"]["qwen3vl"]["served_model_name"] == "qwen3-vl"
    pods = engine_emulator.pods()
    assert sorted(p["id"] for p in pods) == sorted(out[f"{m}_pod_id"] for m in ("olmocr", "qwen3vl"))
    # Concurrency: the second create is sent before the first pod could possibly be ready.
    creates = [r["ts"] for r in engine_emulator.requests if r["method"] == "POST" and r["path"] == "/v2/pods"]
    assert len(creates) == 2
    one_pod_ready_s = 0.4 + 0.3 + 0.3 + 0.4
    assert abs(creates[1] - creates[0]) < one_pod_ready_s
    # The pod got what the startup script needs, with the start command as one shell-quoted string.
    pod = next(p for p in pods if p["id"] == out["olmocr_pod_id"])
    assert pod["env"]["SERVED_MODEL_NAME"] == "olmocr" and "STARTUP_B64" in pod["env"]
    assert pod["mounts"]["network"] == [{"volumeId": "fuzzvol01eu", "path": "/workspace"}]
    assert sorted(pod["ports"]) == ["22/tcp", "3000/http", "8000/http"]
    assert pod["dataCenterId"] == "EU-RO-1" and pod["cloud"] == "SECURE"


def test_other_stacks_read_the_urls_through_a_stack_reference(engine_emulator, tmp_path, monkeypatch):
    d = deploy(engine_emulator, tmp_path, monkeypatch)
    up = d.up()

    # A second project, as another team would write it: its own Pulumi.yaml and __main__.py, run by
    # the plain CLI on the same backend.
    other_dir = tmp_path / "consumer"
    other_dir.mkdir()
    (other_dir / "Pulumi.yaml").write_text(
        f"name: consumer\nruntime:\n  name: python\n  options:\n    virtualenv: {ROOT / '.venv'}\n")
    (other_dir / "__main__.py").write_text(CONSUMER_PROGRAM)
    other = Project(other_dir).stack("consumer")
    other.set_config("consumer:producer", f"organization/runpod-deploy/{d.name}")
    res = other.up()
    assert f"read pulumi:pulumi:StackReference organization/runpod-deploy/{d.name}" in res.stdout
    assert res.outputs["ocr_api"].value == up.outputs["olmocr_api_url"].value


def test_a_second_up_changes_nothing_and_calls_nothing_mutating(engine_emulator, tmp_path, monkeypatch):
    d = deploy(engine_emulator, tmp_path, monkeypatch)
    d.up()
    before = len(engine_emulator.requests)
    again = d.up()
    assert set(again.changes) == {"same"}, again.changes
    assert mutations(engine_emulator, before) == []
    gets = [r["path"] for r in engine_emulator.requests[before:] if r["method"] == "GET"]
    pod_reads = [p for p in gets if p.startswith("/v2/pods/")]
    # The refresh before the update reads each pod once (Pulumi.yaml `refresh: always`); the config
    # checks read the catalog and the volume.
    assert sorted(pod_reads) == sorted(f"/v2/pods/{i}" for i in pod_ids(d).values()), gets
    assert len(gets) - len(pod_reads) <= 2, gets


def test_refresh_drops_a_pod_deleted_outside_pulumi_and_up_recreates_it(engine_emulator, tmp_path, monkeypatch):
    d = deploy(engine_emulator, tmp_path, monkeypatch)
    d.up()
    gone = pod_ids(d)["olmocr"]
    engine_emulator.delete_pod_out_of_band(gone)
    d.refresh()
    assert set(pod_ids(d)) == {"qwen3vl"}
    d.up()
    ids = pod_ids(d)
    assert set(ids) == {"olmocr", "qwen3vl"} and ids["olmocr"] != gone
    assert sorted(p["id"] for p in engine_emulator.pods()) == sorted(ids.values())


def test_running_false_stops_the_pod_and_true_starts_it_again(engine_emulator, tmp_path, monkeypatch):
    d = deploy(engine_emulator, tmp_path, monkeypatch)
    d.up()
    pod_id = pod_ids(d)["olmocr"]
    models = dev_models()
    models["olmocr"]["running"] = False
    d.write_config({**d.config, "models": models})
    d.up()
    pod = next(p for p in engine_emulator.pods() if p["id"] == pod_id)
    assert pod["status"] == "EXITED"
    assert ("POST", f"/v2/pods/{pod_id}/action") in mutations(engine_emulator)
    models["olmocr"]["running"] = True
    d.write_config({**d.config, "models": models})
    d.up()
    pod = next(p for p in engine_emulator.pods() if p["id"] == pod_id)
    assert pod["status"] == "RUNNING" and pod_ids(d)["olmocr"] == pod_id


def test_destroy_leaves_no_pod(engine_emulator, tmp_path, monkeypatch):
    d = deploy(engine_emulator, tmp_path, monkeypatch)
    d.up()
    assert len(engine_emulator.pods()) == 2
    d.destroy()
    assert engine_emulator.pods() == []
    assert d.resources() == []


def test_no_secret_in_state_or_cli_output(engine_emulator, tmp_path, monkeypatch):
    hf_token = "hf_" + "x7" * 17
    d = deploy(engine_emulator, tmp_path, monkeypatch, hf_token=hf_token)
    up = d.up()
    refresh = d.refresh()
    pod = engine_emulator.pods()[0]
    secrets = {
        "RunPod key": engine_emulator.api_key,
        "HF token": hf_token,
        "vLLM key": pod["env"]["VLLM_API_KEY"],
        "admin password": pod["env"]["WEBUI_ADMIN_PASSWORD"],
        "WebUI secret key": pod["env"]["WEBUI_SECRET_KEY"],
    }
    assert pod["env"]["HF_TOKEN"] == hf_token  # the pod needs it: the one place it may appear
    state = d.state_text()
    texts = {"state": state, "up output": up.stdout + up.stderr, "refresh output": refresh.stdout + refresh.stderr,
             "stack file": (d.work_dir / f"Pulumi.{d.name}.yaml").read_text()}
    # Absent in clear, yet stored: decrypting the state (--show-secrets) does find them.
    decrypted = json.dumps(d.export(show_secrets=True)["deployment"])
    assert secrets["vLLM key"] in decrypted and secrets["RunPod key"] in decrypted
    destroy = d.destroy()
    texts["destroy output"] = destroy.stdout + destroy.stderr
    for what, secret in secrets.items():
        for where, text in texts.items():
            assert secret not in text, f"{what} in plain text in the {where}"
    # ...and the state does hold them, encrypted: the secret outputs are there, as ciphertext.
    assert '"4dabf18193072939515e22adb298388d"' in state


def test_the_seeds_env_keys_stand_in_for_unset_config(engine_emulator, tmp_path, monkeypatch):
    d = deploy(engine_emulator, tmp_path, monkeypatch, set_key=False)
    d.write_config({"models": dev_models()})  # no dataCenter, no networkVolumeId, no key in the stack
    for k, v in {"RUNPOD_API_KEY": engine_emulator.api_key, "NETWORK_VOLUME_ID": "fuzzvol01eu",
                 "PREFERRED_DATACENTER": "EU-RO-1"}.items():
        monkeypatch.setenv(k, v)
    preview = d.preview()
    assert preview.changes.get("create", 0) >= 2
    # and a wrong PREFERRED_DATACENTER is really read: the volume check now refuses it
    monkeypatch.setenv("PREFERRED_DATACENTER", "US-TX-3")
    with pytest.raises(CommandError) as e:
        d.preview()
    assert "not in dataCenter US-TX-3" in str(e.value)
