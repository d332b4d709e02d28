"""Deploy: the team's whole flow on Pulumi.dev.yaml, through the plain `pulumi` CLI against the
emulator: preview, up, the outputs other stacks read, a no-op up, destroy."""

from __future__ import annotations

import re

from devkit.cli import Project
from tests.engine.harness import POD_PATH, ROOT, assert_no_orphans, deploy, mutations
from tests.engine.reliability import record

SECTION = "deploy"
CONSUMER_PROGRAM = """\
import pulumi

ref = pulumi.StackReference(pulumi.Config().require("producer"))
pulumi.export("ocr_api", ref.get_output("models").apply(lambda m: m["olmocr"]["api_url"]))
"""
API_URL = re.compile(r"^https://[a-z0-9]{14}-8000\.proxy\.runpod\.net/v1$")
WEBUI_URL = re.compile(r"^https://[a-z0-9]{14}-3000\.proxy\.runpod\.net$")
MODELS = ("olmocr", "qwen3vl")


def pod_ids(d) -> dict[str, str]:
    return {r["urn"].rsplit("::", 1)[1]: r["id"] for r in d.resources()}


def consumer(tmp_path):
    """A second project, as another team would write it: its own Pulumi.yaml and __main__.py, run by
    the plain CLI on the same backend."""
    work = tmp_path / "consumer"
    work.mkdir()
    (work / "Pulumi.yaml").write_text(
        f"name: consumer\nruntime:\n  name: python\n  options:\n    virtualenv: {ROOT / '.venv'}\n")
    (work / "__main__.py").write_text(CONSUMER_PROGRAM)
    return Project(work).stack("consumer")


def test_preview_up_read_by_another_stack_no_op_up_and_destroy(engine_emulator, tmp_path, monkeypatch):
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch)  # both models of Pulumi.dev.yaml

    # preview creates nothing
    preview = d.preview()
    assert preview.changes.get("create", 0) >= 2 + 6  # 2 pods, 6 generated secrets, components
    assert mutations(emu) == [] and emu.pods() == []

    # up: both pods created concurrently, outputs are the proxy URLs
    up = d.up()
    out = {k: v.value for k, v in up.outputs.items()}
    for model in MODELS:
        pod_id = out[f"{model}_pod_id"]
        assert API_URL.match(out[f"{model}_api_url"]) and WEBUI_URL.match(out[f"{model}_webui_url"])
        assert out[f"{model}_api_url"] == f"https://{pod_id}-8000.proxy.runpod.net/v1"
        assert out[f"{model}_webui_url"] == f"https://{pod_id}-3000.proxy.runpod.net"
        assert out[f"{model}_gpu_type"] == "NVIDIA L40S" and out[f"{model}_cost_per_hr"] > 0
        assert up.outputs[f"{model}_api_key"].secret
    assert out["models"]["qwen3vl"]["served_model_name"] == "qwen3-vl"
    pods = emu.pods()
    assert sorted(p["id"] for p in pods) == sorted(out[f"{m}_pod_id"] for m in MODELS) == sorted(pod_ids(d).values())
    creates = [r["ts"] for r in emu.requests if r["method"] == "POST" and r["path"] == "/v2/pods"]
    assert len(creates) == 2
    one_pod_ready_s = 0.4 + 0.3 + 0.3 + 0.4  # the engine_emulator's delays
    assert abs(creates[1] - creates[0]) < one_pod_ready_s  # the second create did not wait for the first pod
    pod = next(p for p in pods if p["id"] == out["olmocr_pod_id"])
    assert pod["env"]["SERVED_MODEL_NAME"] == "olmocr" and "STARTUP_B64" in pod["env"]
    assert pod["mounts"]["network"] == [{"volumeId": "fuzzvol01eu", "path": "/workspace"}]
    assert sorted(pod["ports"]) == ["22/tcp", "3000/http", "8000/http"]
    assert pod["dataCenterId"] == "EU-RO-1" and pod["cloud"] == "SECURE"

    # another stack reads the URLs through a StackReference
    other = consumer(tmp_path)
    other.set_config("consumer:producer", f"organization/runpod-deploy/{d.name}")
    res = other.up()
    assert f"read pulumi:pulumi:StackReference organization/runpod-deploy/{d.name}" in res.stdout
    assert res.outputs["ocr_api"].value == out["olmocr_api_url"]

    # a second up changes nothing and calls nothing mutating: one GET per pod (refresh first)
    since = len(emu.requests)
    again = d.up()
    assert set(again.changes) == {"same"}, again.changes
    assert mutations(emu, since) == []
    gets = [r["path"] for r in emu.requests[since:] if r["method"] == "GET"]
    reads = [p.rsplit("/", 1)[1] for p in gets if re.fullmatch(POD_PATH, p)]
    assert sorted(reads) == sorted(pod_ids(d).values()), gets
    assert len(gets) - len(reads) <= 2, gets  # the config checks: the catalog and the volume
    n_up = assert_no_orphans(d, emu)

    # destroy leaves no pod and an empty state
    d.destroy()
    assert emu.pods() == [] and d.resources() == []
    record(SECTION, "the team's flow on Pulumi.dev.yaml: preview, up (2 models), a StackReference from another "
           "project, a second up, destroy",
           "preview sent no create; up created both pods concurrently and output their proxy URLs, which the "
           f"other project read; the second up made {len(reads)} pod reads and no create/update/delete; destroy "
           "left no pod", n_up + assert_no_orphans(d, emu))
