"""Placement: one GPU id, `dataCenterIds` as an allow-list, stock, and the capacity 400."""
from __future__ import annotations

from runpod_emulator import CAPACITY_DETAIL

CAPACITY = ("There are no longer any instances available with the requested specifications. "
            "Please refresh and try again.")


def _no_volume(body, **overrides):
    return {**{k: v for k, v in body.items() if k != "mounts"}, **overrides}


def test_no_stock_answers_the_exact_capacity_400(emulator, api, pod_body):
    emulator.set_stock("EU-RO-1", "NVIDIA L40S", "NONE")
    response = api.post("/pods", json=pod_body)
    assert response.status_code == 400
    assert response.json() == {"title": "Bad Request", "status": 400, "detail": CAPACITY}
    assert CAPACITY_DETAIL == CAPACITY
    assert emulator.pods() == []


def test_data_center_ids_are_an_allow_list_not_a_preference(emulator, api, pod_body):
    emulator.set_stock("EU-RO-1", "NVIDIA L40S", "NONE")  # plenty elsewhere, none where asked
    response = api.post("/pods", json=_no_volume(pod_body, dataCenterIds=["EU-RO-1"]))
    assert response.status_code == 400 and response.json()["detail"] == CAPACITY


def test_pod_goes_to_the_first_listed_data_center_with_stock(emulator, api, pod_body):
    body = _no_volume(pod_body, dataCenterIds=["US-TX-3", "US-KS-2"])
    assert api.create(body)["dataCenterId"] == "US-TX-3"
    emulator.set_stock("US-TX-3", "NVIDIA L40S", "NONE")
    assert api.create(body)["dataCenterId"] == "US-KS-2"


def test_stock_is_per_gpu_so_another_gpu_still_places(emulator, api, pod_body):
    emulator.set_stock("EU-RO-1", "NVIDIA L40S", "NONE")
    pod = api.create(pod_body, gpu={"id": "NVIDIA A100 80GB PCIe", "count": 1})
    assert pod["gpu"]["id"] == "NVIDIA A100 80GB PCIe" and pod["cost"] == 1.39


def test_a_network_volume_pins_the_pod_to_its_data_center(api, pod_body):
    body = {**pod_body}
    del body["dataCenterIds"]
    assert api.create(body)["dataCenterId"] == "EU-RO-1"


def test_omitting_gpu_count_fails_like_the_live_api(api, pod_body):
    response = api.post("/pods", json={**pod_body, "gpu": {"id": "NVIDIA L40S"}})
    assert response.status_code == 400 and response.json()["detail"] == CAPACITY


def test_unknown_data_center_is_400(api, pod_body):
    response = api.post("/pods", json=_no_volume(pod_body, dataCenterIds=["EU-XX-9"]))
    assert response.status_code == 400 and "EU-XX-9" in response.json()["detail"]


def test_cuda_constraint_no_host_offers_is_a_capacity_400(api, pod_body):
    gpu = {"id": "NVIDIA L40S", "count": 1, "allowedCudaVersions": ["11.8"]}
    response = api.post("/pods", json={**pod_body, "gpu": gpu})
    assert response.status_code == 400 and response.json()["detail"] == CAPACITY


def test_cost_is_price_times_count_for_the_cloud(api, pod_body):
    pod = api.create(_no_volume(pod_body, gpu={"id": "NVIDIA GeForce RTX 4090", "count": 2}, cloud="COMMUNITY",
                                dataCenterIds=["US-KS-2"]))
    assert pod["cost"] == 0.68 and pod["cloud"] == "COMMUNITY"


def test_cpu_pods_are_not_emulated(api, pod_body):
    body = _no_volume(pod_body, cpu={"id": "cpu3c", "vcpuCount": 4})
    del body["gpu"]
    response = api.post("/pods", json=body)
    assert response.status_code == 400 and "not emulated" in response.json()["detail"]
