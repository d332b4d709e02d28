"""Issue 20: live RunPod, third round, through the plain `pulumi` CLI against the emulator playing the
worst plausible version of each behaviour (sources in runpod_emulator/README.md).

Every test ends with the emulator's pods equal to the stack's state (`assert_no_orphans`) and records
a row for docs/reliability.md (section "live").
"""

from __future__ import annotations

import os
import re
import time

import pytest

from devkit.cli import ROOT, CommandError, search_path
from tests.engine.harness import deploy
from tests.engine.reliability import record
from tests.engine.test_faults import answers, assert_no_orphans, fired, one_model, pod_id_in_state
from tests.engine.test_lifecycle import health_now, mutations

SECTION = "live"
POD_PATH = r"/v2/pods/[a-z0-9]+$"


# --- §1: a sparse or normalised GET is not drift -----------------------------------------------------
@pytest.mark.parametrize("how", ["omit", "null"])
def test_a_sparse_get_never_patches_the_pod(engine_emulator, tmp_path, monkeypatch, how):
    """GET leaves out (or nulls) `env` and `ports`, and echoes the image as `docker.io/…` with the
    ports reordered: neither a no-op `up` nor a wake may PATCH (a PATCH resets the pod)."""
    emu = engine_emulator
    emu.world.reset_lag = 0.5
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    d.up()
    pod_id = pod_id_in_state(d)
    emu.world.sparse_get = {"env": how, "ports": how}
    emu.world.normalised_echo = True
    since = len(emu.requests)
    up = d.up()
    assert set(up.changes) == {"same"}, up.changes
    assert mutations(emu, since) == []
    emu.stop_pod_out_of_band(pod_id, reason="runpod-deploy: idle stop")
    since = len(emu.requests)
    up = d.up()  # a wake: the start only
    assert up.changes.get("update") == 1
    assert [(m, p) for m, p, _ in mutations(emu, since)] == [("POST", f"/v2/pods/{pod_id}/action")]
    assert health_now(emu, pod_id) == 200
    [pod] = emu.pods()
    assert pod["id"] == pod_id and pod["status"] == "RUNNING" and "PUBLIC_KEY" in pod["env"]
    n = assert_no_orphans(d, emu)
    record(SECTION, f"GET {'omits' if how == 'omit' else 'nulls'} `env` and `ports`, and echoes the image as "
           "`docker.io/…` with the ports reordered (§1)",
           "a no-op `up` changed nothing (no PATCH), and a wake sent only the start: absent means unknown, the "
           "image is compared normalised and the ports as a set", n)


# --- §2: rate limits are per account and cover every call ---------------------------------------------
def test_three_models_up_and_destroy_under_60_calls_a_minute(engine_emulator, tmp_path, monkeypatch):
    """The spec's example quotas (60/min, 3000/h, 50000/day) over every call. The polls here are 10x
    production's pace, so the minute window fills within seconds and every kind of call meets it."""
    from devkit.program import models_for

    emu = engine_emulator
    emu.enforce_quotas()
    emu.world.delays["ready"] = 40.0  # 40 s of polling three pods: past 60 calls within a minute window
    d = deploy(emu, tmp_path, monkeypatch, models=models_for(3))
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
           "then `destroy` (§2)",
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
           "`destroy` (§2)", "the refresh's read and the DELETE waited the window out, saying so; `destroy` "
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
    record(SECTION, "a rate-limit window longer than the patience (shortened to 2 s) during `destroy`'s refresh "
           "(§2)", "`destroy` stopped with one line per pod naming it, that it is still in state, how long to "
           "wait and the command; run later, it deleted the pod", n)


# --- §4: log event ids may repeat -------------------------------------------------------------------
def test_error_and_failed_in_the_same_second_with_one_second_ids_fail_fast(engine_emulator, tmp_path, monkeypatch):
    emu = engine_emulator
    emu.world.log_ids = "second"
    emu.world.startup = {"mode": "error", "text": "vLLM 0.11.2 install failed; see /workspace/logs/install.log"}
    d = deploy(emu, tmp_path, monkeypatch, models=one_model(), extra={"readyStallSeconds": 600})
    t0 = time.monotonic()
    with pytest.raises(CommandError) as e:
        d.up()
    took = time.monotonic() - t0
    msg = str(e.value)
    assert "vLLM 0.11.2 install failed" in msg and "it was deleted" in msg
    assert emu.pods() == [] and took < 120
    n = assert_no_orphans(d, emu)
    record(SECTION, "log event ids at one-second resolution with no suffix (the spec: ids \"are the event `ts` "
           "timestamp\"); `error=` and `phase=failed` in the same second (§4)",
           f"`up` failed at once ({took:.0f} s, stall timeout 600 s) with the error: lines are told apart by id, "
           "text and position, so the second line of a second is not dropped as a repeat; pod deleted", n)


