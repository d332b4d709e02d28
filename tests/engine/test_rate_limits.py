"""Rate limits: RunPod's quotas are per account and cover every call (the spec's example: 60/min,
3000/h, 50000/day), and a window may last an hour. Every call waits a window out, saying so, with
one patience (45 min; shortened here); no wait ever costs a healthy pod or leaves one billing. Through
the plain `pulumi` CLI against the emulator."""

from __future__ import annotations

import re

import pytest
import requests

from devkit.cli import CommandError
from tests.engine.harness import answers, assert_no_orphans, deploy, fired, one_model, pod_id_in_state
from tests.engine.reliability import leaked, record

SECTION = "rate limits"


# On GETs of pods (list, read, the waits): 3 x 429 (Retry-After: 1), then a 503.
GET_FAULTS = [dict(kind="status", status=429, retry_after=1, method="GET", path="/v2/pods", count=3),
              dict(kind="status", status=503, method="GET", path="/v2/pods")]
# On DELETE: `up` (a replace) gets a 500 before and a 500 after the delete took effect (the retry
# then meets 404 = already gone); `destroy` gets 500 and 502, then the delete's wait meets GET_FAULTS.
DELETE_FAULTS = {
    "up": [dict(kind="status", status=500, method="DELETE"), dict(kind="after_effect", status=500, method="DELETE")],
    "refresh": [],
    "destroy": [dict(kind="status", status=500, method="DELETE"), dict(kind="status", status=502, method="DELETE")],
}
DELETE_ANSWERS = {"up": [500, 500, 404], "refresh": [], "destroy": [500, 502, 204]}
WHAT = {
    "up": ("`up` replacing the pod (delete, then create)", "; 429 on the create; 500 on DELETE before and "
           "after it took effect", "one new pod, the old one deleted"),
    "refresh": ("`refresh`", "", "the pod stayed in state (a 5xx is not 'gone')"),
    "destroy": ("`destroy`", "; 500 and 502 on DELETE", "no pod left, state empty"),
}


@pytest.mark.parametrize("operation", ["up", "refresh", "destroy"])
def test_rate_limits_and_server_errors(engine_emulator, tmp_path, monkeypatch, operation):
    """The `up` case is also the replacement a changed GPU list makes (a REPLACE field of PodSpec)."""
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    d.up()
    first = pod_id_in_state(d)
    since = len(emu.requests)
    for f in GET_FAULTS + DELETE_FAULTS[operation]:
        emu.inject(**f)
    if operation == "up":
        # A GPU list change replaces the pod (delete, then create): DELETE, POST and GETs all run.
        d.write_config({**d.config, "gpuTypes": ["NVIDIA A100 80GB PCIe"]})
        emu.inject(kind="status", status=429, retry_after=1, method="POST", path="/v2/pods$")
        res = d.up()
        assert res.changes.get("replace") == 1
        [pod] = emu.pods()
        assert pod["id"] != first and pod["gpu"]["id"] == "NVIDIA A100 80GB PCIe" and pod["status"] == "RUNNING"
        assert pod_id_in_state(d) == pod["id"]
        assert answers(emu, since, "POST", "/v2/pods") == [429, 201]
    elif operation == "refresh":
        d.refresh()
        assert pod_id_in_state(d) == first  # a 5xx is not "gone": the pod stays in state
        assert [p["id"] for p in emu.pods()] == [first]
    else:
        d.destroy()
        assert emu.pods() == [] and d.resources() == []
    fired(emu)
    got = answers(emu, since, "GET")
    assert got.count(429) == 3 and got.count(503) == 1, got
    assert answers(emu, since, "DELETE") == DELETE_ANSWERS[operation]
    n = assert_no_orphans(d, emu)
    what, extra, result = WHAT[operation]
    record(SECTION, f"3 x 429 (Retry-After: 1) and a 503 on pod GETs during {what}{extra}",
           f"{what.split(' ')[0]} succeeded, retrying (answers seen: GET {got.count(429)} x 429 + "
           f"{got.count(503)} x 503" + (f", DELETE {DELETE_ANSWERS[operation]}" if DELETE_ANSWERS[operation] else "")
           + f"); {result}", n)



