"""Issues 13, 14 §3 and 16 (wake): the pod lifecycle as the live v2 API behaves, through the plain
`pulumi` CLI against the emulator playing it.

The emulator plays, by default: a pod that reads EXITED for a while after `start`, and the *old*
container (still RUNNING, still answering through the proxy) for a while after a PATCH that resets
it (`reset_lag`); `PUBLIC_KEY` injected by `startSsh`; capacity 400s in several wordings. Other
behaviours are switched on per test. Every test ends by comparing the emulator's pods with the
stack's state (`assert_no_orphans`) and records a row for docs/reliability.md.
"""

from __future__ import annotations

import re
import time

import pytest
import requests

from devkit.cli import CommandError
from tests.engine.harness import deploy
from tests.engine.reliability import leaked, record
from tests.engine.test_faults import answers, assert_no_orphans, fired, one_model, pod_id_in_state

SECTION = "lifecycle"
POD_PATH = r"/v2/pods/[a-z0-9]+$"
# A capacity wording seen live (dstackai/dstack#1740), other than the one the client once matched.
LATER = "There are no longer any instances available with the request specifications. Please try again later."


def mutations(emu, since: int = 0) -> list[tuple[str, str, int | None]]:
    return [(r["method"], r["path"], r["status"]) for r in emu.requests[since:]
            if r["method"] in ("POST", "PATCH", "DELETE")]


def health_now(emu, pod_id: str) -> int:
    """What the (emulated) proxy answers on vLLM's /health right now."""
    url = emu.proxy_url.format(pod_id=pod_id, port=8000) + "/health"
    return requests.get(url, headers={"User-Agent": "lifecycle-test"}, timeout=10).status_code


# --- §1: after an action or a PATCH, wait for proof of a new boot ----------------------------------
@pytest.mark.parametrize("during_reset", ["RUNNING", "EXITED"])
def test_an_in_place_update_waits_for_the_new_boot(engine_emulator, tmp_path, monkeypatch, during_reset):
    """While RunPod resets the pod after a PATCH, it shows the old container (RUNNING, old
    startedAt, the old vLLM answering) or EXITED for a while. `up` must neither trust the old
    container's health nor start the pod (409)."""
    emu = engine_emulator
    emu.world.reset_lag, emu.world.patch_lag_status = 2.0, during_reset
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    d.up()
    pod_id = pod_id_in_state(d)
    before = emu.pods()[0]["startedAt"]
    d.write_config({**d.config, "models": one_model(vllmArgs=["--enforce-eager"])})
    since = len(emu.requests)
    up = d.up()
    assert up.changes.get("update") == 1
    assert health_now(emu, pod_id) == 200  # `up` returned once the NEW container served
    [pod] = emu.pods()
    assert pod["id"] == pod_id and pod["status"] == "RUNNING" and pod["startedAt"] != before
    assert pod["env"]["VLLM_EXTRA_ARGS_JSON"] == '["--enforce-eager"]'
    assert [(m, p) for m, p, _ in mutations(emu, since)] == [("PATCH", f"/v2/pods/{pod_id}")]  # no start, no 409
    n = assert_no_orphans(d, emu)
    record(SECTION, f"in-place update: for 2 s after the PATCH the pod reads {during_reset}"
           + (" with the old container still answering" if during_reset == "RUNNING" else ""),
           "`up` sent one PATCH (no start), waited for a new boot (startedAt/uptime, status walk) before "
           "probing, and returned with the new container serving", n)


def test_wake_a_pod_stopped_by_itself_with_a_plain_up(engine_emulator, tmp_path, monkeypatch):
    """Issue 16: a pod stopped through the API (as its idle auto-stop does) while the config says
    running. A plain `pulumi up` (the project refreshes first) starts the same pod and waits until
    it serves, though it reads EXITED for a while after the start."""
    emu = engine_emulator
    emu.world.reset_lag = 2.0
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    d.up()
    pod_id = pod_id_in_state(d)
    emu.stop_pod_out_of_band(pod_id, reason="runpod-deploy: idle for 30 min: stopping this pod")
    since = len(emu.requests)
    up = d.up()
    assert up.changes.get("update") == 1 and "create" not in up.changes and "replace" not in up.changes
    assert health_now(emu, pod_id) == 200
    [pod] = emu.pods()
    assert pod["id"] == pod_id and pod["status"] == "RUNNING"
    assert [(m, p) for m, p, _ in mutations(emu, since)] == [("POST", f"/v2/pods/{pod_id}/action")]
    assert up.outputs["olmocr_pod_id"].value == pod_id
    n = assert_no_orphans(d, emu)
    record(SECTION, "wake: the pod stopped itself (idle stop) while the config says running; plain `pulumi up`",
           "`up` (refresh first) saw it stopped, started the same pod (it read EXITED for 2 s after the "
           "start) and waited until it served; same id, no replacement", n)