# --- §3: a slow image pull is progress ----------------------------------------------------------------
@pytest.mark.parametrize("lines", [True, False])
def test_a_long_provisioning_with_pull_lines_is_progress(engine_emulator, tmp_path, monkeypatch, lines):
    emu = engine_emulator
    emu.world.delays["provision"] = 8.0
    emu.world.pull_line_every = 1.0 if lines else None
    d = deploy(emu, tmp_path, monkeypatch, models=one_model(), extra={"readyStallSeconds": 3})
    if lines:
        up = d.up()
        [pod] = emu.pods()
        assert pod["status"] == "RUNNING" and up.outputs["olmocr_pod_id"].value == pod["id"]
        outcome = "`up` waited (each system pull line resets the stall clock) and succeeded"
    else:
        with pytest.raises(CommandError) as e:
            d.up()
        msg = str(e.value)
        assert "no progress" in msg and "it was deleted" in msg
        assert emu.pods() == []
        outcome = "`up` failed as a stall after 3 s of silence; pod deleted"
    n = assert_no_orphans(d, emu)
    record(SECTION, "PROVISIONING for 8 s (an image pull; 15 min seen live), stall timeout 3 s, "
           + ("with a system pull line every second (§3)" if lines else "without any log line (§3)"), outcome, n)


# --- §7: statuses and answers the emulator never gave -----------------------------------------------
OCI = "OCI runtime create failed: nvidia-container-cli: requirement error: unsatisfied condition: cuda>=13.0"


def test_a_create_that_ends_in_error_is_deleted_with_the_reason(engine_emulator, tmp_path, monkeypatch):
    emu = engine_emulator
    emu.world.error_after = {"after": 0.2, "reason": OCI}
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    with pytest.raises(CommandError) as e:
        d.up()
    msg = str(e.value)
    assert "went to ERROR" in msg and "OCI runtime create failed" in msg and "it was deleted" in msg
    assert emu.pods() == []
    n = assert_no_orphans(d, emu)
    record(SECTION, "the pod goes to ERROR after RUNNING (\"OCI runtime create failed\": CUDA mismatch) during the "
           "create (§7)", "`up` failed with the status and RunPod's reason line; the pod was deleted", n)


def test_a_refresh_that_finds_error_replaces_the_pod(engine_emulator, tmp_path, monkeypatch):
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    d.up()
    broken = pod_id_in_state(d)
    emu.world.error_after = {"after": 0.0, "reason": OCI}
    emu.stop_pod_out_of_band(broken)
    emu.start_pod_out_of_band(broken)  # a console start on a host that no longer fits: ERROR
    time.sleep(1.5)
    assert emu.pods()[0]["status"] == "ERROR"
    emu.world.error_after = None
    since = len(emu.requests)
    up = d.up()
    assert up.changes.get("replace") == 1, up.changes
    assert [m for m, p, _ in mutations(emu, since)] == ["DELETE", "POST"]  # no start loop
    [pod] = emu.pods()
    assert pod["id"] != broken and pod["status"] == "RUNNING" and health_now(emu, pod["id"]) == 200
    again = d.up()
    assert set(again.changes) == {"same"}
    n = assert_no_orphans(d, emu)
    record(SECTION, "`up` finds the pod in ERROR (§7)", "the refresh recorded ERROR and `up` replaced the pod (delete, "
           "then a create through the GPU walk) instead of starting it; a further `up` changed nothing", n)


