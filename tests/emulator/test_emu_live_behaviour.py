"""What the emulator plays of the live v2 API's harsher behaviour (issue 13), each behind a switch:
capacity wordings, the pool-access 403, a lagging catalog, the key `startSsh` injects, startup
progress/errors, and a long rate-limit window."""
from __future__ import annotations

import re
import time

from runpod_emulator.placement import CAPACITY_DETAILS, POOL_DETAIL
from runpod_emulator.state import DEFAULT_SSH_KEYS


def test_capacity_400s_cycle_through_the_live_wordings(emulator, api, pod_body):
    emulator.set_stock("EU-RO-1", "NVIDIA L40S", "NONE")
    details = [api.post("/pods", json=pod_body).json()["detail"] for _ in CAPACITY_DETAILS]
    assert details == list(CAPACITY_DETAILS) and len(set(details)) == 3


def test_a_denied_pool_answers_403_for_that_gpu_only(emulator, api, pod_body):
    emulator.deny_pool("NVIDIA L40S")
    response = api.post("/pods", json=pod_body)
    assert response.status_code == 403 and response.json()["detail"] == POOL_DETAIL
    assert api.create(pod_body, gpu={"id": "NVIDIA A100 80GB PCIe", "count": 1})["gpu"]["id"] == "NVIDIA A100 80GB PCIe"


def test_the_catalog_can_lag_behind_placement(emulator, api, pod_body):
    emulator.set_catalog_stock("EU-RO-1", "NVIDIA L40S", "NONE")
    gpus = api.get("/catalog/gpus", params={"include": "AVAILABILITY", "product": "POD"}).json()["gpus"]
    [l40s] = [g for g in gpus if g["id"] == "NVIDIA L40S"]
    assert "EU-RO-1" not in [dc["id"] for dc in l40s.get("dataCenters", [])]
    assert api.create(pod_body)["gpu"]["id"] == "NVIDIA L40S"  # placement still finds one


def test_stock_honours_min_cuda_version(emulator, api):
    gpus = api.get("/catalog/gpus", params={"include": "AVAILABILITY", "product": "POD",
                                             "minCudaVersion": "13.0"}).json()["gpus"]
    [l40s] = [g for g in gpus if g["id"] == "NVIDIA L40S"]
    dcs = {dc["id"] for dc in l40s["dataCenters"]}
    assert "EU-RO-1" in dcs and "EU-SE-1" not in dcs and "US-TX-3" not in dcs  # 12.8 hosts only there


def test_start_ssh_injects_the_account_key_and_a_patch_of_env_drops_it(emulator, api, pod_body):
    pod = api.create(pod_body, startSsh=True)
    assert pod["env"]["PUBLIC_KEY"] == DEFAULT_SSH_KEYS[0]
    assert api.create(pod_body)["env"].get("PUBLIC_KEY") is None  # only with startSsh
    patched = api.patch(f"/pods/{pod['id']}", json={"env": {"A": "1"}}).json()
    assert patched["env"] == {"A": "1"}  # env replaces the whole map (runpod/runpodctl#268)


def _lines(emulator, pod_id) -> list[str]:
    lines, _ = emulator.world.log_backlog(pod_id, None, 5000, None, None)
    return [line.line for line in lines]


def test_startup_error_prints_the_error_then_failed_and_never_serves(emulator, api, pod_body):
    emulator.world.startup = {"mode": "error", "text": "vLLM install failed"}
    pod_id = api.create(pod_body)["id"]
    api.wait_ready(pod_id)
    time.sleep(0.5)
    lines = _lines(emulator, pod_id)
    assert "runpod-deploy error=vLLM install failed" in lines and lines[-1] == "runpod-deploy phase=failed"
    assert api.proxy(pod_id, 8000).status_code == 502


def test_slow_startup_prints_progress_before_ready(emulator, api, pod_body):
    emulator.world.startup = {"mode": "slow", "seconds": 1.0}
    pod_id = api.create(pod_body)["id"]
    api.wait_proxy(pod_id, 8000, 200, timeout=10)
    lines = _lines(emulator, pod_id)
    progress = [line for line in lines if line.startswith("runpod-deploy: download")]
    assert len(progress) >= 2 and lines.index(progress[-1]) < lines.index("runpod-deploy phase=ready")


def test_a_rate_window_answers_429_with_the_time_left_then_ends(emulator, api):
    emulator.inject(kind="rate_window", seconds=1.5, method="GET", path="/v2/pods")
    response = api.get("/pods")
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 2 and '"hour";r=0' in response.headers["RateLimit"]
    assert emulator.faults.pending() == []  # it fired
    time.sleep(1.6)
    assert api.get("/pods").status_code == 200


