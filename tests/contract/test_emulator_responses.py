"""Every emulator response body validates against the v2 OpenAPI spec's *response* schema for that
operation and status (jsonschema, Draft 2020-12, `$ref`s resolved against the whole spec), and the
request schemas the emulator validates bodies with are the spec's own.

The spec is not copied into the repo: it is read from `shared/reference/runpod-openapi-v2.json`
next to the repo, or from $RUNPOD_OPENAPI_V2.
"""
from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path

import pytest
import requests

jsonschema = pytest.importorskip("jsonschema")
referencing = pytest.importorskip("referencing")
from referencing.jsonschema import DRAFT202012  # noqa: E402

from runpod_emulator import validation  # noqa: E402

SPEC_PATH = Path(os.environ.get("RUNPOD_OPENAPI_V2")
                 or Path(__file__).resolve().parents[2].parent / "shared/reference/runpod-openapi-v2.json")
SPEC_URI = "urn:runpod:openapi-v2"
UA = {"User-Agent": "runpod-deploy-contract-tests"}

POD_BODY = {
    "name": "contract",
    "image": "vllm/vllm-openai:v0.11.0",
    "gpu": {"id": "NVIDIA L40S", "count": 1},
    "dataCenterIds": ["EU-RO-1"],
    "ports": ["8000/http", "22/tcp"],
    "env": {"VLLM_API_KEY": "k"},
    "mounts": {"network": [{"volumeId": "fuzzvol01eu", "path": "/workspace"}]},
}


@pytest.fixture(scope="module")
def spec() -> dict:
    if not SPEC_PATH.is_file():
        pytest.skip(f"v2 OpenAPI spec not found at {SPEC_PATH} (set RUNPOD_OPENAPI_V2 to its path)")
    return json.loads(SPEC_PATH.read_text())


