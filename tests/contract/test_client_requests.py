"""Every request body the client sends validates against the v2 OpenAPI request schemas.

The bodies are captured from the wire (a local server records what the client really sent) and
checked with JSON Schema 2020-12 against the schema of the operation they were sent to, `$ref`s
resolved against the whole spec document.
"""

from __future__ import annotations

import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from runpod_provider.client import RunPodClient
from runpod_provider.wire import (
    CreatePodRequest,
    GpuRequest,
    Mounts,
    NetworkMount,
    PodActionRequest,
    UpdatePodRequest,
)

DEFAULT_SPEC = Path(__file__).resolve().parents[2].parent / "shared/reference/runpod-openapi-v2.json"
SPEC = Path(os.environ.get("RUNPOD_OPENAPI_V2") or DEFAULT_SPEC)
if not SPEC.is_file():
    pytest.skip(f"v2 OpenAPI spec not found at {SPEC} (set RUNPOD_OPENAPI_V2)", allow_module_level=True)

SPEC_URI = "urn:runpod-openapi-v2"
POD = {"id": "5xpma5eg46tqjq", "name": "n", "status": "RUNNING", "createdAt": "2026-08-20T06:16:19Z"}


@pytest.fixture(scope="module")
def spec() -> dict:
    return json.loads(SPEC.read_text())


@pytest.fixture(scope="module")
def validator_for(spec):
    """(method, concrete path) -> a validator for that operation's JSON request body."""
    registry = Registry().with_resource(SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT202012))

    def find(method: str, path: str) -> Draft202012Validator:
        for template, item in spec["paths"].items():
            if re.fullmatch(re.sub(r"\{[^/]+\}", "[^/]+", template), path) and method.lower() in item:
                schema = item[method.lower()]["requestBody"]["content"]["application/json"]["schema"]
                if "$ref" in schema:
                    schema = {"$ref": SPEC_URI + schema["$ref"]}
                return Draft202012Validator(schema, registry=registry)
        raise AssertionError(f"no operation {method} {path} in the spec")

    return find


@pytest.fixture
def captured():
    """A client pointed at a local server that records each (method, path, body) and answers 2xx."""
    seen: list[tuple[str, str, object]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            seen.append((self.command, self.path, json.loads(self.rfile.read(length)) if length else None))
            status = {"POST /v2/pods": 201}.get(f"{self.command} {self.path}", 200)
            data = b"" if self.command == "DELETE" else json.dumps(POD).encode()
            self.send_response(204 if self.command == "DELETE" else status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _answer  # noqa: N815 - http.server dispatches on these names

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    client = RunPodClient("rpa_TEST", f"http://127.0.0.1:{server.server_port}/v2")
    yield client, seen
    client.close()
    server.shutdown()
    server.server_close()


def full_create(**gpu) -> CreatePodRequest:
    return CreatePodRequest(
        name="llm-ab12",
        image="vllm/vllm-openai:v0.11.0",
        gpu=GpuRequest(id="NVIDIA L40S", count=2, **gpu),
        cloud="COMMUNITY",
        dataCenterIds=["EU-RO-1"],
        mounts=Mounts(network=[NetworkMount(volumeId="grvtso8ftn", path="/workspace")]),
        disk=40,
        env={"HF_HOME": "/workspace/hf"},
        ports=["8000/http", "22/tcp"],
        args="--model Qwen/Qwen3-8B --port 8000",
        startSsh=True,
    )


def full_update() -> UpdatePodRequest:
    return UpdatePodRequest(
        name="llm-ab12",
        image="vllm/vllm-openai:v0.11.1",
        args="--port 8000",
        disk=50,
        ports=["8000/http"],
        env={"A": "1"},
    )


def test_the_full_requests_set_every_field_the_models_have():
    # A field added to a wire model must be added here too, so its JSON gets checked.
    assert full_create(minCudaVersion="12.8").model_fields_set == set(CreatePodRequest.model_fields)
    assert full_create(minCudaVersion="12.8").gpu.model_fields_set == {"id", "count", "minCudaVersion"}
    assert full_update().model_fields_set == set(UpdatePodRequest.model_fields)


def test_every_body_the_client_sends_matches_its_operation_schema(captured, validator_for):
    client, seen = captured
    client.create_pod(CreatePodRequest(name="min", image="img:1", gpu=GpuRequest(id="NVIDIA L40S")))
    client.create_pod(full_create(minCudaVersion="12.8"))
    client.update_pod("5xpma5eg46tqjq", full_update())
    client.update_pod("5xpma5eg46tqjq", UpdatePodRequest(ports=[]))
    client.start_pod("5xpma5eg46tqjq")
    client.stop_pod("5xpma5eg46tqjq")

    sent = [(m, p, b) for m, p, b in seen if b is not None]
    assert [(m, p) for m, p, _ in sent] == [
        ("POST", "/v2/pods"),
        ("POST", "/v2/pods"),
        ("PATCH", "/v2/pods/5xpma5eg46tqjq"),
        ("PATCH", "/v2/pods/5xpma5eg46tqjq"),
        ("POST", "/v2/pods/5xpma5eg46tqjq/action"),
        ("POST", "/v2/pods/5xpma5eg46tqjq/action"),
    ]
    for method, path, body in sent:
        problems = [e.message for e in validator_for(method, path).iter_errors(body)]
        assert problems == [], f"{method} {path}: {problems}"
    assert sent[1][2]["gpu"] == {"id": "NVIDIA L40S", "count": 2, "minCudaVersion": "12.8"}


@pytest.mark.parametrize("action", ["start", "stop", "restart", "terminate"])
def test_every_action_body_matches_the_schema(validator_for, action):
    assert list(validator_for("POST", "/v2/pods/x/action").iter_errors(PodActionRequest(action=action).to_body())) == []


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", "/v2/pods", {"name": "n", "image": "i", "gpu": {"id": "g", "count": 1}, "imageName": "i"}),
        ("POST", "/v2/pods", {"name": "n", "image": "i", "gpu": {"id": "g", "count": 1, "gpuCount": 1}}),
        ("PATCH", "/v2/pods/x", {"gpu": {"id": "g"}}),
        ("POST", "/v2/pods/x/action", {"action": "reset"}),
    ],
)
def test_the_schema_check_is_not_vacuous(validator_for, method, path, body):
    # The server's strictness, reproduced: leftover v1 keys and bad enums are refused.
    assert list(validator_for(method, path).iter_errors(body)) != []
