"""The whole idle-stop story through the real CLI: `pulumi up` deploys a model with idleStopMinutes;
the real startup script, playing that pod with the identity the emulator gives its container, stops
the pod when vLLM has been idle; `pulumi up` then starts the same pod again (warm start, no
replacement) and state and emulator agree."""

from __future__ import annotations

import time

import pytest

from tests.engine.harness import deploy, dev_models
from devkit.startup import STOPPED, Harness, Metrics


@pytest.fixture
def pod_script(tmp_path):
    (tmp_path / "pod").mkdir()
    harness = Harness(tmp_path / "pod")
    yield harness
    harness.cleanup()


def idle_stop_itself(emu, h: Harness, pod_id: str) -> None:
    """Run the real startup.sh as pod `pod_id` (its RUNPOD_* identity from the emulator) with a
    stand-in vLLM that serves no request, until it has stopped its own pod."""
    identity = {k: v for k, v in emu.container_env(pod_id).items() if k.startswith("RUNPOD_")}
    metrics = Metrics(h.tmp / "metrics.txt")
    run = h.start(settings={"idleStopMinutes": 1}, IDLE_STOP_MINUTE_S=1, IDLE_STOP_CHECK_S=0.2,
                  IDLE_STOP_API_URL=emu.api_url, STUB_METRICS=metrics.path, **identity)
    run.wait_for(STOPPED, timeout=30)
    assert next(p for p in emu.pods() if p["id"] == pod_id)["status"] == "EXITED"
    run.stop()


def one_model():
    models = dev_models()
    del models["qwen3vl"]
    models["olmocr"]["idleStopMinutes"] = 1
    return models


def check_woken(emu, d, pod_id: str) -> None:
    (res,) = d.resources()
    assert res["id"] == pod_id and res["outputs"]["status"] == "RUNNING" and res["outputs"]["running"] is True
    (pod,) = emu.pods()
    assert pod["id"] == pod_id and pod["status"] == "RUNNING"
    starts = [r for r in emu.requests if r["method"] == "POST" and r["path"] == f"/v2/pods/{pod_id}/action"]
    assert [r["status"] for r in starts] == [200, 200]  # the pod's own stop, then the wake's start
    creates = [r for r in emu.requests if (r["method"], r["path"]) == ("POST", "/v2/pods")]
    deletes = [r for r in emu.requests if r["method"] == "DELETE"]
    assert len(creates) == 1 and deletes == []  # the same pod, not a replacement


def test_a_pod_that_stopped_itself_is_started_again_by_up_with_refresh(engine_emulator, tmp_path, monkeypatch,
                                                                       pod_script):
    d = deploy(engine_emulator, tmp_path, monkeypatch, models=one_model())
    pod_id = d.up().outputs["olmocr_pod_id"].value
    idle_stop_itself(engine_emulator, pod_script, pod_id)

    d.up("--refresh")
    check_woken(engine_emulator, d, pod_id)


def test_a_pod_that_stopped_itself_is_started_again_by_a_plain_up(engine_emulator, tmp_path, monkeypatch, pod_script):
    d = deploy(engine_emulator, tmp_path, monkeypatch, models=one_model())
    pod_id = d.up().outputs["olmocr_pod_id"].value
    idle_stop_itself(engine_emulator, pod_script, pod_id)
    time.sleep(0.1)

    d.up()
    check_woken(engine_emulator, d, pod_id)