LIMITS = {"RUNPOD_DEPLOY_MAX_RETRY_AFTER_S": "1"}


def test_a_long_rate_limit_during_cleanup_is_waited_out(engine_emulator, tmp_path, monkeypatch):
    emu = engine_emulator
    emu.set_service(ready=False)
    d = deploy(emu, tmp_path, monkeypatch, models=one_model(), extra={"readyTimeoutSeconds": 3},
               env={**LIMITS, "RUNPOD_DEPLOY_DELETE_PATIENCE_S": "60"})
    emu.inject(kind="rate_window", seconds=6, method="DELETE")
    with pytest.raises(CommandError) as e:
        d.up()
    msg = str(e.value)
    assert "never became ready" in msg and "it was deleted" in msg
    assert 429 in answers(emu, method="DELETE") and answers(emu, method="DELETE")[-1] == 204
    assert emu.pods() == []
    n = assert_no_orphans(d, emu)
    record(SECTION, "the failed create's cleanup DELETE meets a rate-limit window (Retry-After 6 s, past the "
           "client's cap for reads)", "the DELETE waited the window out (saying so) and deleted the pod", n)


def test_a_rate_limit_longer_than_the_cleanup_patience_names_the_pod_and_the_command(engine_emulator, tmp_path,
                                                                                       monkeypatch):
    emu = engine_emulator
    emu.set_service(ready=False)
    d = deploy(emu, tmp_path, monkeypatch, models=one_model(), extra={"readyTimeoutSeconds": 3},
               env={**LIMITS, "RUNPOD_DEPLOY_DELETE_PATIENCE_S": "2"})
    emu.inject(kind="rate_window", seconds=30, method="DELETE")
    with pytest.raises(CommandError) as e:
        d.up()
    msg = str(e.value)
    [pod] = emu.pods()
    assert f"could not delete pod {pod['id']}" in msg and "still billing" in msg
    command = re.search(r"curl -X DELETE [^\n`]+", msg).group(0)
    assert pod["id"] in command and "$RUNPOD_API_KEY" in command
    before = leaked(d, emu)
    assert before == 1
    emu.faults.clear()
    url = command.split()[-1]
    requests.delete(url, headers={"Authorization": f"Bearer {emu.api_key}", "User-Agent": "curl/8"}, timeout=10)
    assert emu.pods() == []
    n = assert_no_orphans(d, emu)
    record(SECTION, "the cleanup DELETE meets a rate-limit window longer than its patience (shortened to 2 s)",
           "`up` failed naming the pod id, that it is still billing, and the exact DELETE command; running it "
           "removed the pod", n, before_recovery=before)


def test_three_models_up_and_destroy_under_60_calls_a_minute(engine_emulator, tmp_path, monkeypatch):
    """The spec's example quotas (60/min, 3000/h, 50000/day) over every call. The polls here are 10x
    production's pace, so the minute window fills within seconds and every kind of call meets it."""
    from devkit.program import models_for

    emu = engine_emulator
    emu.enforce_quotas()
    emu.world.delays["ready"] = 40.0  # 40 s of polling three pods: past 60 calls within a minute window
    # urllib3 resends a 429 silently when its Retry-After is under the client's cap (10 s); a window met
    # in its last seconds (as on a loaded machine) would leave nothing said. Cap 1 s: every wait is said.
    d = deploy(emu, tmp_path, monkeypatch, models=models_for(3), env={"RUNPOD_DEPLOY_MAX_RETRY_AFTER_S": "1"})
    up = d.up()
    limited = answers(emu).count(429)
    assert limited > 0, "the minute quota was never reached: the test proves nothing"
    assert len(emu.pods()) == 3 and all(p["status"] == "RUNNING" for p in emu.pods())
    assert "rate limit" in up.stdout
    n_up = assert_no_orphans(d, emu)
    since = len(emu.requests)
    d.destroy()
    assert emu.pods() == [] and d.resources() == []
    n = assert_no_orphans(d, emu) + n_up
    calls = len(emu.requests)
    record(SECTION, "RunPod's example quotas enforced per account over every call (60/min); a three-model `up`, "
           "then `destroy` ",
           f"both succeeded: {limited} calls of the `up` and {answers(emu, since).count(429)} of the `destroy` got "
           f"a 429 and waited for the window, saying so ({calls} calls in all)", n)


