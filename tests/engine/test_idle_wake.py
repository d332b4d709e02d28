"""The whole idle-stop story through the real CLI: `pulumi up` deploys a model with idleStopMinutes; the
pod's idle watcher, playing that pod with the identity the emulator gives its container, stops it when
vLLM has been idle; `pulumi up` then starts the same pod again (warm start, no replacement) and state
and emulator agree. The emulator plays the pod-scoped key as seen live (403 on every /v2 path, GraphQL
podStop accepted for its own pod), so the pod stops itself through GraphQL.

The pod is played by the whole agent in devkit's sandbox, with stand-in vLLM whose /metrics
counters the test drives; idle.py's own paths are unit-tested in tests/startup/test_idle_agent.py.
"""

from __future__ import annotations

import pytest

from devkit.startup import Harness, Metrics, Run
from tests.engine.harness import deploy, dev_models

ACCEPTED = r"^runpod-deploy: idle stop: RunPod accepted the stop \(GraphQL podStop\)"
REFUSED = (r"^runpod-deploy error=idle stop refused \(v2 action: HTTP 403: access denied; GraphQL podStop: "
           r"HTTP 410: [^;]*; runpodctl: not on PATH\): the pod keeps serving and billing; asking again every 1 s")


@pytest.fixture
def pod_player(tmp_path):
    """play(emu, pod_id) -> Run: the pod's side (the agent), with its RUNPOD_* identity from the
    emulator and a stand-in vLLM that serves no request."""
    (tmp_path / "pod").mkdir()
    harness = Harness(tmp_path / "pod")
    metrics = Metrics(tmp_path / "pod" / "metrics.txt")

    def play(emu, pod_id: str) -> Run:
        identity = {k: v for k, v in emu.container_env(pod_id).items() if k.startswith("RUNPOD_")}
        knobs = dict(IDLE_STOP_MINUTE_S="1", IDLE_STOP_CHECK_S="0.2", IDLE_STOP_RETRY_S="1",
                     IDLE_STOP_API_URL=emu.api_url, IDLE_STOP_GRAPHQL_URL=f"{emu.base_url}/graphql")
        return harness.start(settings={"idleStopMinutes": 1}, STUB_METRICS=metrics.path, **knobs, **identity)

    yield play
    harness.cleanup()


def one_model():
    models = dev_models()
    del models["qwen3vl"]
    models["olmocr"]["idleStopMinutes"] = 1
    return models


def pod_status(emu, pod_id) -> str:
    return next(p for p in emu.pods() if p["id"] == pod_id)["status"]


def actions(emu, pod_id) -> list[int]:
    return [r["status"] for r in emu.requests if r["method"] == "POST" and r["path"] == f"/v2/pods/{pod_id}/action"]


def pod_stops(emu) -> list[tuple]:
    return [(c["pod_id"], c["key"], c["ok"]) for c in emu.graphql.calls() if c["operation"] == "podStop"]


def check_woken(emu, d, pod_id: str) -> None:
    (res,) = d.resources()
    assert res["id"] == pod_id and res["outputs"]["status"] == "RUNNING" and res["outputs"]["running"] is True
    (pod,) = emu.pods()
    assert pod["id"] == pod_id and pod["status"] == "RUNNING"
    # the pod's v2 try (refused), its GraphQL stop, then the wake's start through v2
    assert actions(emu, pod_id) == [403, 200] and pod_stops(emu) == [(pod_id, "pod", True)]
    creates = [r for r in emu.requests if (r["method"], r["path"]) == ("POST", "/v2/pods")]
    deletes = [r for r in emu.requests if r["method"] == "DELETE"]
    assert len(creates) == 1 and deletes == []  # the same pod, not a replacement


@pytest.mark.parametrize("up_args", [(), ("--refresh",)], ids=["plain-up", "up-refresh"])
def test_a_pod_that_stopped_itself_is_started_again_by_up(engine_emulator, tmp_path, monkeypatch, pod_player,
                                                          up_args):
    d = deploy(engine_emulator, tmp_path, monkeypatch, models=one_model())
    pod_id = d.up().outputs["olmocr_pod_id"].value
    run = pod_player(engine_emulator, pod_id)
    run.wait_for(ACCEPTED, timeout=30)
    assert pod_status(engine_emulator, pod_id) == "EXITED"
    assert engine_emulator.container_env(pod_id)["RUNPOD_API_KEY"] not in run.output
    run.stop()

    d.up(*up_args)
    check_woken(engine_emulator, d, pod_id)


def test_with_every_path_refused_the_pod_logs_keeps_serving_and_asks_again(engine_emulator, tmp_path, monkeypatch,
                                                                          pod_player):
    # RunPod's GraphQL retired ("early 2027", runpod/docs release-notes.mdx): 410 on every call; v2
    # refuses the pod key; no runpodctl. Nothing stops the pod.
    engine_emulator.inject(kind="status", status=410, path="^/graphql$", count=None, detail="GraphQL is retired")
    d = deploy(engine_emulator, tmp_path, monkeypatch, models=one_model())
    pod_id = d.up().outputs["olmocr_pod_id"].value
    run = pod_player(engine_emulator, pod_id)
    run.wait_for(REFUSED, timeout=30)
    run.wait_for(rf"^runpod-deploy: idle stop: still no request: asking RunPod again to stop pod {pod_id} "
                 r"\(attempt 2\)$", timeout=15)
    run.wait_for(REFUSED, count=2, timeout=15)
    assert run.proc.poll() is None  # the pod keeps serving
    assert pod_status(engine_emulator, pod_id) == "RUNNING"
    graphql_calls = [r for r in engine_emulator.requests if r["path"] == "/graphql"]
    assert len(graphql_calls) >= 2 and {r["status"] for r in graphql_calls} == {410}
    assert set(actions(engine_emulator, pod_id)) == {403}  # only the pod's refused tries
    assert engine_emulator.container_env(pod_id)["RUNPOD_API_KEY"] not in run.output

    d.up()  # the program sees a running pod: nothing to wake, nothing replaced
    (res,) = d.resources()
    assert res["id"] == pod_id and res["outputs"]["running"] is True
    assert set(actions(engine_emulator, pod_id)) == {403}
