"""Helpers for the emulator's own tests: a thin `requests` client bound to the `emulator` fixture."""
from __future__ import annotations

import copy
import json
import time

import pytest
import requests

GPU_POD = {
    "name": "vllm-olmocr",
    "image": "runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404",
    "gpu": {"id": "NVIDIA L40S", "count": 1},
    "cloud": "SECURE",
    "dataCenterIds": ["EU-RO-1"],
    "disk": 30,
    "ports": ["8000/http", "3000/http", "22/tcp"],
    "env": {"VLLM_API_KEY": "sk-test", "SERVED_MODEL_NAME": "olmocr"},
    "args": "bash -lc 'echo hi'",
    "mounts": {"network": [{"volumeId": "fuzzvol01eu", "path": "/workspace"}]},
}

USER_AGENT = "runpod-deploy-tests/0"


class Client:
    def __init__(self, emulator, key=None):
        self.emu = emulator
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {key or emulator.api_key}", "User-Agent": USER_AGENT})

    def request(self, method, path, **kwargs):
        kwargs.setdefault("timeout", 5)
        return self.session.request(method, self.emu.api_url + path, **kwargs)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def create(self, body: dict | None = None, **overrides) -> dict:
        """Create a pod from `body` (default: GPU_POD) with top-level `overrides`; assert 201."""
        response = self.post("/pods", json={**(GPU_POD if body is None else body), **overrides})
        assert response.status_code == 201, response.text
        return response.json()

    def pod(self, pod_id) -> dict:
        response = self.get(f"/pods/{pod_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def action(self, pod_id, action):
        return self.post(f"/pods/{pod_id}/action", json={"action": action})

    def wait(self, pod_id, predicate, timeout=5.0) -> dict:
        """Poll the pod until predicate(pod) holds."""
        deadline = time.monotonic() + timeout
        while True:
            pod = self.pod(pod_id)
            if predicate(pod):
                return pod
            assert time.monotonic() < deadline, f"pod never matched; last: {pod['status']} runtime={pod['runtime']}"
            time.sleep(0.02)

    def wait_ready(self, pod_id, timeout=5.0) -> dict:
        return self.wait(pod_id, lambda p: p["status"] == "RUNNING" and p["runtime"] is not None, timeout)

    def proxy(self, pod_id, port, path="/health", **kwargs):
        kwargs.setdefault("timeout", 5)
        kwargs.setdefault("headers", {}).setdefault("User-Agent", USER_AGENT)
        return requests.get(self.emu.proxy_url.format(pod_id=pod_id, port=port) + path, **kwargs)

    def wait_proxy(self, pod_id, port, status=200, timeout=5.0):
        deadline = time.monotonic() + timeout
        while self.proxy(pod_id, port).status_code != status:
            assert time.monotonic() < deadline, f"proxy never answered {status}"
            time.sleep(0.02)


def read_events(response, until=lambda event: False, timeout=5.0, keep_comments=False) -> list[dict]:
    """Parse an SSE response into events ({"id", "data"} or {"comment"}) until `until(event)` or timeout."""
    events, current = [], {}
    deadline = time.monotonic() + timeout
    for raw in response.iter_lines(decode_unicode=True):
        if raw.startswith(":"):
            if keep_comments:
                events.append({"comment": raw[1:].strip()})
                if until(events[-1]):
                    break
        elif raw.startswith("id: "):
            current["id"] = raw[4:]
        elif raw.startswith("data: "):
            current["data"] = json.loads(raw[6:])
        elif raw == "" and current:
            events.append(current)
            current = {}
            if until(events[-1]):
                break
        if time.monotonic() > deadline:
            break
    return events


@pytest.fixture
def pod_body() -> dict:
    """A valid CreatePodRequest like the program's (L40S in EU-RO-1 with the seeded volume)."""
    return copy.deepcopy(GPU_POD)


@pytest.fixture
def api(emulator) -> Client:
    return Client(emulator)


@pytest.fixture
def new_client(emulator):
    """Make more clients (e.g. one per thread, or with another key)."""
    return lambda key=None: Client(emulator, key)


@pytest.fixture
def sse():
    return read_events