def test_an_hour_window_opened_just_before_destroy_is_waited_out(engine_emulator, tmp_path, monkeypatch):
    """Retry-After longer than the client's cap (shortened to 1 s) on every call, refresh's reads
    included: `destroy` waits (patience shortened to 60 s) and deletes."""
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch, models=one_model(),
               env={"RUNPOD_DEPLOY_MAX_RETRY_AFTER_S": "1", "RUNPOD_DEPLOY_RATE_PATIENCE_S": "60"})
    d.up()
    pod_id = pod_id_in_state(d)
    since = len(emu.requests)
    emu.inject(kind="rate_window", seconds=6)
    res = d.destroy()
    got = answers(emu, since, "GET", f"/v2/pods/{pod_id}")
    assert got[0] == 429 and 200 in got, got  # the refresh's read met the window first
    assert answers(emu, since, "DELETE")[-1] == 204
    assert "asks to wait" in res.stdout
    assert emu.pods() == [] and d.resources() == []
    n = assert_no_orphans(d, emu)
    record(SECTION, "an hour window (Retry-After 6 s, above the client's 1 s cap) opens on every call just before "
           "`destroy` ", "the refresh's read and the DELETE waited the window out, saying so; `destroy` "
           "deleted the pod", n)


def test_a_window_longer_than_the_patience_stops_refresh_with_one_line(engine_emulator, tmp_path, monkeypatch):
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch, models=one_model(),
               env={"RUNPOD_DEPLOY_MAX_RETRY_AFTER_S": "1", "RUNPOD_DEPLOY_RATE_PATIENCE_S": "2"})
    d.up()
    pod_id = pod_id_in_state(d)
    emu.inject(kind="rate_window", seconds=30)
    with pytest.raises(CommandError) as e:
        d.destroy()
    msg = str(e.value)
    assert f"reading pod {pod_id}" in msg and "rate-limited" in msg and "still in the stack's state" in msg
    assert "pulumi" in msg
    emu.faults.clear()
    d.destroy()
    n = assert_no_orphans(d, emu)
    record(SECTION, "a rate-limit window longer than the patience (shortened to 2 s) during `destroy`'s refresh",
           "`destroy` stopped with one line per pod naming it, that it is still in state, how long to "
           "wait and the command; run later, it deleted the pod", n)


def test_the_calls_a_two_model_up_makes_in_its_first_minute(engine_emulator, tmp_path, monkeypatch):
    """At production's poll pace (RUNPOD_DEPLOY_POLL_S=1) and a cold start longer than a minute: how many
    of the account's 60 calls/min a two-model `up` uses (previews, config checks, creates, polls, logs)."""
    emu = engine_emulator
    emu.world.delays.update(provision=5.0, start=5.0, runtime=5.0, ready=60.0)
    d = deploy(emu, tmp_path, monkeypatch, env={"RUNPOD_DEPLOY_POLL_S": "1.0"})
    d.up()
    reqs = emu.requests
    t0 = reqs[0]["ts"]
    first = [r for r in reqs if r["ts"] < t0 + 60]
    kinds: dict[str, int] = {}
    for r in first:
        kind = re.sub(r"/v2/pods/[a-z0-9]+", "/v2/pods/{id}", r["path"])
        kinds[f"{r['method']} {kind}"] = kinds.get(f"{r['method']} {kind}", 0) + 1
    print("calls in the first minute:", len(first), kinds)
    assert len(first) <= 60, kinds
    n = assert_no_orphans(d, emu)
    record(SECTION, "calls a two-model `up` makes in its first minute (production poll pace, a cold start > 1 min)",
           f"{len(first)} calls (" + ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items())) + "), under "
           "RunPod's example 60/min", n)