def test_wake_when_the_host_gpu_was_taken_says_so_and_keeps_the_pod(engine_emulator, tmp_path, monkeypatch):
    """With `wakeWithoutGpu: fail` (the default replaces the pod: tests/engine/test_live3.py)."""
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
    assert "still there, stopped" in msg and "pulumi up --replace" in msg
    assert "deleted" not in msg
    [pod] = emu.pods()
    assert pod["id"] == pod_id and pod["status"] == "EXITED"
    n = assert_no_orphans(d, emu)
    record(SECTION, "wake with `wakeWithoutGpu: fail`: the stopped pod's host GPU was rented out meanwhile (start "
           "answers 400)",
           "`up` failed saying the GPU on the pod's host is taken, that the pod is kept stopped and in "
           "state, and how to replace it (`pulumi up --replace`)", n)


# --- issue 14 §3: a plain `up` acts on the world as it is ------------------------------------------
def test_a_plain_up_recreates_a_pod_deleted_outside_pulumi(engine_emulator, tmp_path, monkeypatch):
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    d.up()
    gone = pod_id_in_state(d)
    emu.delete_pod_out_of_band(gone)
    up = d.up()
    assert up.changes.get("create") == 1
    [pod] = emu.pods()
    assert pod["id"] != gone and pod["status"] == "RUNNING" and pod_id_in_state(d) == pod["id"]
    n = assert_no_orphans(d, emu)
    record(SECTION, "plain `pulumi up` after the pod was deleted in the console",
           "`up` (refresh first) dropped it from state and created a new pod", n)


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


def test_a_no_op_up_reads_each_pod_once_and_changes_nothing(engine_emulator, tmp_path, monkeypatch):
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch)  # both models
    d.up()
    ids = {pod_id_in_state(d, m) for m in ("olmocr", "qwen3vl")}
    since = len(emu.requests)
    up = d.up()
    assert set(up.changes) == {"same"}
    assert mutations(emu, since) == []
    reads = [r["path"].rsplit("/", 1)[1] for r in emu.requests[since:]
             if r["method"] == "GET" and re.fullmatch(POD_PATH, r["path"])]
    assert sorted(reads) == sorted(ids)  # exactly one GET per pod
    n = assert_no_orphans(d, emu)
    record(SECTION, "no-op `pulumi up` with refresh-before-update (2 pods)",
           f"{len(reads)} pod reads (one per pod), no create/update/delete call", n)


# --- §2: every placement answer moves the GPU walk on ----------------------------------------------
def test_a_pool_403_and_a_differently_worded_400_move_the_walk_on(engine_emulator, tmp_path, monkeypatch):
    emu = engine_emulator
    emu.deny_pool("NVIDIA L40S")
    emu.set_stock("EU-RO-1", "NVIDIA A100 80GB PCIe", "NONE")
    emu.world.capacity_details = [LATER]
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    up = d.up()
    assert answers(emu, method="POST", path="/v2/pods") == [403, 400, 201]
    assert up.outputs["olmocr_gpu_type"].value == "NVIDIA GeForce RTX 4090"
    n = assert_no_orphans(d, emu)
    record(SECTION, "create: L40S answers 403 (pool access), A100 a 400 worded \"…Please try again later.\"",
           "the walk went on to the RTX 4090 and created the pod there", n)


def test_catalog_stock_is_a_hint_not_a_veto(engine_emulator, tmp_path, monkeypatch):
    """The catalog lags: it says NONE for the L40S while a create there succeeds."""
    emu = engine_emulator
    emu.set_catalog_stock("EU-RO-1", "NVIDIA L40S", "NONE")
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    up = d.up()
    assert up.outputs["olmocr_gpu_type"].value == "NVIDIA L40S"
    stock_reads = [r["query"] for r in emu.requests
                   if r["path"] == "/v2/catalog/gpus" and "minCudaVersion" in r["query"]]
    assert stock_reads and {q["minCudaVersion"] for q in stock_reads} == {"12.8"}  # §7: what the create can get
    n = assert_no_orphans(d, emu)
    record(SECTION, "catalog says NONE for the L40S (lagging) while a create there succeeds",
           "the L40S was still asked for and the pod placed on it; the stock read carried minCudaVersion 12.8", n)


def test_when_every_candidate_fails_one_error_lists_each(engine_emulator, tmp_path, monkeypatch):
    emu = engine_emulator
    emu.deny_pool("NVIDIA L40S")
    for gpu in ("NVIDIA A100 80GB PCIe", "NVIDIA GeForce RTX 4090"):
        emu.set_stock("EU-RO-1", gpu, "NONE")
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    with pytest.raises(CommandError) as e:
        d.up()
    msg = str(e.value)
    assert "NVIDIA L40S: 403" in msg and "cannot access the requested pool" in msg
    assert "NVIDIA A100 80GB PCIe: 400" in msg and "NVIDIA GeForce RTX 4090: 400" in msg
    assert emu.pods() == []
    n = assert_no_orphans(d, emu)
    record(SECTION, "create refused for every GPU type (403 pool, 400, 400)",
           "`up` failed with one error listing each GPU type with its status and RunPod's detail; no pod", n)


