"""Pod create/get/list/patch/delete, the status walk, actions and the out-of-band controls."""
from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest


def test_create_answers_201_with_a_provisioning_pod(api, pod_body):
    response = api.post("/pods", json={**pod_body, "gpu": {"id": "NVIDIA L40S", "count": 2}})
    assert response.status_code == 201
    pod = response.json()
    assert re.fullmatch(r"[a-z0-9]{14}", pod["id"])
    assert pod["status"] == "PROVISIONING"
    assert pod["actions"] == ["stop", "terminate"]
    assert pod["runtime"] is None
    assert pod["dataCenterId"] == "EU-RO-1"
    assert pod["gpu"]["id"] == "NVIDIA L40S" and pod["gpu"]["count"] == 2
    assert pod["cost"] == pytest.approx(0.86 * 2)
    assert pod["env"] == pod_body["env"]
    assert pod["mounts"] == pod_body["mounts"]


@pytest.mark.emulator(provision_delay=0.25, start_delay=0.25, runtime_delay=0.25)
def test_pod_walks_to_running_and_reports_runtime_only_later(api):
    pod_id = api.create()["id"]
    seen = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pod = api.pod(pod_id)
        state = (pod["status"], pod["runtime"] is not None)
        if not seen or seen[-1] != state:
            seen.append(state)
        if state == ("RUNNING", True):
            break
        time.sleep(0.02)
    # RUNNING comes first with runtime null (live quirk), then the runtime appears.
    assert seen == [("PROVISIONING", False), ("STARTING", False), ("RUNNING", False), ("RUNNING", True)]


def test_runtime_lists_declared_ports_plus_an_internal_http_port(api):
    pod = api.wait_ready(api.create()["id"])
    ports = pod["runtime"]["ports"]
    assert {p["private"] for p in ports} >= {8000, 3000, 22}
    extra = [p for p in ports if p["private"] not in (8000, 3000, 22)]
    assert extra and all(p["type"] == "http" and p["ip"].startswith("100.65.") for p in extra)
    assert pod["ssh"]["direct"] is not None  # 22/tcp is declared
    assert pod["startedAt"] is not None


def test_actions_follow_the_status(api):
    pod_id = api.create()["id"]
    assert api.pod(pod_id)["actions"] == ["stop", "terminate"]
    pod = api.wait_ready(pod_id)
    assert pod["actions"] == ["stop", "restart", "terminate"]
    stopped = api.action(pod_id, "stop").json()
    assert stopped["status"] == "EXITED"
    assert stopped["actions"] == ["start", "terminate"]


def test_stop_keeps_cost_and_clears_runtime(api):
    pod_id = api.create()["id"]
    api.wait_ready(pod_id)
    response = api.action(pod_id, "stop")
    assert response.status_code == 200
    pod = api.pod(pod_id)
    assert pod["status"] == "EXITED"
    assert pod["runtime"] is None
    assert pod["cost"] == pytest.approx(0.86)  # live quirk: not zeroed


def test_start_brings_an_exited_pod_back_with_the_same_id(api):
    pod_id = api.create()["id"]
    api.wait_ready(pod_id)
    api.action(pod_id, "stop")
    before = api.pod(pod_id)["startedAt"]
    started = api.action(pod_id, "start")
    assert started.status_code == 200
    assert started.json()["id"] == pod_id
    # v2 status is observed state: the pod still reads EXITED until the start takes effect.
    assert started.json()["status"] == "EXITED" and api.pod(pod_id)["status"] == "EXITED"
    assert api.wait(pod_id, lambda p: p["status"] == "STARTING", 5)["startedAt"] == before
    ready = api.wait_ready(pod_id)
    assert ready["id"] == pod_id and ready["startedAt"] != before


def test_restart_of_a_running_pod_goes_back_through_starting(api):
    pod_id = api.create()["id"]
    api.wait_ready(pod_id)
    restarted = api.action(pod_id, "restart")
    assert restarted.status_code == 200
    assert restarted.json()["status"] == "STARTING"


@pytest.mark.parametrize("action", ["start", "restart"])
def test_action_not_allowed_in_status_is_409(api, action):
    pod_id = api.create()["id"]  # PROVISIONING: only stop and terminate
    response = api.action(pod_id, action)
    assert response.status_code == 409
    assert "PROVISIONING" in response.json()["detail"]


def test_terminate_answers_204_and_the_pod_is_gone(api):
    pod_id = api.create()["id"]
    response = api.action(pod_id, "terminate")
    assert response.status_code == 204 and response.content == b""
    assert api.get(f"/pods/{pod_id}").status_code == 404
    assert api.get("/pods").json()["pods"] == []


def test_delete_answers_204_then_get_is_404_and_list_is_empty(api):
    pod_id = api.create()["id"]
    assert api.delete(f"/pods/{pod_id}").status_code == 204
    assert api.get(f"/pods/{pod_id}").status_code == 404
    assert pod_id not in [p["id"] for p in api.get("/pods").json()["pods"]]
    assert api.delete(f"/pods/{pod_id}").status_code == 404


def test_unknown_pod_is_404(api):
    for response in (api.get("/pods/nosuchpod00000"), api.action("nosuchpod00000", "stop"),
                     api.patch("/pods/nosuchpod00000", json={"name": "x"})):
        assert response.status_code == 404


def test_list_shows_every_created_pod_in_creation_order(api):
    ids = [api.create(name=f"pod-{i}")["id"] for i in range(3)]
    assert [p["id"] for p in api.get("/pods").json()["pods"]] == ids


