"""The HTTP admin controls (through AdminClient) and the `python -m runpod_emulator` process."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from runpod_emulator import AdminClient

ROOT = Path(__file__).resolve().parents[2]


def test_admin_client_mirrors_the_in_process_controls(emulator, api, pod_body):
    admin = AdminClient(emulator.admin_url)
    admin.set_stock("EU-RO-1", "NVIDIA L40S", "NONE")
    assert api.post("/pods", json=pod_body).status_code == 400
    admin.set_stock("EU-RO-1", "NVIDIA L40S", "HIGH")

    pending = admin.inject(method="POST", path="/v2/pods", kind="after_effect", status=502)
    assert pending[0]["kind"] == "after_effect"
    assert api.post("/pods", json=pod_body).status_code == 502
    [pod] = admin.pods()
    assert pod["env"]["SERVED_MODEL_NAME"] == "olmocr"
    assert [r["status"] for r in admin.requests()] == [400, 502]

    admin.set_service(pod["id"], ready=False)
    assert admin.stop_pod_out_of_band(pod["id"])["status"] == "EXITED"
    admin.delete_pod_out_of_band(pod["id"])
    assert admin.pods() == []
    with pytest.raises(KeyError):
        admin.delete_pod_out_of_band(pod["id"])

    admin.reset()
    assert admin.state() == {"pods": [], "volumes": admin.volumes(), "requests": [], "faults": []}


def test_admin_accepts_a_list_of_faults(emulator, api):
    response = requests.post(emulator.admin_url + "/faults", timeout=5, json=[
        {"kind": "status", "status": 429}, {"kind": "status", "status": 500}])
    assert response.status_code == 200 and len(response.json()["faults"]) == 2
    assert [api.get("/pods").status_code for _ in range(3)] == [429, 500, 200]


def test_admin_refuses_a_bad_fault(emulator):
    response = requests.post(emulator.admin_url + "/faults", json={"kind": "explode"}, timeout=5)
    assert response.status_code == 400


def test_admin_routes_need_no_auth_and_are_not_recorded(emulator):
    assert requests.get(emulator.admin_url + "/state", timeout=5).status_code == 200
    assert emulator.requests == []


def test_cli_prints_the_urls_and_stops_on_sigterm():
    process = subprocess.Popen(
        [sys.executable, "-m", "runpod_emulator", "--port", "0", "--api-key", "cli-key", "--paginate", "5"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = process.stdout.readline()
        urls = dict(part.split("=", 1) for part in line.split())
        assert urls["RUNPOD_PROXY_URL"].endswith("/proxy/{pod_id}-{port}")
        assert urls["RUNPOD_API_KEY"] == "cli-key"
        response = requests.get(urls["RUNPOD_API_URL"] + "/pods", headers={"Authorization": "Bearer cli-key"},
                                timeout=5)
        assert response.json() == {"pods": [], "pagination": {"nextCursor": None, "hasNextPage": False}}
        assert AdminClient(urls["RUNPOD_EMULATOR_ADMIN_URL"]).pods() == []
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