def test_a_422_stops_the_walk_at_once(engine_emulator, tmp_path, monkeypatch):
    emu = engine_emulator
    emu.inject(kind="status", status=422, method="POST", path="/v2/pods$", detail="Request validation failed.",
               errors=["$.gpu: additional properties 'bogus' not allowed"])
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    with pytest.raises(CommandError) as e:
        d.up()
    msg = str(e.value)
    assert answers(emu, method="POST", path="/v2/pods") == [422]
    assert "additional properties 'bogus' not allowed" in msg
    n = assert_no_orphans(d, emu)
    record(SECTION, "create answers 422 (the body broke the schema)",
           "`up` stopped at the first GPU type (no other create), showing RunPod's error list", n)


# --- §3: env that RunPod injects survives an update and is not drift -------------------------------
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


# --- §4: two people, one RunPod account --------------------------------------------------------------
def test_pods_of_a_same_named_stack_elsewhere_are_never_touched(engine_emulator, tmp_path, monkeypatch):
    """A teammate's stack of the same name on another backend, and stack `<name>-eu` vs model
    `eu-olmocr`: their pods look like ours by project, stack and model, but carry another token."""
    from runpod_provider.client import RunPodClient

    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    stack = d.name
    foreign_names = [f"runpod-deploy-{stack}-olmocr-k3v9x2q1-a1b2c3",  # same stack name elsewhere
                     f"runpod-deploy-{stack}-olmocr-abc123",            # the old name form
                     f"runpod-deploy-{stack}-eu-olmocr-z8y7x6w5-d4e5f6"]  # another (stack, model) pair
    body = {"image": "runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404", "cloud": "SECURE",
            "gpu": {"id": "NVIDIA GeForce RTX 4090", "count": 1}, "dataCenterIds": ["EU-RO-1"]}
    with RunPodClient(emu.api_key, emu.api_url) as c:
        for name in foreign_names:
            c._request("POST", "/pods", body={**body, "name": name}).close()
    foreign = {p["id"] for p in emu.pods()}
    d.up()
    d.refresh()
    mine = pod_id_in_state(d)
    assert {p["id"] for p in emu.pods()} == foreign | {mine}
    assert re.fullmatch(rf"runpod-deploy-{re.escape(stack)}-olmocr-[a-z0-9]{{8}}-[a-z0-9]{{6}}",
                        next(p["name"] for p in emu.pods() if p["id"] == mine))
    d.destroy()
    assert {p["id"] for p in emu.pods()} == foreign
    assert d.resources() == []
    record(SECTION, "3 foreign pods named like this stack's (same project/stack/model names, another backend; "
           "the old name form; stack `X` model `eu-olmocr`)",
           "`up`, `refresh` and `destroy` left all three alone: the orphan sweep only matches this state's token",
           0)


# --- §5: slow first start is not a failure; a broken start fails fast --------------------------------
def test_a_slow_start_that_keeps_printing_progress_is_not_a_failure(engine_emulator, tmp_path, monkeypatch):
    emu = engine_emulator
    emu.world.startup = {"mode": "slow", "seconds": 8.0}
    d = deploy(emu, tmp_path, monkeypatch, models=one_model(), extra={"readyStallSeconds": 3})
    up = d.up()
    [pod] = emu.pods()
    assert pod["status"] == "RUNNING" and up.outputs["olmocr_pod_id"].value == pod["id"]
    n = assert_no_orphans(d, emu)
    record(SECTION, "slow first start: progress lines for 8 s, longer than the 3 s stall timeout",
           "`up` waited (each new log line resets the stall clock) and succeeded", n)


def test_a_start_that_prints_an_error_fails_fast_with_the_log_tail(engine_emulator, tmp_path, monkeypatch):
    emu = engine_emulator
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
    record(SECTION, "the startup prints `runpod-deploy error=` and ends setup (then idles)",
           "`up` failed at once (not after the stall timeout) with the error and the log tail; pod deleted", n)


def test_a_start_that_goes_silent_fails_after_the_stall_timeout(engine_emulator, tmp_path, monkeypatch):
    emu = engine_emulator
    emu.world.startup = {"mode": "hang", "phase": "download-model"}
    d = deploy(emu, tmp_path, monkeypatch, models=one_model(), extra={"readyStallSeconds": 3})
    with pytest.raises(CommandError) as e:
        d.up()
    msg = str(e.value)
    assert "no progress" in msg and "it was deleted" in msg
    assert emu.pods() == []
    n = assert_no_orphans(d, emu)
    record(SECTION, "the startup goes silent during the download (no new log line)",
           "`up` failed after the stall timeout (3 s here, 10 min by default), pod deleted", n)


# --- §6: long rate-limit windows never leave a pod billing --------------------------------------------
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