def test_patch_env_replaces_the_whole_map(api):
    pod_id = api.create()["id"]
    response = api.patch(f"/pods/{pod_id}", json={"env": {"ONLY": "this"}})
    assert response.status_code == 200
    assert response.json()["env"] == {"ONLY": "this"}
    assert api.pod(pod_id)["env"] == {"ONLY": "this"}


def test_patch_of_the_container_restarts_it(api):
    pod_id = api.create()["id"]
    api.wait_ready(pod_id)
    api.wait_proxy(pod_id, 8000, 200)
    old = api.pod(pod_id)
    pod = api.patch(f"/pods/{pod_id}", json={"image": "vllm/vllm-openai:v0.11.0"}).json()
    # The reset is asynchronous: first the old container runs on and answers, with its startedAt.
    assert pod["status"] == "RUNNING" and pod["image"] == "vllm/vllm-openai:v0.11.0"
    assert pod["startedAt"] == old["startedAt"] and pod["runtime"]["uptime"] >= old["runtime"]["uptime"]
    assert api.proxy(pod_id, 8000).status_code == 200
    api.wait(pod_id, lambda p: p["status"] == "STARTING", 5)
    assert api.proxy(pod_id, 8000).status_code == 502
    api.wait_proxy(pod_id, 8000, 200)
    assert api.pod(pod_id)["startedAt"] != old["startedAt"]


def test_the_old_container_answers_with_its_old_env_during_the_reset(emulator, api):
    pod_id = api.create()["id"]
    api.wait_ready(pod_id)
    api.wait_proxy(pod_id, 8000, 200)
    api.patch(f"/pods/{pod_id}", json={"env": {"VLLM_API_KEY": "sk-new", "SERVED_MODEL_NAME": "m"}})
    old_key = api.proxy(pod_id, 8000, "/v1/models", headers={"Authorization": "Bearer sk-test"})
    assert old_key.status_code == 200


def test_a_patch_can_read_exited_during_the_reset(emulator, api):
    emulator.world.patch_lag_status = "EXITED"
    pod_id = api.create()["id"]
    api.wait_ready(pod_id)
    pod = api.patch(f"/pods/{pod_id}", json={"image": "vllm/vllm-openai:v0.11.0"}).json()
    assert pod["status"] == "EXITED" and pod["runtime"] is None
    assert api.wait_ready(pod_id)["image"] == "vllm/vllm-openai:v0.11.0"


def test_patch_of_name_only_does_not_restart(api):
    pod_id = api.create()["id"]
    api.wait_ready(pod_id)
    pod = api.patch(f"/pods/{pod_id}", json={"name": "renamed", "locked": True}).json()
    assert pod["status"] == "RUNNING" and pod["name"] == "renamed" and pod["locked"] is True


def test_locked_pod_cannot_be_stopped(api):
    pod_id = api.create()["id"]
    api.patch(f"/pods/{pod_id}", json={"locked": True})
    assert api.action(pod_id, "stop").status_code == 409


def test_emulator_pods_includes_env(emulator, api):
    pod = api.create()
    [seen] = emulator.pods()
    assert seen["id"] == pod["id"] and seen["env"]["VLLM_API_KEY"] == "sk-test"


def test_out_of_band_stop_start_and_delete(emulator, api):
    pod_id = api.create()["id"]
    emulator.stop_pod_out_of_band(pod_id, reason="runpod-deploy: idle for 30 min: stopping this pod")
    assert api.pod(pod_id)["status"] == "EXITED"
    assert emulator.start_pod_out_of_band(pod_id)["status"] == "STARTING"  # the console: at once
    emulator.stop_pod_out_of_band(pod_id)
    emulator.delete_pod_out_of_band(pod_id)
    assert api.get(f"/pods/{pod_id}").status_code == 404
    with pytest.raises(KeyError):
        emulator.delete_pod_out_of_band(pod_id)


def test_requests_log_records_api_calls_only(emulator, api):
    pod_id = api.create()["id"]
    api.get(f"/pods/{pod_id}")
    api.proxy(pod_id, 8000)
    assert [(r["method"], r["path"], r["status"]) for r in emulator.requests] == [
        ("POST", "/v2/pods", 201), ("GET", f"/v2/pods/{pod_id}", 200)]


def test_reset_clears_pods_requests_and_faults(emulator, api):
    api.create()
    emulator.inject(kind="status", status=500, count=None)
    emulator.reset()
    assert emulator.pods() == [] and emulator.requests == []
    assert api.get("/pods").status_code == 200


def test_many_concurrent_pollers_are_served(api, new_client):
    pod_id = api.create()["id"]

    def poll(_):
        client = new_client()  # a session per thread, like a provider polling from several threads
        return [client.get(f"/pods/{pod_id}").status_code for _ in range(10)]

    with ThreadPoolExecutor(max_workers=24) as pool:
        codes = [c for batch in pool.map(poll, range(24)) for c in batch]
    assert codes == [200] * 240


def test_ports_patched_while_provisioning_show_up_once_running(api):
    pod_id = api.create()["id"]
    api.patch(f"/pods/{pod_id}", json={"ports": ["8000/http", "7860/http"]})
    pod = api.wait_ready(pod_id)
    assert {p["private"] for p in pod["runtime"]["ports"]} >= {8000, 7860}
    api.wait_proxy(pod_id, 7860, 200)
