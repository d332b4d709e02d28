"""Each scripted fault kind, its filters and its count."""
from __future__ import annotations

import time

import pytest
import requests

from runpod_emulator.faults import NO_GPU_DETAIL


def test_status_429_carries_retry_after_and_fires_once(emulator, api):
    emulator.inject(kind="status", status=429, retry_after=3)
    response = api.get("/pods")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 429
    assert api.get("/pods").status_code == 200  # consumed


def test_status_fault_matches_path_regex_and_method(emulator, api):
    pod_id = api.create()["id"]
    emulator.inject(method="GET", path=r"/v2/pods/[^/]+$", kind="status", status=503, count=2)
    assert api.get("/pods").status_code == 200  # the list does not match
    assert api.post("/pods/" + pod_id + "/action", json={"action": "stop"}).status_code == 200
    assert [api.get(f"/pods/{pod_id}").status_code for _ in range(3)] == [503, 503, 200]


def test_permanent_fault_keeps_firing(emulator, api):
    emulator.inject(path="/v2/catalog", kind="status", status=500, count=None)
    assert [api.get("/catalog/gpus").status_code for _ in range(3)] == [500, 500, 500]
    assert api.get("/pods").status_code == 200


def test_after_effect_creates_the_pod_then_answers_500(emulator, api, pod_body):
    emulator.inject(method="POST", path="/v2/pods$", kind="after_effect", status=500)
    response = api.post("/pods", json=pod_body)
    assert response.status_code == 500
    [pod] = api.get("/pods").json()["pods"]  # it exists, and bills
    assert pod["name"] == pod_body["name"] and pod["cost"] > 0


def test_after_effect_can_drop_the_connection_instead(emulator, api, pod_body):
    emulator.inject(method="POST", path="/v2/pods$", kind="after_effect", drop=True)
    with pytest.raises(requests.ConnectionError):
        api.post("/pods", json=pod_body)
    assert len(api.get("/pods").json()["pods"]) == 1


def test_delay_makes_the_client_time_out_but_the_work_still_happens(emulator, api, pod_body):
    emulator.inject(method="POST", path="/v2/pods", kind="delay", seconds=0.6)
    with pytest.raises(requests.Timeout):
        api.post("/pods", json=pod_body, timeout=0.2)
    deadline = time.monotonic() + 3
    while not emulator.pods():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_drop_closes_the_connection_without_an_answer(emulator, api):
    emulator.inject(kind="drop", path="/v2/pods")
    with pytest.raises(requests.ConnectionError):
        api.get("/pods")
    assert api.get("/pods").status_code == 200
    assert [r["status"] for r in emulator.requests] == [None, 200]


def test_no_gpu_on_start_fails_the_start_and_leaves_the_pod_exited(emulator, api):
    pod_id = api.create()["id"]
    api.action(pod_id, "stop")
    emulator.inject(kind="no_gpu_on_start")
    response = api.action(pod_id, "start")
    assert response.status_code == 400
    assert response.json()["detail"] == NO_GPU_DETAIL
    assert api.pod(pod_id)["status"] == "EXITED"
    assert api.action(pod_id, "start").status_code == 200


def test_no_gpu_on_start_is_not_consumed_by_other_actions(emulator, api):
    pod_id = api.create()["id"]
    emulator.inject(kind="no_gpu_on_start")
    assert api.action(pod_id, "stop").status_code == 200
    assert api.action(pod_id, "start").status_code == 400


def test_list_lag_hides_a_new_pod_from_the_list_for_a_while(emulator, api):
    emulator.inject(kind="list_lag", seconds=0.4)
    lagging = api.create()["id"]
    assert api.get("/pods").json()["pods"] == []
    assert api.get(f"/pods/{lagging}").status_code == 200  # reachable by id meanwhile
    assert [p["id"] for p in emulator.pods()] == [lagging]
    time.sleep(0.45)
    assert [p["id"] for p in api.get("/pods").json()["pods"]] == [lagging]


def test_list_lag_is_not_consumed_by_a_failed_create(emulator, api, pod_body):
    emulator.inject(kind="list_lag", seconds=5)
    assert api.post("/pods", json={**pod_body, "gpu": {"id": "bogus", "count": 1}}).status_code == 400
    api.create()
    assert api.get("/pods").json()["pods"] == []


def test_proxy_requests_are_only_faulted_by_a_proxy_path(emulator, api):
    pod_id = api.create()["id"]
    api.wait_proxy(pod_id, 8000, 200)
    emulator.inject(kind="status", status=500, count=None)  # no path: API calls only
    assert api.proxy(pod_id, 8000).status_code == 200
    emulator.inject(path=f"/proxy/{pod_id}-8000", kind="status", status=524)
    assert api.proxy(pod_id, 8000).status_code == 524


def test_bad_fault_definitions_are_refused(emulator):
    with pytest.raises(ValueError):
        emulator.inject(kind="explode")
    with pytest.raises(ValueError):
        emulator.inject(kind="status")  # needs a status
    with pytest.raises(ValueError):
        emulator.inject(kind="delay")  # needs seconds
