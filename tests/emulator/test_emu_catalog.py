"""The GPU type catalog with stock, and the (read-only) network volumes; endpoints the project
does not use are not emulated."""
from __future__ import annotations

import pytest

REQUIRED_GPUS = {
    "NVIDIA L40S": 48,
    "NVIDIA A100 80GB PCIe": 80,
    "NVIDIA GeForce RTX 4090": 24,
    "NVIDIA H100 80GB HBM3": 80,
    "NVIDIA A100-SXM4-80GB": 80,
}
STOCK = {"include": "AVAILABILITY", "product": "POD"}


def test_catalog_lists_the_gpus_by_exact_id_with_vram(api):
    gpus = {g["id"]: g for g in api.get("/catalog/gpus").json()["gpus"]}
    for gpu_id, memory in REQUIRED_GPUS.items():
        assert gpus[gpu_id]["memory"] == memory
    assert gpus["NVIDIA GeForce RTX 4090"]["name"] == "RTX 4090"  # a display name, not an id
    assert "availability" not in gpus["NVIDIA L40S"]  # stock only on request


@pytest.mark.parametrize("params", [{"include": "AVAILABILITY"}, {"product": "POD"}, {"count": "2"},
                                    {"cloud": "SECURE"}])
def test_availability_parameters_must_come_together(api, params):
    response = api.get("/catalog/gpus", params=params)
    assert response.status_code == 400
    assert response.json()["status"] == 400


@pytest.mark.parametrize("params", [{"include": "STOCK"}, {"product": "DESKTOP"}, {"count": "0"},
                                    {"cloud": "ALL"}])
def test_bad_availability_values_are_422(api, params):
    assert api.get("/catalog/gpus", params={**STOCK, **params}).status_code == 422


def test_availability_reports_stock_per_data_center(emulator, api):
    emulator.set_stock("EU-RO-1", "NVIDIA L40S", "LOW")
    gpus = {g["id"]: g for g in api.get("/catalog/gpus", params=STOCK).json()["gpus"]}
    l40s = gpus["NVIDIA L40S"]
    assert l40s["availability"] == "HIGH"
    assert {"id": "EU-RO-1", "name": "Europe Romania 1", "availability": "LOW"} in l40s["dataCenters"]


def test_gpu_out_of_stock_everywhere_has_no_data_centers(emulator, api):
    for dc in ("EU-RO-1", "EU-SE-1", "US-TX-3", "US-KS-2"):
        emulator.set_stock(dc, "NVIDIA GeForce RTX 4090", "NONE")
    gpus = {g["id"]: g for g in api.get("/catalog/gpus", params=STOCK).json()["gpus"]}
    assert gpus["NVIDIA GeForce RTX 4090"]["availability"] == "NONE"
    assert "dataCenters" not in gpus["NVIDIA GeForce RTX 4090"]


def test_count_and_cloud_scope_the_stock(api):
    gpus = {g["id"]: g for g in api.get("/catalog/gpus", params={**STOCK, "count": "9"}).json()["gpus"]}
    assert gpus["NVIDIA L40S"]["availability"] == "NONE"  # at most 8 per pod
    gpus = {g["id"]: g for g in api.get("/catalog/gpus", params={**STOCK, "cloud": "COMMUNITY"}).json()["gpus"]}
    assert gpus["AMD Instinct MI300X OAM"]["availability"] == "NONE"  # secure cloud only
    assert gpus["NVIDIA L40S"]["availability"] == "HIGH"


def test_seeded_network_volumes(api):
    volumes = {v["id"]: v for v in api.get("/network-volumes").json()["networkVolumes"]}
    assert volumes["fuzzvol01eu"] == {"id": "fuzzvol01eu", "name": "fuzzion-models", "size": 200,
                                      "dataCenter": "EU-RO-1", "type": "STANDARD"}
    assert volumes["usvol0001"]["dataCenter"] == "US-TX-3"
    assert api.get("/network-volumes/fuzzvol01eu").json()["name"] == "fuzzion-models"
    assert api.get("/network-volumes/nope").status_code == 404


@pytest.mark.parametrize("path", ["/catalog/cpus", "/catalog/datacenters", "/catalog/gpus/NVIDIA%20L40S",
                                  "/templates", "/endpoints"])
def test_endpoints_the_project_does_not_use_are_404_problems(api, path):
    response = api.get(path)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json() == {"title": "Not Found", "status": 404, "detail": "resource not found"}


def test_network_volumes_cannot_be_created_here(api):
    response = api.post("/network-volumes", json={"name": "x", "size": 10, "dataCenter": "EU-RO-1"})
    assert response.status_code == 405 and response.headers["Allow"] == "GET"