# --- issue 20 ---------------------------------------------------------------------------------------
def test_quotas_are_enforced_per_account_over_every_call(emulator, api):
    emulator.enforce_quotas({"minute": 5})
    statuses = [api.get("/pods").status_code for _ in range(3)] + [api.get("/catalog/gpus").status_code
                                                                    for _ in range(3)]
    assert statuses[:5] == [200] * 5 and statuses[5] == 429
    limited = api.get("/network-volumes")
    assert limited.status_code == 429 and "minute window" in limited.json()["detail"]
    assert 1 <= int(limited.headers["Retry-After"]) <= 61 and '"minute";q=5' in limited.headers["RateLimit-Policy"]
    emulator.enforce_quotas({})
    assert api.get("/pods").status_code == 200


def test_a_sparse_get_omits_or_nulls_fields_and_a_normalised_echo_rewrites_them(emulator, api, pod_body):
    pod_id = api.create(pod_body, ports=["8000/http", "22/tcp"])["id"]
    emulator.world.sparse_get = {"env": "omit", "ports": "null"}
    got = api.pod(pod_id)
    assert "env" not in got and got["ports"] is None
    emulator.world.sparse_get, emulator.world.normalised_echo = {}, True
    got = api.pod(pod_id)
    assert got["image"].startswith("docker.io/") and got["ports"] == ["8000/http", "22/tcp"][::-1] or \
        got["ports"] == sorted(["8000/http", "22/tcp"], reverse=True)
    assert emulator.pods()[0]["env"] is not None  # the assertion view is never sparse


def test_one_second_log_ids_repeat_and_a_resume_sends_the_second_again(emulator, api, pod_body):
    from runpod_emulator.logs import parse_event_id

    emulator.world.log_ids = "second"
    pod_id = api.create(pod_body)["id"]
    api.wait_ready(pod_id)
    lines, _ = emulator.world.log_backlog(pod_id, None, 5000, None, None)
    ids = [line.event_id("second") for line in lines]
    assert len(set(ids)) < len(ids) and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", i) for i in ids)
    since, _ = parse_event_id(ids[-1])
    assert since < lines[-1].ts


def test_every_container_boot_prints_a_fresh_boot_line_first(emulator, api, pod_body):
    pod_id = api.create(pod_body)["id"]
    api.wait_ready(pod_id)
    api.action(pod_id, "restart")
    api.wait_ready(pod_id)
    time.sleep(0.3)
    lines = _lines(emulator, pod_id)
    boots = [line for line in lines if line.startswith("runpod-deploy boot=")]
    assert len(boots) == 2 and boots[0] != boots[1]
    assert lines[lines.index(boots[0]) - 1] == "Starting container"


def test_an_opaque_reset_keeps_running_and_started_at_with_runtime_null(emulator, api, pod_body):
    emulator.world.opaque_reset = True
    emulator.world.reset_lag = 0.0
    pod_id = api.create(pod_body)["id"]
    api.wait_ready(pod_id)
    before = api.pod(pod_id)
    api.patch(f"/pods/{pod_id}", json={"env": {"A": "2"}})
    during = api.pod(pod_id)
    assert during["status"] == "RUNNING" and during["startedAt"] == before["startedAt"] and during["runtime"] is None


def test_pull_lines_error_status_zero_gpu_start_and_given_up_services(emulator, api, pod_body):
    emulator.world.pull_line_every = 0.05
    emulator.world.delays["provision"] = 0.3
    emulator.world.error_after = {"after": 0.0, "reason": "OCI runtime create failed: cuda>=13.0 unsatisfied"}
    pod_id = api.create(pod_body)["id"]
    time.sleep(0.8)
    assert api.pod(pod_id)["status"] == "ERROR"
    lines = _lines(emulator, pod_id)
    assert sum("extracting layer" in line for line in lines) >= 3 and lines[-1].startswith("OCI runtime create")
    emulator.world.error_after = None
    api.action(pod_id, "stop")
    emulator.world.zero_gpu_start = True
    api.action(pod_id, "start")
    assert api.pod(pod_id)["gpu"]["count"] == 0
    emulator.world.zero_gpu_start = False
    pod2 = api.create(pod_body)["id"]
    api.wait_ready(pod2)
    api.wait_proxy(pod2, 8000, 200, timeout=10)
    emulator.give_up_services(pod2)
    assert api.proxy(pod2, 8000).status_code == 502 and _lines(emulator, pod2)[-1] == "runpod-deploy phase=failed"
    assert api.pod(pod2)["status"] == "RUNNING"