@pytest.fixture(scope="module")
def check(spec):
    """check(response, "/v2/pods/{id}", "get"): validate the body against the spec's response schema."""
    registry = referencing.Registry().with_resource(
        SPEC_URI, referencing.Resource.from_contents(spec, default_specification=DRAFT202012))

    def _check(response: requests.Response, path: str, method: str):
        responses = spec["paths"][path][method]["responses"]
        code = str(response.status_code)
        assert code in responses or "default" in responses, f"{method.upper()} {path} declares no {code}"
        pointer = ["paths", path, method, "responses", code if code in responses else "default"]
        declared = responses[pointer[-1]]
        if "$ref" in declared:  # e.g. #/components/responses/NotFoundError
            pointer = declared["$ref"].lstrip("#/").split("/")
            declared = spec
            for part in pointer:
                declared = declared[part]
        if "content" not in declared:  # 204: no body
            assert response.content == b""
            return None
        [(media_type, _)] = declared["content"].items()
        assert response.headers["Content-Type"].split(";")[0] == media_type
        escaped = "/".join(p.replace("~", "~0").replace("/", "~1") for p in pointer)
        schema = {"$ref": f"{SPEC_URI}#/{escaped}/content/{media_type.replace('/', '~1')}/schema"}
        validator = jsonschema.Draft202012Validator(
            schema, registry=registry, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
        body = response.json()
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
        assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
        return body

    return _check


@pytest.fixture
def http(emulator):
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {emulator.api_key}", **UA})
    return lambda method, path, **kw: session.request(method, emulator.api_url + path, timeout=5, **kw)


def test_the_emulators_request_schemas_are_the_specs(spec):
    vendored = json.loads(validation.SCHEMA_FILE.read_text())
    assert vendored["components"] == validation.extract(spec)["components"], (
        f"{validation.SCHEMA_FILE.name} differs from {SPEC_PATH}; regenerate it with "
        f"`python -m runpod_emulator.validation {SPEC_PATH}`")


def _rfc3339(value):
    return value is None or datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_pod_responses_through_the_whole_lifecycle(http, check):
    pod = check(http("POST", "/pods", json=POD_BODY), "/v2/pods", "post")
    assert pod["status"] == "PROVISIONING"
    pod_id = pod["id"]
    seen = set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # each status and the runtime-null RUNNING quirk
        pod = check(http("GET", f"/pods/{pod_id}"), "/v2/pods/{id}", "get")
        assert _rfc3339(pod["createdAt"]) and _rfc3339(pod["startedAt"])
        seen.add((pod["status"], pod["runtime"] is None))
        if pod["runtime"] is not None:
            break
        time.sleep(0.02)
    assert ("RUNNING", True) in seen and ("RUNNING", False) in seen
    check(http("GET", "/pods"), "/v2/pods", "get")
    check(http("PATCH", f"/pods/{pod_id}", json={"env": {"A": "b"}, "locked": False}), "/v2/pods/{id}", "patch")
    check(http("POST", f"/pods/{pod_id}/action", json={"action": "stop"}), "/v2/pods/{id}/action", "post")
    exited = check(http("GET", f"/pods/{pod_id}"), "/v2/pods/{id}", "get")
    assert exited["status"] == "EXITED"
    check(http("POST", f"/pods/{pod_id}/action", json={"action": "start"}), "/v2/pods/{id}/action", "post")
    check(http("POST", f"/pods/{pod_id}/action", json={"action": "terminate"}), "/v2/pods/{id}/action", "post")
    pod_id = check(http("POST", "/pods", json=POD_BODY), "/v2/pods", "post")["id"]
    check(http("DELETE", f"/pods/{pod_id}"), "/v2/pods/{id}", "delete")


@pytest.mark.emulator(paginate=1)
def test_paginated_list_response(http, check):
    for _ in range(2):
        http("POST", "/pods", json=POD_BODY)
    body = check(http("GET", "/pods"), "/v2/pods", "get")
    assert body["pagination"]["hasNextPage"] is True


def test_network_volume_responses(http, check):
    check(http("GET", "/network-volumes"), "/v2/network-volumes", "get")
    check(http("GET", "/network-volumes/fuzzvol01eu"), "/v2/network-volumes/{id}", "get")


@pytest.mark.parametrize("params", [{}, {"include": "AVAILABILITY", "product": "POD"},
                                    {"include": "AVAILABILITY", "product": "POD", "count": "2", "cloud": "COMMUNITY"}])
def test_catalog_gpu_responses(emulator, http, check, params):
    emulator.set_stock("US-TX-3", "NVIDIA H100 80GB HBM3", "NONE")
    check(http("GET", "/catalog/gpus", params=params), "/v2/catalog/gpus", "get")


def test_error_responses(emulator, http, check):
    pod_id = http("POST", "/pods", json=POD_BODY).json()["id"]
    errors = [
        (http("POST", "/pods", json={**POD_BODY, "dockerArgs": "x"}), "/v2/pods", "post", 422),
        (http("POST", "/pods", json={**POD_BODY, "cpu": {"id": "cpu3c", "vcpuCount": 2}}), "/v2/pods", "post", 400),
        (http("GET", "/pods/nosuchpod00000"), "/v2/pods/{id}", "get", 404),
        (http("POST", f"/pods/{pod_id}/action", json={"action": "start"}), "/v2/pods/{id}/action", "post", 409),
        (http("POST", f"/pods/{pod_id}/action", json={"action": "reset"}), "/v2/pods/{id}/action", "post", 422),
        (http("PATCH", f"/pods/{pod_id}", json={"gpu": {}}), "/v2/pods/{id}", "patch", 422),
        (http("GET", "/catalog/gpus", params={"include": "AVAILABILITY"}), "/v2/catalog/gpus", "get", 400),
        (http("GET", "/network-volumes/nope"), "/v2/network-volumes/{id}", "get", 404),
        (http("PUT", "/pods"), "/v2/pods", "get", 405),
    ]
    emulator.set_stock("EU-RO-1", "NVIDIA L40S", "NONE")
    errors.append((http("POST", "/pods", json=POD_BODY), "/v2/pods", "post", 400))
    emulator.inject(kind="status", status=429)
    errors.append((http("GET", "/pods"), "/v2/pods", "get", 429))
    emulator.inject(kind="status", status=503)
    errors.append((http("GET", "/pods"), "/v2/pods", "get", 503))
    errors.append((requests.get(emulator.api_url + "/pods", headers=UA, timeout=5), "/v2/pods", "get", 401))
    errors.append((requests.get(emulator.api_url + "/pods", headers={"Authorization": "Bearer x", **UA}, timeout=5),
                   "/v2/pods", "get", 403))
    for response, path, method, status in errors:
        assert response.status_code == status, (path, method, response.text)
        body = check(response, path, method)
        assert body["status"] == status


def _fake_response(status: int, body, content_type="application/json") -> requests.Response:
    response = requests.Response()
    response.status_code, response._content = status, json.dumps(body).encode()
    response.headers["Content-Type"] = content_type
    return response


def test_the_response_check_is_not_vacuous(http, check):
    pod = http("POST", "/pods", json=POD_BODY).json()
    for broken in ({k: v for k, v in pod.items() if k != "status"}, {**pod, "status": "BOOTING"},
                   {**pod, "gpu": {"id": "NVIDIA L40S", "count": 1}}):  # gpu without vcpuCount/memory
        with pytest.raises(AssertionError):
            check(_fake_response(201, broken), "/v2/pods", "post")
    with pytest.raises(AssertionError):
        check(_fake_response(404, {"status": 404}, "application/problem+json"), "/v2/pods/{id}", "get")
