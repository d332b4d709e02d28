"""Failures: what `up` and `destroy` do when RunPod, the pod or the operator fails them. Every failure
ends with one line that says what RunPod did, what it means for the pods and what to run next, holds
no traceback and no secret; a pod whose create failed is deleted (or adopted, when RunPod did create
it); nothing bills outside state, even after Ctrl-C or SIGKILL. Through the plain `pulumi` CLI
against the emulator. Rate limits: tests/engine/test_rate_limits.py; placement refusals:
tests/engine/test_placement.py.

Every test ends with the emulator's pods equal to the stack's state and records a row for
docs/reliability.md; every fault test also checks that its fault really fired.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from devkit.cli import CommandError, search_path
from runpod_provider.client import RunPodClient
from tests.engine.harness import (
    POD_PATH,
    answers,
    assert_no_orphans,
    background_up,
    check,
    deploy,
    dev_models,
    failing,
    fired,
    live_ids,
    one_model,
    pod_id_in_state,
    state_ids,
    wait_until_polled,
)
from tests.engine.reliability import leaked, live_pod_ids, record

SECTION = "failures"
OCI = "OCI runtime create failed: nvidia-container-cli: requirement error: unsatisfied condition: cuda>=13.0"


# --- one clear line, never a traceback ---------------------------------------------------------
@dataclass
class Case:
    name: str
    act: Callable  # (emu, st) -> the output of the failing command
    must: list[str]  # the cause first (its line is the one recorded), then the fix
    deployed: bool = False  # `up` first (for destroy-time faults)
    fix: Callable | None = None  # (emu, st) -> None: follow the printed fix; it must work
    destroy_args: tuple = ()  # how the printed fix says to run `destroy` again


def unreachable(emu, st):
    st.project.env["RUNPOD_API_URL"] = "http://127.0.0.1:9/v2"  # the discard port: nothing listens
    return failing(st.preview)


def volume_403(emu, st):
    emu.inject(kind="status", status=403, method="GET", path="/v2/network-volumes", count=None,
               detail="this key has no access to network volumes")
    return failing(st.preview)


def catalog(status):
    def act(emu, st):
        emu.inject(kind="status", status=status, method="GET", path="/v2/catalog", count=None)
        return failing(st.preview)
    return act


def create_429_hour(emu, st):
    emu.inject(kind="status", status=429, retry_after=3600, method="POST", path="/v2/pods$")
    return failing(st.up)


def key_revoked(emu, st):
    emu.api_keys = ("rpa_" + "0" * 32,)  # the key in the stack's config is revoked
    return failing(st.destroy)


def set_new_key(emu, st):
    st.set_config("runpod:apiKey", emu.api_keys[0], secret=True)


def deleted_while_waiting(emu, st):
    emu.set_service(ready=False)
    proc = background_up(st)
    pod_id = wait_until_polled(emu, proc)
    emu.delete_pod_out_of_band(pod_id)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode != 0
    return out


def delete_fault(**fault):
    def act(emu, st):
        emu.inject(method="DELETE", path="/v2/pods/", count=None, **fault)
        return failing(st.destroy)
    return act


def clear_faults(emu, st):
    emu.faults.clear()


CASES = [
    Case("RunPod unreachable at preview", unreachable,
         ["RunPod could not be reached", "no pod was created", "check the network connection", "pulumi preview"]),
    Case("403 on the network-volume lookup (a key without volume access)", volume_403,
         ["runpod-deploy:networkVolumeId: RunPod refused", "403", "no pod was created",
          "pulumi config set --secret runpod:apiKey"]),
    Case("GPU catalog answers 429 to every retry at preview", catalog(429),
         ["RunPod rate-limited the request (429", "no pod was created", "pulumi preview"]),
    Case("GPU catalog answers 500 to every retry at preview", catalog(500),
         ["RunPod failed on its side (500", "no pod was created", "pulumi preview"]),
    Case("create answered 429 with Retry-After: 3600 (an hour window)", create_429_hour,
         ["RunPod rate-limited the request (429, retry after 1 h)", "no pod was created", "wait 1 h",
          "pulumi up"]),
    Case("RunPod key revoked before `destroy`", key_revoked,
         ["RunPod refused the API key (403", "still in the stack's state", "pulumi config set --secret runpod:apiKey",
          "`pulumi destroy --run-program --refresh=false`"], deployed=True, fix=set_new_key,
         destroy_args=("--run-program", "--refresh=false")),
    Case("pod deleted in the console while `up` waits for it", deleted_while_waiting,
         ["disappeared while `pulumi up` waited", "nothing of it is in state or billing", "run `pulumi up`"]),
    Case("DELETE answered 409 (locked pod) during `destroy`", delete_fault(kind="status", status=409,
                                                                             detail="pod is locked"),
         ["RunPod refused the action (409: pod is locked)", "still in the stack's state", "pulumi destroy"],
         deployed=True, fix=clear_faults),
    Case("DELETE unreachable (connection dropped) during `destroy`", delete_fault(kind="drop"),
         ["RunPod could not be reached", "still in the stack's state", "pulumi destroy"],
         deployed=True, fix=clear_faults),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_failure_says_what_happened_and_what_to_do(engine_emulator, tmp_path, monkeypatch, teammate, case):
    emu = engine_emulator
    st = deploy(emu, tmp_path, monkeypatch, models=one_model(), extra={"readyTimeoutSeconds": 600})
    if case.deployed:
        st.up()
        assert len(state_ids(st)) == 1
    out = case.act(emu, st)
    line = check(emu, st, out, case.must, teammate, [emu.api_key])
    if case.fix:  # the printed fix works as printed
        case.fix(emu, st)
        st.destroy(*case.destroy_args)
        assert state_ids(st) == set() and live_ids(emu, teammate) == set()
    record(SECTION, case.name, f"one line: {line}", len(live_ids(emu, teammate) - state_ids(st)))


# --- Ctrl-C ------------------------------------------------------------------------------------
def test_ctrl_c_during_a_create_deletes_the_pod_before_the_prompt_returns(engine_emulator, tmp_path, monkeypatch,
                                                                          teammate):
    emu = engine_emulator
    emu.set_service(ready=False)  # the create is surely mid-wait when interrupted
    st = deploy(emu, tmp_path, monkeypatch, models={m: dev_models()[m] for m in ("olmocr", "qwen3vl")},
                extra={"readyTimeoutSeconds": 900})
    proc = background_up(st)
    wait_until_polled(emu, proc)
    while len(live_ids(emu, teammate)) < 2:  # both creates under way
        time.sleep(0.1)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends the CLI (plugins run in their own process groups)
    out, _ = proc.communicate(timeout=300)
    took = time.monotonic() - started
    assert proc.returncode != 0
    # When the prompt returns, nothing bills outside state: both pods were deleted, none is in state.
    assert live_ids(emu, teammate) == set() and state_ids(st) == set()
    line = check(emu, st, out, ["interrupted (Ctrl-C)", "was deleted", "run `pulumi up`"], teammate, [emu.api_key])
    assert "interrupted: deleting pod" in out and "make pods" in out  # said while it cleans up
    record(SECTION, "Ctrl-C (SIGINT to `pulumi up`) while two pods are being created",
           f"the waits stop at once, both pods are deleted before the CLI exits ({took:.0f} s); one line per pod: "
           f"{line}", len(live_ids(emu, teammate) - state_ids(st)))



# --- a create that fails after it created the pod ---------------------------------------------
CREATE_FAULTS = [
    # (case, models, faults, what the create's answer looks like in the request log)
    ("create answers 500 after creating the pod (both models' creates)", ["olmocr", "qwen3vl"],
     [dict(kind="after_effect", status=500, count=2)], 500),
    ("create's connection dropped after creating the pod", ["olmocr"],
     [dict(kind="after_effect", drop=True)], None),
    # The adoption window (60 s) outlasts the listing lag: adopted during the same create.
    ("create answers 503 after creating the pod, which is listed only 8 s later", ["olmocr"],
     [dict(kind="after_effect", status=503), dict(kind="list_lag", seconds=8, method="POST", path="/v2/pods")], 503),
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
           "found the pod by its unique name (up to 60 s) and adopted it; "
           f"{len(pods)} pod(s) for {len(models)} model(s), no second create", n)


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



# --- transient faults during the readiness wait are not the pod's fault ---------------------------
def test_transient_faults_during_the_readiness_wait_are_ridden_out(engine_emulator, tmp_path, monkeypatch, teammate):
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    emu.inject(kind="drop", method="GET", path=POD_PATH, count=2)
    emu.inject(kind="delay", seconds=2, method="GET", path=POD_PATH, count=2)
    emu.inject(kind="status", status=429, retry_after=1, method="GET", path=POD_PATH, count=24)
    emu.inject(kind="status", status=503, method="GET", path=POD_PATH, count=6)
    emu.inject(kind="drop", path="/proxy/", count=4)
    emu.inject(kind="delay", seconds=12, path="/proxy/", count=1)  # past the probe's 10 s timeout
    emu.inject(kind="delay", seconds=2, path="/proxy/", count=2)
    up = d.up()
    fired(emu)
    polls = answers(emu, method="GET", path=POD_PATH)
    assert polls[:2] == [None, None] and polls[-1] == 200, polls
    assert polls.count(429) == 24 and polls.count(503) == 6, polls
    [pod] = [p for p in emu.pods() if p["id"] != teammate]
    assert pod["status"] == "RUNNING" and up.outputs["olmocr_pod_id"].value == pod["id"]
    assert [r for r in emu.requests if r["method"] == "DELETE"] == []  # the same pod, none deleted
    check(emu, d, up.stdout, ["ready after"], teammate, [emu.api_key])
    n = len(live_ids(emu, teammate) - state_ids(d))
    record(SECTION, "readiness wait: 2 dropped, 2 slow (2 s), 24 x 429 and 6 x 503 pod reads; 4 dropped, 1 timed-out "
           "(12 s) and 2 slow proxy probes", "the wait went on (RunPod's refusals and probe failures are 'not ready "
           f"yet', within the wait's own deadline); `up` succeeded with the same pod after {len(polls)} pod reads, "
           "none deleted", n)


# --- the startup fails, stalls or never serves -------------------------------------------------
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




def test_a_start_that_prints_an_error_fails_fast_with_the_log_tail(engine_emulator, tmp_path, monkeypatch):
    """With log event ids at one-second resolution and no suffix (the spec: ids "are the event `ts`
    timestamp"), `error=` and `phase=failed` arrive in the same second: told apart by id, text and
    position, the second line is not dropped as a repeat."""
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
    assert "runpod-deploy phase=install-vllm" in msg  # the log tail travels with the error
    assert emu.pods() == [] and took < 120
    n = assert_no_orphans(d, emu)
    record(SECTION, "the startup prints `runpod-deploy error=` and ends setup, with `error=` and `phase=failed` in the "
           "same second and one-second log ids",
           f"`up` failed at once ({took:.0f} s; stall timeout 600 s) with the error and the log tail; pod deleted", n)


SILENCES = {
    "download": ("the startup goes silent during the model download (no new log line)",
                 lambda emu: setattr(emu.world, "startup", {"mode": "hang", "phase": "download-model"})),
    "provisioning": ("PROVISIONING for 8 s (an image pull) without any log line",
                     lambda emu: emu.world.delays.update(provision=8.0)),
}


@pytest.mark.parametrize("where", list(SILENCES))
def test_a_start_that_goes_silent_fails_after_the_stall_timeout(engine_emulator, tmp_path, monkeypatch, where):
    emu = engine_emulator
    case, silence = SILENCES[where]
    silence(emu)
    d = deploy(emu, tmp_path, monkeypatch, models=one_model(), extra={"readyStallSeconds": 3})
    with pytest.raises(CommandError) as e:
        d.up()
    msg = str(e.value)
    assert "no progress" in msg and "it was deleted" in msg
    assert emu.pods() == []
    n = assert_no_orphans(d, emu)
    record(SECTION, case, "`up` failed after the stall timeout (3 s here, 10 min by default), pod deleted", n)


def test_a_slow_start_that_keeps_printing_progress_is_not_a_failure(engine_emulator, tmp_path, monkeypatch):
    """8 s of PROVISIONING with a system pull line every second (15 min pulls are seen live), then 8 s
    of the agent's progress lines: each longer than the 3 s stall timeout."""
    emu = engine_emulator
    emu.world.delays["provision"] = 8.0
    emu.world.pull_line_every = 1.0
    emu.world.startup = {"mode": "slow", "seconds": 8.0}
    d = deploy(emu, tmp_path, monkeypatch, models=one_model(), extra={"readyStallSeconds": 3})
    up = d.up()
    [pod] = emu.pods()
    assert pod["status"] == "RUNNING" and up.outputs["olmocr_pod_id"].value == pod["id"]
    n = assert_no_orphans(d, emu)
    record(SECTION, "slow first start: PROVISIONING for 8 s with a pull line a second, then progress lines for 8 s; "
           "stall timeout 3 s", "`up` waited (each system pull line and each agent line resets the stall clock) and "
           "succeeded", n)


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
           "create", "`up` failed with the status and RunPod's reason line; the pod was deleted", n)


# --- `up` killed with SIGKILL in the middle of a create ----------------------------------------
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


# Two of the four (kill, recovery) pairs: between them every assertion of the grid runs (the provider
# that outlives its engine and `--clear-pending-creates`; the orphan sweep and the stale pending create).
@pytest.mark.parametrize("kill,recovery", [("process group", RECOVERIES[0]), ("whole tree", RECOVERIES[1])])
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