def test_402_on_create_or_start_stops_at_once(engine_emulator, tmp_path, monkeypatch):
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    emu.inject(kind="status", status=402, method="POST", path="/v2/pods$", detail="Insufficient balance.")
    with pytest.raises(CommandError) as e:
        d.up()
    assert answers(emu, method="POST", path="/v2/pods") == [402]  # no walk on to the next GPU
    assert "out of funds" in str(e.value) and "Billing" in str(e.value)
    d.up()
    pod_id = pod_id_in_state(d)
    emu.stop_pod_out_of_band(pod_id)
    emu.inject(kind="status", status=402, method="POST", path=rf"/v2/pods/{pod_id}/action",
               detail="Insufficient balance.")
    t0 = time.monotonic()
    with pytest.raises(CommandError) as e:
        d.up()
    took = time.monotonic() - t0
    assert "out of funds" in str(e.value) and "stopped" in str(e.value) and took < 60
    fired(emu)
    [pod] = emu.pods()
    assert pod["status"] == "EXITED"
    n = assert_no_orphans(d, emu)
    record(SECTION, "402 (balance) on the create, then on the start of a stopped pod (§7)",
           f"each `up` stopped at once (the start's in {took:.0f} s, not after the 300 s boot grace) saying to "
           "add credit; no other GPU tried, the stopped pod kept in state", n)


def test_a_running_pod_whose_services_gave_up_is_healed_by_up(engine_emulator, tmp_path, monkeypatch):
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    d.up()
    pod_id = pod_id_in_state(d)
    emu.give_up_services(pod_id)
    assert health_now(emu, pod_id) == 502
    pre = d.preview()
    assert pre.changes.get("update") == 1, pre.changes
    since = len(emu.requests)
    up = d.up()
    assert up.changes.get("update") == 1
    assert [(m, p) for m, p, _ in mutations(emu, since)] == [("POST", f"/v2/pods/{pod_id}/action")]
    assert health_now(emu, pod_id) == 200
    assert "not serving" in up.stdout
    n = assert_no_orphans(d, emu)
    record(SECTION, "the pod is RUNNING but its services gave up (the agent's restart limit; `phase=failed`) (§7)",
           "refresh read it as not serving (a health probe, confirmed by the pod's log), preview showed an update, "
           "and `up` restarted the same pod and waited until it served", n)


