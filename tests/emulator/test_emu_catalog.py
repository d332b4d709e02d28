"""Catalog (GPU types, stock, data centers) and network volumes."""
from __future__ import annotations

import pytest

REQUIRED_GPUS = {
    "NVIDIA L40S": 48,
    "NVIDIA A100 80GB PCIe": 80,
    "NVIDIA GeForce RTX 4090": 24,
    "NVIDIA H100 80GB HBM3": 80,
    "NVIDIA A100-SXM4-80GB": 80,
}


def test_catalog_lists_the_gpus_by_exact_id_with_vram(api):
    gpus = {g["id"]: g for g in api.get("/catalog/gpus").json()["gpus"]}
    for gpu_id, memory in REQUIRED_GPUS.items():
        assert gpus[gpu_id]["memory"] == memory
    assert gpus["NVIDIA GeForce RTX 4090"]["name"] == "RTX 4090"  # a display name, not an id
    assert "availability" not in gpus["NVIDIA L40S"]  # stock only on request


@pytest.mark.parametrize("params", [
    {"include": "AVAILABILITY"},
    {"product": "POD"},
    {"count": "2"},
    {"include": "AVAILABILITY", "product": "POD", "cudaVersions": "12.8", "minCudaVersion": "12"},
])
def test_availability_parameters_must_come_together(api, params):
    response = api.get("/catalog/gpus", params=params)
    assert response.status_code == 400
    assert response.json()["status"] == 400


def test_availability_reports_stock_per_data_center(emulator, api):
    emulator.set_stock("EU-RO-1", "NVIDIA L40S", "LOW")
    gpus = {g["id"]: g for g in api.get("/catalog/gpus", params={"include": "AVAILABILITY", "product": "POD"}).json()["gpus"]}
    l40s = gpus["NVIDIA L40S"]
    assert l40s["availability"] == "HIGH"
    assert {"id": "EU-RO-1", "name": "Europe Romania 1", "availability": "LOW"} in l40s["dataCenters"]
    assert l40s["cudaVersions"]


def test_gpu_out_of_stock_everywhere_has_no_data_centers(emulator, api):
    for dc in [d["id"] for d in api.get("/catalog/datacenters").json()["dataCenters"]]:
        emulator.set_stock(dc, "NVIDIA GeForce RTX 4090", "NONE")
    gpu = api.get("/catalog/gpus/NVIDIA%20GeForce%20RTX%204090",
                  params={"include": "AVAILABILITY", "product": "POD"}).json()
    assert gpu["availability"] == "NONE" and "dataCenters" not in gpu


def test_country_filter_scopes_availability(api):
    params = {"include": "AVAILABILITY", "product": "POD", "countryCodes": "RO"}
    gpus = api.get("/catalog/gpus", params=params).json()["gpus"]
    assert gpus and all([d["id"] for d in g["dataCenters"]] == ["EU-RO-1"] for g in gpus)
    params["countryCodes"] = "romania"
    assert api.get("/catalog/gpus", params=params).status_code == 422


def test_single_gpu_by_url_encoded_id(api):
    assert api.get("/catalog/gpus/NVIDIA%20A100%2080GB%20PCIe").json()["id"] == "NVIDIA A100 80GB PCIe"
    assert api.get("/catalog/gpus/NVIDIA%20A100").status_code == 404


def test_data_centers_include_the_ones_the_project_uses(api):
    dcs = {d["id"]: d for d in api.get("/catalog/datacenters").json()["dataCenters"]}
    assert {"EU-RO-1", "US-TX-3", "US-KS-2"} <= set(dcs)
    assert dcs["EU-RO-1"]["networkVolumeTypes"] == ["STANDARD"]


def test_data_center_gpu_availability_follows_stock(emulator, api):
    emulator.set_stock("US-TX-3", "NVIDIA L40S", "NONE")
    [dc] = [d for d in api.get("/catalog/datacenters", params={"include": "GPU_AVAILABILITY"}).json()["dataCenters"]
            if d["id"] == "US-TX-3"]
    assert "NVIDIA L40S" not in [g["id"] for g in dc["gpuAvailability"]]
    assert "NVIDIA A100 80GB PCIe" in [g["id"] for g in dc["gpuAvailability"]]


def test_data_center_filters(api):
    europe = api.get("/catalog/datacenters", params={"regions": "EUROPE"}).json()["dataCenters"]
    assert {d["region"] for d in europe} == {"EUROPE"}
    assert api.get("/catalog/datacenters/EU-RO-1").json()["id"] == "EU-RO-1"
    assert api.get("/catalog/datacenters/XX-1").status_code == 404


def test_seeded_network_volumes(api):
    volumes = {v["id"]: v for v in api.get("/network-volumes").json()["networkVolumes"]}
    assert volumes["fuzzvol01eu"] == {"id": "fuzzvol01eu", "name": "fuzzion-models", "size": 200,
                                      "dataCenter": "EU-RO-1", "type": "STANDARD"}
    assert volumes["usvol0001"]["dataCenter"] == "US-TX-3"
    assert api.get("/network-volumes/fuzzvol01eu").json()["name"] == "fuzzion-models"
    assert api.get("/network-volumes/nope").status_code == 404


def test_network_volume_create_grow_and_delete(api):
    response = api.post("/network-volumes", json={"name": "scratch", "size": 50, "dataCenter": "US-KS-2"})
    assert response.status_code == 201
    volume = response.json()
    assert volume["type"] == "STANDARD"
    assert api.patch(f"/network-volumes/{volume['id']}", json={"size": 40}).status_code == 400  # grow-only
    assert api.patch(f"/network-volumes/{volume['id']}", json={"size": 80}).json()["size"] == 80
    assert api.delete(f"/network-volumes/{volume['id']}").status_code == 204
    assert api.get(f"/network-volumes/{volume['id']}").status_code == 404


def test_network_volume_create_is_strict(api):
    response = api.post("/network-volumes", json={"name": "x", "size": 5, "dataCenterId": "EU-RO-1"})
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert "$: missing property 'dataCenter'" in errors
    assert "$: additional properties 'dataCenterId' not allowed" in errors
    assert "$.size: minimum 10" in errors


def test_network_volume_in_a_data_center_without_volumes_is_400(api):
    response = api.post("/network-volumes", json={"name": "x", "size": 10, "dataCenter": "AP-JP-1"})
    assert response.status_code == 400 and "EU-RO-1" in response.json()["detail"]
