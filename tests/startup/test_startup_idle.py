"""Idle stop on the pod as the agent runs it (startup/agent/idle.py inside the agent): the sandbox's
stand-in vLLM, whose /metrics counters the test drives, and the RunPod emulator as the API the pod
calls with the identity RunPod injects (RUNPOD_POD_ID and the pod-scoped RUNPOD_API_KEY). The
emulator plays the key as seen live: 403 on every /v2 path, GraphQL podStop accepted for its own pod.
Minutes are shortened to seconds with IDLE_STOP_MINUTE_S. The stop chain itself, path by path, is
unit-tested in test_idle_agent.py."""

from __future__ import annotations

import time

import pytest
import requests

from devkit.startup import SECRETS, Metrics, sha

READY = r"^runpod-deploy phase=ready$"
ACCEPTED = r"^runpod-deploy: idle stop: RunPod accepted the stop \(GraphQL podStop\)"
UA = {"User-Agent": "runpod-deploy-tests/0"}
POD = {
    "name": "runpod-deploy-dev-olmocr-abc123",
    "image": "runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404",
    "gpu": {"id": "NVIDIA L40S", "count": 1},
    "dataCenterIds": ["EU-RO-1"],
    "ports": ["8000/http", "3000/http"],
    "mounts": {"network": [{"volumeId": "fuzzvol01eu", "path": "/workspace"}]},
}


@pytest.fixture
def metrics(h):
    return Metrics(h.tmp / "metrics.txt")


def new_pod(emulator) -> str:
    r = requests.post(f"{emulator.api_url}/pods", json=POD, timeout=5,
                      headers={"Authorization": f"Bearer {emulator.api_key}", **UA})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def status(emulator, pod_id) -> str:
    return next(p["status"] for p in emulator.pods() if p["id"] == pod_id)


def v2_stops(emulator) -> list[dict]:
    return [r for r in emulator.requests if r["method"] == "POST" and r["path"].endswith("/action")]


def pod_stops(emulator) -> list[tuple]:
    return [(c["pod_id"], c["key"], c["ok"]) for c in emulator.graphql.calls() if c["operation"] == "podStop"]


def knobs(emulator, metrics, **env) -> dict:
    return dict(IDLE_STOP_MINUTE_S=1, IDLE_STOP_CHECK_S=0.2, IDLE_STOP_RETRY_S=1, IDLE_STOP_API_URL=emulator.api_url,
                IDLE_STOP_GRAPHQL_URL=f"{emulator.base_url}/graphql", STUB_METRICS=metrics.path, **env)


def start_pod_script(h, emulator, metrics, pod_id, *, minutes=2, **env):
    """The pod as RunPod runs it: the env RunPod gives the container (its identity included)."""
    identity = {k: v for k, v in emulator.container_env(pod_id).items() if k.startswith("RUNPOD_")}
    assert emulator.api_key not in identity.values()  # only the pod-scoped key reaches the pod
    return h.start(settings={"idleStopMinutes": minutes}, **{**knobs(emulator, metrics), **identity, **env})


def test_an_idle_pod_stops_itself_through_graphql_with_its_own_identity(h, emulator, metrics):
    pod_id = new_pod(emulator)
    pod_key = emulator.container_env(pod_id)["RUNPOD_API_KEY"]
    run = start_pod_script(h, emulator, metrics, pod_id)
    run.wait_for(r"^runpod-deploy: idle stop: on; the pod stops itself after 2 min without a request")
    run.wait_for(READY)
    ready_at = time.time()

    announce = run.wait_for(rf"^runpod-deploy: idle stop: no request for 2 min: stopping pod {pod_id} ")
    run.wait_for(r"^runpod-deploy: idle stop: v2 action refused \(HTTP 403: access denied\)$")
    accepted = run.wait_for(ACCEPTED)
    assert [c["status"] for c in v2_stops(emulator)] == [403]  # REST first, refused as live
    assert pod_stops(emulator) == [(pod_id, "pod", True)]
    assert v2_stops(emulator)[0]["ts"] - ready_at >= 2 - 0.5  # not before the limit (lower bound only)
    assert status(emulator, pod_id) == "EXITED"
    assert run.lines.index(announce.string) < run.lines.index(accepted.string)

    run.wait_for(r"^runpod-deploy: idle stop: RunPod shows the pod EXITED$")  # checked, not asked again
    time.sleep(2)
    assert len(pod_stops(emulator)) == 1
    # The pod-scoped key never shows, and no child gets it.
    assert pod_key not in run.output
    for rec in h.records():
        assert "RUNPOD_API_KEY" not in rec["env"], rec["tool"]