def test_make_pods_lists_only_this_stacks_pods(engine_emulator, tmp_path, monkeypatch):
    import subprocess
    import sys

    from runpod_provider.client import RunPodClient

    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    d.up()
    mine = pod_id_in_state(d)
    body = {"image": "runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404", "cloud": "SECURE",
            "gpu": {"id": "NVIDIA GeForce RTX 4090", "count": 1}, "dataCenterIds": ["EU-RO-1"],
            "name": f"runpod-deploy-{d.name}-olmocr-k3v9x2q1-a1b2c3"}  # a teammate's same-named stack
    with RunPodClient(emu.api_key, emu.api_url) as c:
        c._request("POST", "/pods", body=body).close()
    foreign = next(p["id"] for p in emu.pods() if p["id"] != mine)
    env = {**os.environ, **d.project.env, "PATH": search_path()}  # as `make pods` runs it
    out = subprocess.run([sys.executable, "-m", "runpod_deploy.run", "pods", "--stack", d.name,
                          "--work-dir", str(d.work_dir)], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert mine in out.stdout and foreign not in out.stdout
    emu.delete_pod_out_of_band(foreign)
    n = assert_no_orphans(d, emu)
    record(SECTION, "`make pods` with a same-named teammate stack's pod on the account (§7)",
           "listed only this stack's pod (its state's name token), not the teammate's", n)


# --- §6: waking onto a host whose GPU was rented ---------------------------------------------------------
def pod_of(d, model: str = "olmocr") -> str:
    """The pod the resource stands for now: its `pod_id` output (a wake onto a full host moves it)."""
    [r] = [r for r in d.resources() if r["urn"].endswith(f"::{model}")]
    return r["outputs"]["pod_id"]


@pytest.mark.parametrize("how", ["refused", "zero GPUs"])
def test_a_wake_onto_a_full_host_replaces_the_pod(engine_emulator, tmp_path, monkeypatch, how):
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    d.up()
    old = pod_of(d)
    emu.stop_pod_out_of_band(old, reason="runpod-deploy: idle stop")
    if how == "refused":
        emu.inject(kind="no_gpu_on_start")
    else:
        emu.world.zero_gpu_start = True
    since = len(emu.requests)
    up = d.up()
    emu.world.zero_gpu_start = False
    new = pod_of(d)
    assert new != old and up.outputs["olmocr_pod_id"].value == new
    assert new in up.outputs["olmocr_api_url"].value and new in up.outputs["olmocr_webui_url"].value
    assert f"pod {old} cannot wake on its host" in up.stdout
    [pod] = emu.pods()
    assert pod["id"] == new and pod["status"] == "RUNNING" and health_now(emu, new) == 200
    calls = mutations(emu, since)
    created = next(i for i, c in enumerate(calls) if c[:2] == ("POST", "/v2/pods"))
    deleted = next(i for i, c in enumerate(calls) if c[:2] == ("DELETE", f"/v2/pods/{old}"))
    assert created < deleted  # the old pod goes only once the new one serves
    again = d.up()
    assert set(again.changes) == {"same"}, again.changes
    live, state = {p["id"] for p in emu.pods()}, {pod_of(d)}
    assert live == state
    d.destroy()
    assert emu.pods() == [] and d.resources() == []
    record(SECTION, "wake onto a host whose GPU was rented: the start is " + (
        "refused (400 \"not enough free GPUs on the host machine\")" if how == "refused" else
        "answered 200 but the pod comes up with `gpu.count: 0` (vLLM crash-loops)") + " (§6)",
        "`up` said so in one line and replaced the pod: a new one through the GPU walk (same volume), the old one "
        "deleted once the new one served; outputs show the new id and URLs; a further `up` changed nothing and "
        "`destroy` deleted the new pod", 0)


def test_wake_without_gpu_fail_keeps_the_pod_and_says_how_to_replace_it(engine_emulator, tmp_path, monkeypatch):
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch, models=one_model(wakeWithoutGpu="fail"))
    d.up()
    pod_id = pod_of(d)
    emu.stop_pod_out_of_band(pod_id)
    emu.world.zero_gpu_start = True
    with pytest.raises(CommandError) as e:
        d.up()
    emu.world.zero_gpu_start = False
    msg = str(e.value)
    assert f"pod {pod_id} started with 0 GPUs" in msg and "pulumi up --replace" in msg
    [pod] = emu.pods()
    assert pod["id"] == pod_id
    n = assert_no_orphans(d, emu)
    record(SECTION, "the same zero-GPU wake with the model's `wakeWithoutGpu: fail` (§6)",
           "`up` failed saying the pod started with 0 GPUs because its host's GPU was rented, and how to replace "
           "it; the pod is kept and in state", n)


# --- §5: proof of a new boot from the pod itself --------------------------------------------------------
def test_an_opaque_reset_is_proven_by_the_pods_boot_line(engine_emulator, tmp_path, monkeypatch):
    """RunPod shows nothing of the reset: RUNNING throughout, `startedAt` and `uptime` still the old
    boot's, `runtime` null for a while. Only the agent's new `runpod-deploy boot=` line proves it."""
    emu = engine_emulator
    emu.world.opaque_reset = True
    emu.world.reset_lag = 1.0
    emu.world.delays["runtime"] = 3.0
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    d.up()
    pod_id = pod_id_in_state(d)
    before = emu.pods()[0]["startedAt"]
    d.write_config({**d.config, "models": one_model(vllmArgs=["--enforce-eager"])})
    since = len(emu.requests)
    up = d.up()
    now = time.time()
    assert up.changes.get("update") == 1
    live = emu.world.pods[pod_id]
    assert live.boot.at <= now and live.boot.ready_at <= now  # `up` returned once the NEW container served
    [pod] = emu.pods()
    assert pod["startedAt"] == before and pod["status"] == "RUNNING"
    assert [(m, p) for m, p, _ in mutations(emu, since)] == [("PATCH", f"/v2/pods/{pod_id}")]
    n = assert_no_orphans(d, emu)
    record(SECTION, "a reset that RunPod's fields never show: RUNNING throughout, `startedAt` and uptime unchanged, "
           "`runtime` null for 3 s (§5)", "`up` took the pod's new `runpod-deploy boot=` line as the proof of the "
           "new boot and returned once the new container served", n)


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
    record(SECTION, "calls a two-model `up` makes in its first minute (production poll pace, a cold start > 1 min) "
           "(§2)", f"{len(first)} calls (" + ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items())) + "), under "
           "RunPod's example 60/min", n)
