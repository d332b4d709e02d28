"""Drift: the world changed outside Pulumi, or RunPod reports it in ways of its own. `up`, `preview`
and `destroy` refresh first (Pulumi.yaml), so a plain `pulumi up` acts on the world as it is; what
RunPod injects or leaves out of a GET is not drift; a teammate's pods on the same account are never
touched. Through the plain `pulumi` CLI against the emulator."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

from devkit.cli import ROOT, search_path
from tests.engine.harness import (
    answers,
    assert_no_orphans,
    create_foreign_pod,
    deploy,
    health_now,
    mutations,
    one_model,
    pod_id_in_state,
)
from tests.engine.reliability import record

SECTION = "drift"
OCI = "OCI runtime create failed: nvidia-container-cli: requirement error: unsatisfied condition: cuda>=13.0"


def test_a_plain_up_recreates_a_pod_deleted_outside_pulumi(engine_emulator, tmp_path, monkeypatch):
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch)  # both models
    d.up()
    gone, kept = pod_id_in_state(d, "olmocr"), pod_id_in_state(d, "qwen3vl")
    emu.delete_pod_out_of_band(gone)
    since = len(emu.requests)
    up = d.up()
    assert up.changes.get("create") == 1 and "replace" not in up.changes and "delete" not in up.changes
    assert answers(emu, since, "GET", f"/v2/pods/{gone}")[:1] == [404]  # its refresh read: gone, dropped
    new = pod_id_in_state(d, "olmocr")
    assert new != gone and pod_id_in_state(d, "qwen3vl") == kept
    assert {p["id"]: p["status"] for p in emu.pods()} == {new: "RUNNING", kept: "RUNNING"}
    assert [m for m, p, _ in mutations(emu, since)] == ["POST"]  # the other model's pod untouched
    n = assert_no_orphans(d, emu)
    record(SECTION, "plain `pulumi up` after one of two pods was deleted in the console",
           "`up` (refresh first: a 404 drops it from state) created a new pod for that model; the other pod "
           "got no call", n)


def test_a_plain_up_stops_a_pod_started_in_the_console_while_config_says_stopped(engine_emulator, tmp_path,
                                                                                  monkeypatch):
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch, models=one_model(running=False))
    d.up()
    pod_id = pod_id_in_state(d)
    assert emu.pods()[0]["status"] == "EXITED"
    emu.start_pod_out_of_band(pod_id)
    assert emu.pods()[0]["status"] != "EXITED"
    up = d.up()
    assert up.changes.get("update") == 1
    [pod] = emu.pods()
    assert pod["id"] == pod_id and pod["status"] == "EXITED"
    [r] = d.resources()
    assert r["outputs"]["running"] is False and r["outputs"]["status"] == "EXITED"
    n = assert_no_orphans(d, emu)
    record(SECTION, "plain `pulumi up` after the pod (config running: false) was started in the console",
           "`up` (refresh first) saw it running and stopped it again: no GPU billing the config did not ask for", n)


def test_a_sparse_get_never_patches_the_pod(engine_emulator, tmp_path, monkeypatch):
    """GET leaves out `env`, nulls `ports`, and echoes the image as `docker.io/…` with the ports
    reordered: neither a no-op `up` nor a wake may PATCH (a PATCH resets the pod)."""
    emu = engine_emulator
    emu.world.reset_lag = 0.5
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    d.up()
    pod_id = pod_id_in_state(d)
    emu.world.sparse_get = {"env": "omit", "ports": "null"}
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
    record(SECTION, "GET omits `env`, nulls `ports`, and echoes the image as `docker.io/…` with the ports reordered",
           "a no-op `up` changed nothing (no PATCH), and a wake sent only the start: absent or null means unknown, "
           "the image is compared normalised and the ports as a set", n)


def test_injected_ssh_key_survives_an_update_and_is_not_drift(engine_emulator, tmp_path, monkeypatch):
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())  # startSsh: true (the default)
    d.up()
    pod_id = pod_id_in_state(d)
    key = emu.pods()[0]["env"]["PUBLIC_KEY"]
    assert key.startswith("ssh-ed25519 ")
    since = len(emu.requests)
    d.refresh()
    pre = d.preview()
    assert set(pre.changes) == {"same"}, pre.changes
    assert mutations(emu, since) == []
    d.write_config({**d.config, "models": one_model(vllmArgs=["--enforce-eager"])})
    d.up()
    [pod] = emu.pods()
    assert pod["id"] == pod_id and pod["env"]["PUBLIC_KEY"] == key
    assert pod["env"]["VLLM_EXTRA_ARGS_JSON"] == '["--enforce-eager"]'
    assert "PUBLIC_KEY" not in str(d.resources()[0]["outputs"].get("env", {}))
    n = assert_no_orphans(d, emu)
    record(SECTION, "startSsh: RunPod injects PUBLIC_KEY into the pod env; refresh, preview, then an update",
           "refresh and preview showed no change; the in-place update carried PUBLIC_KEY over (SSH kept)", n)


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
    record(SECTION, "the pod is RUNNING but its services gave up (the agent's restart limit; `phase=failed`)",
           "refresh read it as not serving (a health probe, confirmed by the pod's log), preview showed an update, "
           "and `up` restarted the same pod and waited until it served", n)


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
    record(SECTION, "`up` finds the pod in ERROR", "the refresh recorded ERROR and `up` replaced the pod (delete, "
           "then a create through the GPU walk) instead of starting it; a further `up` changed nothing", n)


def test_destroy_when_pods_are_already_gone_or_stopped(engine_emulator, tmp_path, monkeypatch):
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch)  # both models
    d.up()
    gone, stopped = pod_id_in_state(d, "olmocr"), pod_id_in_state(d, "qwen3vl")
    emu.delete_pod_out_of_band(gone)
    emu.stop_pod_out_of_band(stopped)
    since = len(emu.requests)
    d.destroy()
    # destroy refreshes first: the deleted pod's read answers 404 and drops it; the stopped one is deleted.
    assert answers(emu, since, "GET", f"/v2/pods/{gone}")[:1] == [404]
    assert answers(emu, since, "DELETE", f"/v2/pods/{gone}") == []
    assert answers(emu, since, "DELETE", f"/v2/pods/{stopped}") == [204]
    assert emu.pods() == [] and d.resources() == []
    n = assert_no_orphans(d, emu)
    record(SECTION, "`destroy` with one pod already deleted and the other stopped outside Pulumi",
           "`destroy` succeeded: its refresh found the deleted pod gone (404) and dropped it, the stopped one "
           "was deleted", n)


def test_a_teammates_pods_named_like_ours_are_never_touched(engine_emulator, tmp_path, monkeypatch):
    """A teammate's stack of the same name on another backend, and stack `<name>-eu` vs model
    `eu-olmocr`: their pods look like ours by project, stack and model, but carry another token.
    `up`, `refresh`, `make pods` and `destroy` leave them alone."""
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    stack = d.name
    foreign = {create_foreign_pod(emu, name) for name in (
        f"runpod-deploy-{stack}-olmocr-k3v9x2q1-a1b2c3",     # same stack name elsewhere
        f"runpod-deploy-{stack}-olmocr-abc123",              # the old name form
        f"runpod-deploy-{stack}-eu-olmocr-z8y7x6w5-d4e5f6")}  # another (stack, model) pair
    d.up()
    d.refresh()
    mine = pod_id_in_state(d)
    assert {p["id"] for p in emu.pods()} == foreign | {mine}
    assert re.fullmatch(rf"runpod-deploy-{re.escape(stack)}-olmocr-[a-z0-9]{{8}}-[a-z0-9]{{6}}",
                        next(p["name"] for p in emu.pods() if p["id"] == mine))
    env = {**os.environ, **d.project.env, "PATH": search_path()}  # as `make pods` runs it
    out = subprocess.run([sys.executable, "-m", "runpod_deploy.run", "pods", "--stack", d.name,
                          "--work-dir", str(d.work_dir)], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert mine in out.stdout and not any(f in out.stdout for f in foreign)
    d.destroy()
    assert {p["id"] for p in emu.pods()} == foreign and d.resources() == []
    assert not [r for r in emu.requests if any(f in r["path"] for f in foreign)]  # not even a read
    record(SECTION, "3 foreign pods named like this stack's (same project/stack/model names, another backend; "
           "the old name form; stack `X` model `eu-olmocr`)",
           "`up`, `refresh`, `make pods` and `destroy` left all three alone (no call on them; `make pods` lists "
           "only this stack's pod): the orphan sweep matches this state's name token only", 0)
