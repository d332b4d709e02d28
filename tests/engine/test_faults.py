"""Issue 8: the real program and engine under RunPod's bad days, injected by the emulator.

Every test ends with `assert_no_orphans`: the pods alive on the emulator are exactly the Pod
resources in the stack's state (nothing billing that `pulumi destroy` would not remove, nothing in
state that is gone). Every test also checks that its fault really fired (the emulator's request
log, or the fault being consumed), so a fault that never matched cannot pass as "handled".

With env RELIABILITY_REPORT=<file> each test appends its row to docs/reliability.md's table
(see scripts/reliability_report.py).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from devkit.cli import CommandError, search_path
from runpod_provider.client import RunPodClient
from tests.engine.harness import deploy, dev_models
from tests.engine.reliability import leaked, live_pod_ids, record, state_pod_ids

SECTION = "faults"
POD_PATH = r"/v2/pods/[a-z0-9]+$"  # GET /v2/pods/<id>: the readiness poll, refresh's read, delete's wait


def one_model(**overrides) -> dict:
    m = dev_models()["olmocr"]
    m.update(overrides)
    return {"olmocr": m}


def assert_no_orphans(d, emu) -> int:
    """The emulator's live pods are exactly the stack's Pod resources; returns the leaked count (0)."""
    live, state = live_pod_ids(emu), state_pod_ids(d)
    assert live == state, f"live pods {sorted(live)} != pods in state {sorted(state)}"
    return leaked(d, emu)


def answers(emu, since: int = 0, method: str | None = None, path: str | None = None) -> list:
    """The statuses the emulator answered (None = connection dropped), oldest first."""
    return [r["status"] for r in emu.requests[since:]
            if (method is None or r["method"] == method) and (path is None or re.fullmatch(path, r["path"]))]


def fired(emu) -> None:
    """Every injected fault was consumed, i.e. really hit a request."""
    assert emu.faults.pending() == [], f"faults that never fired: {emu.faults.pending()}"


def pod_id_in_state(d, model: str = "olmocr") -> str:
    [r] = [r for r in d.resources() if r["urn"].endswith(f"::{model}")]
    return r["id"]


# --- 1. a create that fails after it created the pod ---------------------------------------------
CREATE_FAULTS = [
    # (case, models, faults, what the create's answer looks like in the request log)
    ("create answers 500 after creating the pod (both models' creates)", ["olmocr", "qwen3vl"],
     [dict(kind="after_effect", status=500, count=2)], 500),
    ("create's connection dropped after creating the pod", ["olmocr"],
     [dict(kind="after_effect", drop=True)], None),
    ("create answers 503 after creating the pod, which is listed only 2 s later", ["olmocr"],
     [dict(kind="after_effect", status=503), dict(kind="list_lag", seconds=2, method="POST", path="/v2/pods")], 503),
]


@pytest.mark.parametrize("case,models,faults,answer", CREATE_FAULTS, ids=[c[0] for c in CREATE_FAULTS])
def test_a_create_that_fails_after_creating_the_pod_adopts_it(engine_emulator, tmp_path, monkeypatch,
                                                              case, models, faults, answer):
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch, models={m: dev_models()[m] for m in models})
    for f in faults:
        emu.inject(**({"method": "POST", "path": "/v2/pods$"} | f))
    up = d.up()
    fired(emu)
    assert answers(emu, method="POST", path="/v2/pods") == [answer] * len(models)  # one create per model
    assert answers(emu, method="DELETE") == []  # nothing had to be cleaned up
    pods = emu.pods()
    assert len(pods) == len(models)
    for m in models:
        [pod] = [p for p in pods if p["name"].startswith(f"runpod-deploy-{d.name}-{m}-")]
        assert pod_id_in_state(d, m) == pod["id"] == up.outputs[f"{m}_pod_id"].value
        assert pod["status"] == "RUNNING"
    n = assert_no_orphans(d, emu)
    record(SECTION, case, f"`up` succeeded: the create answered {answer or 'nothing (dropped)'}, the provider "
           f"found the pod by its unique name and adopted it; {len(pods)} pod(s) for {len(models)} model(s), "
           "no second create", n)


def test_a_create_whose_pod_is_listed_late_is_still_adopted_by_the_same_up(engine_emulator, tmp_path, monkeypatch):
    """The provider's adoption window for creates (60 s) outlasts a listing lag of 8 s: the pod in
    doubt is adopted during the create, so it never bills outside state."""
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    emu.inject(kind="after_effect", status=500, method="POST", path="/v2/pods$")
    emu.inject(kind="list_lag", seconds=8, method="POST", path="/v2/pods$")
    up = d.up()
    fired(emu)
    [pod] = emu.pods()
    assert up.outputs["olmocr_pod_id"].value == pod["id"] == pod_id_in_state(d)
    assert [r for r in emu.requests if r["method"] == "POST" and r["path"] == "/v2/pods"][0]["status"] == 500
    n = assert_no_orphans(d, emu)
    record(SECTION, "create answers 500 after creating the pod, which is listed only 8 s later",
           "`up` succeeded: the provider kept looking for the pod by its unique name (up to 60 s) and adopted "
           "it during the same create", n)


def test_a_create_whose_pod_is_listed_too_late_to_adopt_is_swept_by_the_next_up(engine_emulator, tmp_path, monkeypatch):
    """The adoption window (shortened to 5 s here) is shorter than the list lag (20 s): this `up`
    cannot know the create took effect. The same GPU is tried once more (createPod's guidance), with
    the same result, and no other GPU has stock. The pods carry the resource's name prefix, so the
    next `up` deletes them."""
    emu = engine_emulator
    for gpu in ("NVIDIA A100 80GB PCIe", "NVIDIA GeForce RTX 4090"):
        emu.set_stock("EU-RO-1", gpu, "NONE")
    d = deploy(emu, tmp_path, monkeypatch, models=one_model(), env={"RUNPOD_DEPLOY_ADOPT_WAIT_S": "5"})
    emu.inject(kind="after_effect", status=500, method="POST", path="/v2/pods$", count=2)
    emu.inject(kind="list_lag", seconds=20, method="POST", path="/v2/pods$", count=2)  # past both windows
    with pytest.raises(CommandError) as e:
        d.up()
    fired(emu)
    lost = emu.pods()
    assert len(lost) == 2 and len({p["name"] for p in lost}) == 1
    assert answers(emu, method="POST", path="/v2/pods") == [500, 500, 400, 400]
    msg = str(e.value)
    # The error says the outcome is unknown, names the pod, and says how it gets cleaned up.
    assert f"the create of pod {lost[0]['name']} failed" in msg and "500" in msg
    assert "may still have created it" in msg and "Run `pulumi up` again" in msg
    assert d.resources() == []
    leaked_after_failure = leaked(d, emu)
    assert leaked_after_failure == 2
    # Once RunPod lists them, the next `up` sweeps them and creates the one pod.
    for gpu in ("NVIDIA A100 80GB PCIe", "NVIDIA GeForce RTX 4090"):
        emu.set_stock("EU-RO-1", gpu, "HIGH")
    with RunPodClient(emu.api_key, emu.api_url) as c:
        deadline = time.monotonic() + 120
        while not {p["id"] for p in lost} <= {p.id for p in c.list_pods()}:
            assert time.monotonic() < deadline, "the lagging pods never appeared in the list"
            time.sleep(0.5)
    since = len(emu.requests)
    d.up()
    for p in lost:
        assert answers(emu, since, "DELETE", f"/v2/pods/{p['id']}") == [204]
    [pod] = emu.pods()
    assert pod["id"] not in {p["id"] for p in lost} and pod_id_in_state(d) == pod["id"]
    n = assert_no_orphans(d, emu)
    record(SECTION, "create answers 500 after creating the pod, twice (the walk tries the same GPU once more), each "
           "listed only 20 s later, past an adoption window shortened to 5 s; no other GPU in stock",
           f"`up` failed saying the create's outcome is unknown, naming the pod and the fix; it left "
           f"{leaked_after_failure} pods outside state (`destroy` would not see them); the next `up` deleted them as "
           "orphans (name prefix) and created one pod", n, before_recovery=leaked_after_failure)


def test_a_5xx_create_is_tried_once_more_on_the_same_gpu_then_the_walk_moves_on(engine_emulator, tmp_path,
                                                                                 monkeypatch):
    """createPod answers 503 (nothing created) for the L40S, twice: after the adoption search finds
    nothing, the same GPU is tried once more, then the A100."""
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch, models=one_model(), env={"RUNPOD_DEPLOY_ADOPT_WAIT_S": "2"})
    emu.inject(kind="status", status=503, method="POST", path="/v2/pods$", count=2)
    up = d.up()
    fired(emu)
    assert answers(emu, method="POST", path="/v2/pods") == [503, 503, 201]
    assert up.outputs["olmocr_gpu_type"].value == "NVIDIA A100 80GB PCIe"
    assert "trying NVIDIA L40S once more" in up.stdout
    n = assert_no_orphans(d, emu)
    record(SECTION, "create answers 503 twice for the L40S (nothing created)",
           "after the adoption search found nothing, the L40S was tried once more (createPod's guidance), then the "
           "walk moved on and placed the pod on the A100", n)


# --- 2. rate limits and server errors during up, refresh, destroy ---------------------------------
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


# --- 3. drops and slow answers while waiting for readiness ----------------------------------------
def test_drops_and_slow_answers_during_the_readiness_wait(engine_emulator, tmp_path, monkeypatch):
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    emu.inject(kind="drop", method="GET", path=POD_PATH, count=2)
    emu.inject(kind="delay", seconds=2, method="GET", path=POD_PATH, count=2)
    emu.inject(kind="drop", path="/proxy/", count=4)
    emu.inject(kind="delay", seconds=12, path="/proxy/", count=1)  # past the probe's 10 s timeout
    emu.inject(kind="delay", seconds=2, path="/proxy/", count=2)
    up = d.up()
    fired(emu)
    polls = answers(emu, method="GET", path=POD_PATH)
    assert polls[:2] == [None, None] and polls[-1] == 200, polls
    [pod] = emu.pods()
    assert pod["status"] == "RUNNING" and up.outputs["olmocr_pod_id"].value == pod["id"]
    n = assert_no_orphans(d, emu)
    record(SECTION, "readiness wait: 2 dropped and 2 slow (2 s) pod reads; 4 dropped, 1 timed-out (12 s) and "
           "2 slow proxy probes", f"the wait went on (dropped reads retried, probe failures = not ready yet); "
           f"`up` succeeded after {len(polls)} pod reads", n)


# --- 4. readiness never comes ----------------------------------------------------------------------
def test_a_pod_that_never_serves_is_deleted_and_the_next_up_succeeds(engine_emulator, tmp_path, monkeypatch):
    emu = engine_emulator
    emu.set_service(ready=False)
    d = deploy(emu, tmp_path, monkeypatch, models=one_model(), extra={"readyTimeoutSeconds": 3})
    with pytest.raises(CommandError) as e:
        d.up()
    msg = str(e.value)
    assert "never became ready" in msg and "it was deleted" in msg
    assert "runpod-deploy phase=" in msg  # the last log lines travel with the error
    [create] = [r for r in emu.requests if r["method"] == "POST" and r["path"] == "/v2/pods"]
    [deleted] = [r["path"].rsplit("/", 1)[1] for r in emu.requests if r["method"] == "DELETE"]
    assert emu.pods() == [] and d.resources() == []
    failed_leak = assert_no_orphans(d, emu)
    # The service comes back: the next `up` creates a fresh pod and nothing else.
    emu.set_service(ready=True)
    d.up()
    [pod] = emu.pods()
    assert pod["id"] != deleted
    n = assert_no_orphans(d, emu)
    record(SECTION, "readiness never comes (services answer 502; readyTimeoutSeconds 3)",
           f"`up` failed naming the pod, the reason and its last log lines; the pod was deleted "
           f"({failed_leak} left); the next `up`, services healthy, created one pod", n)


# --- 5. `up` killed with SIGKILL in the middle of a create ----------------------------------------
def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, pgid, state) of every process, from /proc."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(stat.parent.name)] = (int(fields[1]), int(fields[2]), fields[0])
    return out


def _descendants(pid: int) -> set[int]:
    procs, found, todo = _processes(), set(), [pid]
    while todo:
        parent = todo.pop()
        children = {p for p, (ppid, _, _) in procs.items() if ppid == parent} - found
        found |= children
        todo += children
    return found


def _alive(pids) -> set[int]:
    procs = _processes()
    return {p for p in pids if p in procs and procs[p][2] != "Z"}


def _kill(pids) -> None:
    """SIGKILL these pids, each only if it is still one of the Pulumi processes this test started."""
    for p in pids:
        try:
            if b"pulumi" in Path(f"/proc/{p}/cmdline").read_bytes():
                os.kill(p, signal.SIGKILL)
        except (ProcessLookupError, FileNotFoundError):
            pass


def _pending_operations(d) -> list[dict]:
    """The stack checkpoint's pending operations, read with the CLI (what the backend really holds)."""
    return d.export()["deployment"].get("pending_operations") or []


KILLS = {
    # Ctrl-C's harsher cousin: the `pulumi up` process group (CLI, language host, program). Pulumi
    # starts provider plugins in their own process groups, so the dynamic provider outlives it, mid-create.
    "process group": "the `pulumi up` process group (CLI, language host, program)",
    # A machine or container dying: the provider dies too, so nothing can clean up but the next create.
    "whole tree": "the whole process tree, provider included (as if the machine died)",
}
# The file backend keeps the killed update's lock: `pulumi cancel` removes it (the first step of both).
RECOVERIES = ["pulumi cancel, pulumi refresh --clear-pending-creates, up", "pulumi cancel, up"]


@pytest.mark.parametrize("recovery", RECOVERIES)
@pytest.mark.parametrize("kill", list(KILLS))
def test_up_killed_mid_create_recovers_without_a_duplicate(engine_emulator, tmp_path, monkeypatch, kill, recovery):
    emu = engine_emulator
    emu.set_service(ready=False)  # the create cannot finish: it is surely mid-way when killed
    d = deploy(emu, tmp_path, monkeypatch, models=one_model(), extra={"readyTimeoutSeconds": 900})
    env = {**os.environ, **d.project.env, "PATH": search_path()}  # PULUMI_* from the backend fixture
    log_path = tmp_path / "killed-up.log"
    spawned: set[int] = set()
    try:
        with log_path.open("w") as log:
            proc = subprocess.Popen(["pulumi", "up", "--yes", "--skip-preview", "--stack", d.name],
                                    cwd=d.work_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            pgid = os.getpgid(proc.pid)
            try:
                deadline = time.monotonic() + 300
                # Wait for the create to be sent and the readiness wait to be polling the new pod.
                while not (emu.pods() and answers(emu, method="GET", path=POD_PATH)):
                    assert proc.poll() is None, log_path.read_text()
                    assert time.monotonic() < deadline, "the create never started"
                    time.sleep(0.2)
                spawned = _descendants(proc.pid)
                if kill == "whole tree":
                    # Freeze the engine first, so it cannot record the provider's death as a failed
                    # create (a machine dying gives it no such chance); then the provider, then the rest.
                    os.killpg(pgid, signal.SIGSTOP)
                    _kill(spawned)
            finally:
                os.killpg(pgid, signal.SIGKILL)
                proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        deadline = time.monotonic() + 60
        while any(p[1] == pgid and p[2] != "Z" for p in _processes().values()):
            assert time.monotonic() < deadline, "the `pulumi up` process group is still alive after SIGKILL"
            time.sleep(0.2)
        survivors = _alive(spawned)
        if kill == "whole tree":
            assert survivors == set()
        # The pod the killed create made (a surviving provider may delete it any time now).
        killed_id = next(r["path"].rsplit("/", 1)[1] for r in emu.requests if re.fullmatch(POD_PATH, r["path"]))
        assert len(answers(emu, method="POST", path="/v2/pods")) == 1
        assert d.resources() == []  # the state never learnt the pod's id...
        pending_ops = _pending_operations(d)  # ...only that a create of it was under way
        assert len(pending_ops) == 1, (
            f"pending operations {pending_ops}; the killed up's output:\n{log_path.read_text()}")
        [pending] = pending_ops
        assert pending["type"] == "creating" and pending["resource"]["type"].endswith("runpod:Pod")
        leaked_after_kill = leaked(d, emu)
        if kill == "whole tree":
            time.sleep(2)  # nothing is left that could delete it
            assert live_pod_ids(emu) == {killed_id} and leaked(d, emu) == leaked_after_kill == 1

        emu.set_service(ready=True)
        since = len(emu.requests)

        with pytest.raises(CommandError, match="locked"):  # why `pulumi cancel` comes first
            d.up()
        d.cancel()
        if "refresh" in recovery:
            d.refresh("--clear-pending-creates")
            assert _pending_operations(d) == []
        recovered = d.up()
        swept = f"deleting orphan pod {killed_id}" in recovered.stdout
        stale = _pending_operations(d)
        if "refresh" in recovery:
            assert stale == []
        else:
            # `up` does not clear a pending create (it warns about it): harmless, as a further `up`
            # shows, and `refresh --clear-pending-creates` drops it.
            assert [op["type"] for op in stale] == ["creating"]
            before = len(emu.requests)
            again = d.up()
            assert set(again.changes) == {"same"}, again.changes
            assert [r for r in emu.requests[before:] if r["method"] in ("POST", "PATCH", "DELETE")] == []
        assert 204 in answers(emu, 0, "DELETE", f"/v2/pods/{killed_id}")  # gone, by the sweep or the survivor
        if kill == "whole tree":
            assert swept and answers(emu, since, "DELETE", f"/v2/pods/{killed_id}") == [204]  # the orphan sweep
        assert len(answers(emu, since, "POST", "/v2/pods")) == 1
        [pod] = emu.pods()
        assert pod["id"] != killed_id and pod["status"] == "RUNNING"
        assert pod_id_in_state(d) == pod["id"]
        n = assert_no_orphans(d, emu)
    finally:
        _kill(_alive(spawned))  # a provider that outlived the kill waits forever for its engine
    how = ("the recovery `up` deleted the killed create's pod as an orphan (its name prefix)" if swept else
           "the killed create's pod was deleted by its own provider, which outlived the kill (its next "
           "report to the dead engine failed)")
    if kill == "process group":
        how += (f"; the provider plugin ({len(survivors)} processes: launcher, python; Pulumi starts plugins "
                "in their own process group) then idles forever: the test killed it")
    record(SECTION, f"`up` killed with SIGKILL mid-create (pod created, readiness wait running): {KILLS[kill]}; "
           f"recovery: {recovery}",
           f"no duplicate: {how}; the recovery `up` created one pod, which is in state"
           + ("" if "refresh" in recovery else "; the stale pending create stays in the checkpoint (a warning) "
              "until `refresh --clear-pending-creates`, and a further `up` changes nothing"),
           n, before_recovery=leaked_after_kill)


# --- 6. pods changed outside Pulumi ---------------------------------------------------------------
def test_a_pod_deleted_outside_pulumi_is_recreated(engine_emulator, tmp_path, monkeypatch):
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    d.up()
    gone = pod_id_in_state(d)
    emu.delete_pod_out_of_band(gone)
    d.refresh()
    assert d.resources() == []  # refresh dropped it
    d.up()
    [pod] = emu.pods()
    assert pod["id"] != gone and pod_id_in_state(d) == pod["id"] and pod["status"] == "RUNNING"
    n = assert_no_orphans(d, emu)
    record(SECTION, "pod deleted outside Pulumi (console)",
           "`refresh` dropped it from state; `up` created a new one", n)


def test_a_pod_stopped_outside_pulumi_is_started_again(engine_emulator, tmp_path, monkeypatch):
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())  # running: true (the default)
    d.up()
    pod_id = pod_id_in_state(d)
    emu.stop_pod_out_of_band(pod_id)
    d.refresh()
    [r] = d.resources()
    assert r["id"] == pod_id and r["outputs"]["running"] is False and r["outputs"]["status"] == "EXITED"
    since = len(emu.requests)
    up = d.up()
    assert up.changes.get("update") == 1
    assert ("POST", f"/v2/pods/{pod_id}/action") in [(x["method"], x["path"]) for x in emu.requests[since:]]
    assert answers(emu, since, "POST", "/v2/pods") == []  # started, not recreated
    [pod] = emu.pods()
    assert pod["id"] == pod_id and pod["status"] == "RUNNING"
    [r] = d.resources()
    assert r["outputs"]["running"] is True
    n = assert_no_orphans(d, emu)
    record(SECTION, "pod stopped outside Pulumi (console)",
           "`refresh` recorded running: false; `up` (config running: true) started the same pod again", n)


# --- 7. destroy when pods are already gone -------------------------------------------------------
def test_destroy_when_pods_are_already_gone_or_stopped(engine_emulator, tmp_path, monkeypatch):
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch)  # both models
    d.up()
    gone, stopped = pod_id_in_state(d, "olmocr"), pod_id_in_state(d, "qwen3vl")
    emu.delete_pod_out_of_band(gone)
    emu.stop_pod_out_of_band(stopped)
    since = len(emu.requests)
    d.destroy()
    # destroy refreshes first (Pulumi.yaml `refresh: always`): the deleted pod's read answers 404
    # and drops it; the stopped one is deleted.
    assert answers(emu, since, "GET", f"/v2/pods/{gone}")[:1] == [404]
    assert answers(emu, since, "DELETE", f"/v2/pods/{gone}") == []
    assert answers(emu, since, "DELETE", f"/v2/pods/{stopped}") == [204]
    assert emu.pods() == [] and d.resources() == []
    n = assert_no_orphans(d, emu)
    record(SECTION, "`destroy` with one pod already deleted and the other stopped outside Pulumi",
           "`destroy` succeeded: its refresh found the deleted pod gone (404) and dropped it, the stopped one "
           "was deleted", n)