def test_the_earlier_reading_of_the_key_stops_through_v2(h, emulator, metrics):
    emulator.pod_key_v2 = "own-pod"
    pod_id = new_pod(emulator)
    run = start_pod_script(h, emulator, metrics, pod_id, minutes=1)
    run.wait_for(r"^runpod-deploy: idle stop: RunPod accepted the stop \(v2 action\)", timeout=20)
    assert [c["status"] for c in v2_stops(emulator)] == [200] and pod_stops(emulator) == []


def test_a_busy_pod_stays_up_and_stops_once_the_requests_stop(h, emulator, metrics):
    pod_id = new_pod(emulator)
    run = start_pod_script(h, emulator, metrics, pod_id)
    run.wait_for(READY)

    # Requests finishing every half second for twice the limit...
    for finished in range(1, 9):
        metrics.set(finished=finished)
        time.sleep(0.5)
    # ...then one long request running (the finished count stands still) for longer than the limit.
    metrics.set(finished=8, running=1)
    time.sleep(3)
    metrics.set(finished=8, waiting=2)
    time.sleep(3)
    assert v2_stops(emulator) == [] and "idle stop: no request" not in run.output
    assert status(emulator, pod_id) == "RUNNING"

    metrics.set(finished=9)  # the last one finished: from now on the pod is idle
    run.wait_for(ACCEPTED, timeout=20)
    assert pod_stops(emulator) == [(pod_id, "pod", True)] and status(emulator, pod_id) == "EXITED"


def test_a_pod_installing_or_downloading_never_stops(h, emulator, metrics):
    pod_id = new_pod(emulator)
    hold = h.tmp / "hold"
    hold.write_text("installing")
    run = start_pod_script(h, emulator, metrics, pod_id, minutes=1, STUB_HOLD=hold)
    run.wait_for(r"^runpod-deploy phase=install-vllm$")
    time.sleep(4)  # four times the limit, mid-install
    assert run.phases()[-1] == "install-vllm"
    assert v2_stops(emulator) == [] and pod_stops(emulator) == []

    hold.unlink()
    run.wait_for(READY, timeout=20)
    run.wait_for(ACCEPTED, timeout=20)  # the clock started only once vLLM answered
    assert len(pod_stops(emulator)) == 1


def test_every_path_refused_is_logged_the_pod_keeps_serving_and_asks_again(h, emulator, metrics):
    mine, other = new_pod(emulator), new_pod(emulator)
    # The pod-scoped key used on another pod's id: v2 refuses every path, GraphQL refuses another pod,
    # and the sandbox has no runpodctl.
    run = start_pod_script(h, emulator, metrics, mine, minutes=1, RUNPOD_POD_ID=other)
    run.wait_for(READY)
    run.wait_for(r"^runpod-deploy error=idle stop refused \(v2 action: HTTP 403: access denied; GraphQL podStop: "
                 r"HTTP 200: a pod-scoped API key may only act on its own pod; runpodctl: not on PATH\): the pod "
                 r"keeps serving and billing; asking again every 1 s while it stays idle", timeout=20)
    run.wait_for(rf"^runpod-deploy: idle stop: still no request: asking RunPod again to stop pod {other} "
                 r"\(attempt 2\)$", timeout=20)
    run.wait_for(r"^runpod-deploy error=idle stop refused", count=2)
    assert len(pod_stops(emulator)) >= 2 and not any(ok for *_, ok in pod_stops(emulator))
    assert status(emulator, other) == "RUNNING" and status(emulator, mine) == "RUNNING"
    assert run.proc.poll() is None
    assert requests.get(f"http://127.0.0.1:{run.vllm_port}/health", timeout=5).status_code == 200
    assert run.stop() == 0


