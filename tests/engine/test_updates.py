"""Updates: what a config or code change does to a running pod. Replace-vs-update is declared once,
per PodSpec field (runpod_provider/spec.py); here the real engine shows its effect: an in-place
update is one PATCH, after which `up` waits for proof of the new boot (RunPod shows the old
container, or EXITED, for a while, or nothing at all); a changed GPU list replaces the pod (with
faults on the way: tests/engine/test_rate_limits.py). Through the plain `pulumi` CLI against the
emulator."""

from __future__ import annotations

import time

from devkit.program import own_copy
from tests.engine.harness import assert_no_orphans, deploy, health_now, mutations, one_model, pod_id_in_state
from tests.engine.reliability import record

SECTION = "updates"


def test_in_place_updates_wait_for_the_new_boot(engine_emulator, tmp_path, monkeypatch):
    """Two updates of one pod: new vLLM flags while, for 2 s after the PATCH, the pod shows the OLD
    container (RUNNING, old startedAt, the old vLLM answering); then a new pod agent (as a user edits
    the checkout) while it reads EXITED. Each is one PATCH (no start, no 409), the secrets resent,
    the generated keys unchanged, and `up` returns once the new container serves."""
    emu = engine_emulator
    emu.world.reset_lag = 2.0
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    first = d.up()
    pod_id = pod_id_in_state(d)
    steps = {"RUNNING": lambda: d.write_config({**d.config, "models": one_model(vllmArgs=["--enforce-eager"])}),
             "EXITED": lambda: edit_agent(d)}
    for during_reset, change in steps.items():
        emu.world.patch_lag_status = during_reset
        before = emu.pods()[0]
        change()
        since = len(emu.requests)
        up = d.up()
        assert up.changes.get("update") == 1 and "replace" not in up.changes, up.changes
        assert health_now(emu, pod_id) == 200  # `up` returned once the NEW container served
        [pod] = emu.pods()
        assert pod["id"] == pod_id and pod["status"] == "RUNNING" and pod["startedAt"] != before["startedAt"]
        assert [(m, p) for m, p, _ in mutations(emu, since)] == [("PATCH", f"/v2/pods/{pod_id}")]
        assert pod["env"]["VLLM_EXTRA_ARGS_JSON"] == '["--enforce-eager"]'
        assert pod["env"]["VLLM_API_KEY"] == before["env"]["VLLM_API_KEY"]  # PATCH replaces the env: resent
        assert up.outputs["olmocr_api_key"].value == first.outputs["olmocr_api_key"].value
        if during_reset == "EXITED":
            assert pod["env"]["STARTUP_B64"] != before["env"]["STARTUP_B64"]
    assert len(first.outputs["olmocr_api_key"].value) >= 32
    n = assert_no_orphans(d, emu)
    record(SECTION, "in-place updates: new vLLM flags while for 2 s after the PATCH the pod reads RUNNING with the "
           "old container still answering; then a new pod agent while it reads EXITED",
           "each `up` sent one PATCH (no start), waited for a new boot before probing, and returned with the new "
           "container serving; same pod, same keys", n)


def edit_agent(d) -> None:
    """A new version of the pod agent, edited in the checkout the way a user edits it before `pulumi up`."""
    agent = own_copy(d.work_dir, "startup") / "agent" / "main.py"
    agent.write_text(agent.read_text() + "\n# v2 of the agent\n")


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
           "`runtime` null for 3 s", "`up` took the pod's new `runpod-deploy boot=` line as the proof of the "
           "new boot and returned once the new container served", n)
