"""Wake: stopping and starting pods. A model's `running: false` stops its pod; a pod that stopped
itself (idle stop) or was stopped in the console is started again by a plain `pulumi up` (the
same pod, warm), waiting through RunPod's lingering EXITED; a wake onto a host whose GPU was
rented meanwhile replaces the pod (`wakeWithoutGpu: replace`, the default) or fails and says how
(`fail`). Through the plain `pulumi` CLI against the emulator.

The idle story is played by the whole pod agent in devkit's sandbox, with a stand-in vLLM whose
/metrics counters the test drives; idle.py's own paths are unit-tested in tests/startup/. The
emulator plays the pod-scoped key as seen live (403 on every /v2 path, GraphQL podStop accepted for
its own pod), so the pod stops itself through GraphQL.
"""

from __future__ import annotations

import pytest

from devkit.cli import CommandError
from devkit.startup import Harness, Metrics, Run
from tests.engine.harness import (
    assert_no_orphans,
    deploy,
    dev_models,
    fired,
    health_now,
    mutations,
    one_model,
    pod_id_in_state,
    pod_of,
)
from tests.engine.reliability import record

SECTION = "wake"
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


def idle_model():
    models = dev_models()
    del models["qwen3vl"]
    models["olmocr"]["idleStopMinutes"] = 1
    return models


def actions(emu, pod_id) -> list[int]:
    return [r["status"] for r in emu.requests if r["method"] == "POST" and r["path"] == f"/v2/pods/{pod_id}/action"]


def pod_stops(emu) -> list[tuple]:
    return [(c["pod_id"], c["key"], c["ok"]) for c in emu.graphql.calls() if c["operation"] == "podStop"]


def test_a_pod_that_stopped_itself_is_started_again_by_a_plain_up(engine_emulator, tmp_path, monkeypatch,
                                                                   pod_player):
    emu = engine_emulator
    emu.world.reset_lag = 2.0  # after the start the pod reads EXITED for 2 s, as live
    d = deploy(emu, tmp_path, monkeypatch, models=idle_model())
    pod_id = d.up().outputs["olmocr_pod_id"].value
    run = pod_player(emu, pod_id)
    run.wait_for(ACCEPTED, timeout=30)
    assert next(p for p in emu.pods() if p["id"] == pod_id)["status"] == "EXITED"
    assert emu.container_env(pod_id)["RUNPOD_API_KEY"] not in run.output
    run.stop()

    d.refresh()
    [r] = d.resources()
    assert r["id"] == pod_id and r["outputs"]["running"] is False and r["outputs"]["status"] == "EXITED"
    since = len(emu.requests)
    up = d.up()
    assert up.changes.get("update") == 1 and "create" not in up.changes and "replace" not in up.changes
    assert [(m, p) for m, p, _ in mutations(emu, since)] == [("POST", f"/v2/pods/{pod_id}/action")]
    assert health_now(emu, pod_id) == 200 and up.outputs["olmocr_pod_id"].value == pod_id
    [r] = d.resources()
    assert r["id"] == pod_id and r["outputs"]["status"] == "RUNNING" and r["outputs"]["running"] is True
    [pod] = emu.pods()
    assert pod["id"] == pod_id and pod["status"] == "RUNNING"
    # the pod's v2 try (refused), its GraphQL stop, then the wake's start through v2
    assert actions(emu, pod_id) == [403, 200] and pod_stops(emu) == [(pod_id, "pod", True)]
    creates = [r for r in emu.requests if (r["method"], r["path"]) == ("POST", "/v2/pods")]
    assert len(creates) == 1 and [r for r in emu.requests if r["method"] == "DELETE"] == []
    n = assert_no_orphans(d, emu)
    record(SECTION, "the pod stopped itself (idle stop: the agent, refused by v2, stopped it through GraphQL) while "
           "the config says running; `refresh`, then a plain `pulumi up`",
           "refresh recorded it stopped (running: false, EXITED); `up` started the same pod (one start call; it read "
           "EXITED for 2 s after) and waited until it served; no create, no delete", n)


def test_with_every_stop_path_refused_the_pod_logs_keeps_serving_and_asks_again(engine_emulator, tmp_path,
                                                                               monkeypatch, pod_player):
    # RunPod's GraphQL retired ("early 2027", runpod/docs release-notes.mdx): 410 on every call; v2
    # refuses the pod key; no runpodctl. Nothing stops the pod.
    emu = engine_emulator
    emu.inject(kind="status", status=410, path="^/graphql$", count=None, detail="GraphQL is retired")
    d = deploy(emu, tmp_path, monkeypatch, models=idle_model())
    pod_id = d.up().outputs["olmocr_pod_id"].value
    run = pod_player(emu, pod_id)
    run.wait_for(REFUSED, timeout=30)
    run.wait_for(rf"^runpod-deploy: idle stop: still no request: asking RunPod again to stop pod {pod_id} "
                 r"\(attempt 2\)$", timeout=15)
    run.wait_for(REFUSED, count=2, timeout=15)
    assert run.proc.poll() is None  # the pod keeps serving
    assert next(p for p in emu.pods() if p["id"] == pod_id)["status"] == "RUNNING"
    graphql_calls = [r for r in emu.requests if r["path"] == "/graphql"]
    assert len(graphql_calls) >= 2 and {r["status"] for r in graphql_calls} == {410}
    assert set(actions(emu, pod_id)) == {403}  # only the pod's refused tries
    assert emu.container_env(pod_id)["RUNPOD_API_KEY"] not in run.output

    d.up()  # the program sees a running pod: nothing to wake, nothing replaced
    (res,) = d.resources()
    assert res["id"] == pod_id and res["outputs"]["running"] is True
    assert set(actions(emu, pod_id)) == {403}
    n = assert_no_orphans(d, emu)
    record(SECTION, "idle stop with every path refused (v2 403 for the pod key, GraphQL 410, no runpodctl)",
           "the agent logged the refusal as an error line, kept serving and asked again every retry period; "
           "`up` saw a running pod and changed nothing", n)