def test_an_unreachable_api_is_a_refused_stop_too(h, emulator, metrics):
    pod_id = new_pod(emulator)
    run = start_pod_script(h, emulator, metrics, pod_id, minutes=1, IDLE_STOP_API_URL="http://127.0.0.1:9/v2")
    run.wait_for(r"^runpod-deploy error=idle stop refused \(v2 action: no answer: .*\): the pod keeps serving",
                 timeout=20)
    assert run.proc.poll() is None and v2_stops(emulator) == [] and pod_stops(emulator) == []


def test_without_vllms_metrics_idle_stop_never_arms_and_says_why(h, emulator, metrics):
    pod_id = new_pod(emulator)
    metrics.path.write_text("python_gc_objects_collected_total 12.0\n")  # vLLM with --disable-log-stats
    run = start_pod_script(h, emulator, metrics, pod_id, minutes=1)
    run.wait_for(READY)
    run.wait_for(r"^runpod-deploy: idle stop: not armed: vLLM's /metrics lacks vllm:request_success_total")
    time.sleep(3)  # three limits
    assert v2_stops(emulator) == [] and pod_stops(emulator) == []
    assert run.output.count("idle stop: not armed") == 1


def test_without_the_injected_identity_idle_stop_is_off_and_says_so(h, emulator, metrics):
    run = h.start(settings={"idleStopMinutes": 1}, **knobs(emulator, metrics))
    run.wait_for(r"^runpod-deploy error=idle stop is off: RUNPOD_POD_ID and RUNPOD_API_KEY, which RunPod sets in "
                 r"every pod, are not both set$")
    run.wait_for(READY)
    time.sleep(2.5)
    assert "idle stop: on" not in run.output and emulator.requests == []


def test_idle_stop_is_off_unless_configured(h, emulator, metrics):
    pod_id = new_pod(emulator)
    identity = {k: v for k, v in emulator.container_env(pod_id).items() if k.startswith("RUNPOD_")}
    run = h.start(**{**knobs(emulator, metrics), "IDLE_STOP_MINUTE_S": 0.1, "IDLE_STOP_CHECK_S": 0.1}, **identity)
    run.wait_for(READY)
    time.sleep(1.5)
    assert "idle stop" not in run.output and v2_stops(emulator) == [] and pod_stops(emulator) == []


@pytest.mark.parametrize("value", ["0", "ten", "1.5", "-3"])
def test_a_bad_idle_stop_minutes_stops_the_start_with_the_fix(h, value):
    run = h.start(IDLE_STOP_MINUTES=value, RUNPOD_POD_ID="p", RUNPOD_API_KEY="k")
    assert run.wait_exit() == 2
    assert (f"runpod-deploy error=IDLE_STOP_MINUTES must be a whole number of minutes (1 or more), or empty for "
            f"no idle stop (got '{value}')") in run.lines
    assert h.records("uv") == []


def test_the_pod_scoped_key_reaches_no_child_process(h, metrics):
    key = "rpa_pod_SECRET_3c9e"
    run = h.start(settings={"idleStopMinutes": 30}, RUNPOD_POD_ID="pod1", RUNPOD_API_KEY=key,
                  STUB_METRICS=metrics.path)
    run.wait_for(READY)  # both services answer: both were started
    recs = h.records()
    assert recs and all("RUNPOD_API_KEY" not in r["env"] for r in recs)
    assert sha(key) not in str(recs) and key not in run.output
    assert SECRETS["VLLM_API_KEY"] not in run.output