def test_running_false_stops_the_pod_and_true_starts_it_even_when_the_start_answers_500(engine_emulator, tmp_path,
                                                                                        monkeypatch):
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    d.up()
    pod_id = pod_id_in_state(d)
    d.write_config({**d.config, "models": one_model(running=False)})
    since = len(emu.requests)
    d.up()
    [pod] = emu.pods()
    assert pod["id"] == pod_id and pod["status"] == "EXITED"
    assert [(m, p) for m, p, _ in mutations(emu, since)] == [("POST", f"/v2/pods/{pod_id}/action")]
    d.write_config({**d.config, "models": one_model(running=True)})
    emu.inject(kind="after_effect", status=500, method="POST", path=f"/v2/pods/{pod_id}/action")
    up = d.up()
    fired(emu)
    [pod] = emu.pods()
    assert pod["id"] == pod_id and pod["status"] == "RUNNING" and health_now(emu, pod_id) == 200
    [r] = d.resources()
    assert r["id"] == pod_id and r["outputs"]["running"] is True
    assert "answered 500, but the pod is" in up.stdout and "Traceback" not in up.stdout
    n = assert_no_orphans(d, emu)
    record(SECTION, "a model's `running: false`, then `running: true` with the start answered 500 after it took "
           "effect", "the first `up` stopped the pod (one action call); the second read the pod after the 500, saw "
           "it starting and waited for it: same pod, running, in state (no 'replace the pod')", n)


def test_a_wake_onto_a_full_host_replaces_the_pod(engine_emulator, tmp_path, monkeypatch):
    """Twice: the start refused (400 "not enough free GPUs on the host machine"), then a start
    answered 200 whose pod comes up with `gpu.count: 0` (vLLM would crash-loop)."""
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    d.up()
    for how in ("refused", "zero GPUs"):
        old = pod_of(d)
        emu.stop_pod_out_of_band(old, reason="runpod-deploy: idle stop")
        if how == "refused":
            emu.inject(kind="no_gpu_on_start")
        else:
            emu.world.zero_gpu_start = True
        since = len(emu.requests)
        up = d.up()
        emu.world.zero_gpu_start = False
        fired(emu)
        new = pod_of(d)
        assert new != old and up.outputs["olmocr_pod_id"].value == new, how
        assert new in up.outputs["olmocr_api_url"].value and new in up.outputs["olmocr_webui_url"].value
        assert f"pod {old} cannot wake on its host" in up.stdout
        [pod] = emu.pods()
        assert pod["id"] == new and pod["status"] == "RUNNING" and health_now(emu, new) == 200
        calls = mutations(emu, since)
        created = next(i for i, c in enumerate(calls) if c[:2] == ("POST", "/v2/pods"))
        deleted = next(i for i, c in enumerate(calls) if c[:2] == ("DELETE", f"/v2/pods/{old}"))
        assert created < deleted, how  # the old pod goes only once the new one serves
        assert_no_orphans(d, emu)
    again = d.up()
    assert set(again.changes) == {"same"}, again.changes
    n = assert_no_orphans(d, emu)
    d.destroy()
    assert emu.pods() == [] and d.resources() == []
    record(SECTION, "wake onto a host whose GPU was rented: the start refused (400 \"not enough free GPUs on the host "
           "machine\"); later the start answered 200 but the pod up with `gpu.count: 0`",
           "each time `up` said so in one line and replaced the pod: a new one through the GPU walk (same volume), "
           "the old one deleted once the new one served; outputs show the new id and URLs; a further `up` changed "
           "nothing and `destroy` deleted the pod", n)


def test_with_wake_without_gpu_fail_the_pod_is_kept_and_the_error_says_how_to_replace_it(engine_emulator, tmp_path,
                                                                                         monkeypatch):
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch, models=one_model(wakeWithoutGpu="fail"))
    d.up()
    pod_id = pod_id_in_state(d)
    emu.stop_pod_out_of_band(pod_id)
    emu.inject(kind="no_gpu_on_start")
    with pytest.raises(CommandError) as e:
        d.up()
    fired(emu)
    msg = str(e.value)
    assert f"RunPod refused to start pod {pod_id}" in msg and "not enough free GPUs" in msg
    assert "still there, stopped" in msg and "pulumi up --replace" in msg and "deleted" not in msg
    [pod] = emu.pods()
    assert pod["id"] == pod_id and pod["status"] == "EXITED"
    assert_no_orphans(d, emu)

    emu.world.zero_gpu_start = True
    with pytest.raises(CommandError) as e:
        d.up()
    emu.world.zero_gpu_start = False
    msg = str(e.value)
    assert f"pod {pod_id} started with 0 GPUs" in msg and "pulumi up --replace" in msg
    [pod] = emu.pods()
    assert pod["id"] == pod_id
    n = assert_no_orphans(d, emu)
    record(SECTION, "the same two wakes (start refused; 0 GPUs) with the model's `wakeWithoutGpu: fail`",
           "each `up` failed saying the GPU on the pod's host is taken (or the pod started with 0 GPUs), that the "
           "pod is kept and in state, and how to replace it (`pulumi up --replace`)", n)
