"""Request bodies are strict (422 naming the field) and cross-field rules are 400s, like v2."""
from __future__ import annotations

import pytest

V1_LEFTOVERS = ["imageName", "gpuTypeIds", "gpuTypePriority", "gpuCount", "dataCenterId", "dataCenterPriority",
                "cloudType", "containerDiskInGb", "volumeInGb", "volumeMountPath", "networkVolumeId",
                "dockerStartCmd", "dockerEntrypoint", "dockerArgs", "interruptible", "supportPublicIp",
                "countryCodes", "minDownloadMbps", "computeType", "locked"]


def _create_errors(api, body):
    response = api.post("/pods", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["title"] == "Unprocessable Entity" and problem["status"] == 422
    return problem["errors"]


@pytest.mark.parametrize("key", V1_LEFTOVERS)
def test_create_rejects_every_v1_leftover_key_by_name(api, pod_body, key):
    errors = _create_errors(api, {**pod_body, key: "x"})
    assert f"$: additional properties '{key}' not allowed" in errors


def test_create_lists_every_violation_at_once(api, pod_body):
    body = {k: v for k, v in pod_body.items() if k not in ("name", "image")}
    body["dockerArgs"] = "x"
    errors = _create_errors(api, body)
    assert "$: missing property 'name'" in errors
    assert "$: missing property 'image'" in errors
    assert "$: additional properties 'dockerArgs' not allowed" in errors


@pytest.mark.parametrize("patch, message", [
    ({"gpu": {"id": "NVIDIA L40S", "count": 0}}, "$.gpu.count: minimum 1"),
    ({"gpu": {"count": 1}}, "$.gpu: missing property 'id'"),
    ({"gpu": {"id": "NVIDIA L40S", "count": 1, "ids": ["x"]}}, "$.gpu: additional properties 'ids' not allowed"),
    ({"cloud": "ALL"}, "$.cloud: value must be one of 'SECURE', 'COMMUNITY'"),
    ({"ports": ["8000"]}, "$.ports[0]: does not match pattern '^\\d+/(http|tcp)$'"),
    ({"ports": ["8000/http", "53/udp"]}, "$.ports[1]: does not match pattern '^\\d+/(http|tcp)$'"),
    ({"ports": "8000/http,22/tcp"}, "$.ports: expected array, got string"),
    ({"disk": 0}, "$.disk: minimum 1"),
    ({"env": {"HF_HUB_OFFLINE": 1}}, "$.env.HF_HUB_OFFLINE: expected string, got integer"),
    ({"env": [{"key": "A", "value": "b"}]}, "$.env: expected object, got array"),
    ({"args": ["bash", "-lc", "x"]}, "$.args: expected string, got array"),
    ({"name": ""}, "$.name: minLength 1"),
    ({"mounts": {"network": [{"volumeId": "fuzzvol01eu"}]}}, "$.mounts.network[0]: missing property 'path'"),
    ({"mounts": {"network": [{"path": "/workspace"}]}}, "$.mounts.network[0]: missing property 'volumeId'"),
    ({"mounts": {"network": [{"volumeId": "a", "path": "/a"}, {"volumeId": "b", "path": "/b"}]}},
     "$.mounts.network: maxItems 1"),
    ({"mounts": {"volume": {}}}, "$.mounts: additional properties 'volume' not allowed"),
])
def test_create_names_the_offending_field(api, pod_body, patch, message):
    assert message in _create_errors(api, {**pod_body, **patch})


def test_a_bad_nested_value_is_the_only_error(api, pod_body):
    # The spec's allOf + unevaluatedProperties must not turn the valid keys beside it into errors.
    assert _create_errors(api, {**pod_body, "gpu": {"id": "NVIDIA L40S", "count": 0}}) == ["$.gpu.count: minimum 1"]


def test_image_is_required_without_a_template_id(api, pod_body):
    body = {k: v for k, v in pod_body.items() if k != "image"}
    assert _create_errors(api, body) == ["$: missing property 'image'"]


def test_create_body_that_is_not_json_is_400(api):
    response = api.post("/pods", data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["status"] == 400


def test_create_with_gpu_and_cpu_is_400(api, pod_body):
    response = api.post("/pods", json={**pod_body, "cpu": {"id": "cpu3c", "vcpuCount": 2}})
    assert response.status_code == 400
    assert "exactly one of gpu or cpu" in response.json()["detail"]


def test_create_with_neither_gpu_nor_cpu_is_400(api, pod_body):
    body = {k: v for k, v in pod_body.items() if k != "gpu"}
    assert api.post("/pods", json=body).status_code == 400


def test_unknown_gpu_id_is_400_naming_it(api, pod_body):
    response = api.post("/pods", json={**pod_body, "gpu": {"id": "L40S", "count": 1}})
    assert response.status_code == 400
    assert "'L40S'" in response.json()["detail"]


def test_network_volume_that_does_not_exist_is_404(api, pod_body):
    response = api.post("/pods", json={**pod_body, "mounts": {"network": [{"volumeId": "nope", "path": "/w"}]}})
    assert response.status_code == 404
    assert "nope" in response.json()["detail"]


def test_network_volume_outside_data_center_ids_is_400(api, pod_body):
    response = api.post("/pods", json={**pod_body, "dataCenterIds": ["US-TX-3"]})  # the volume is in EU-RO-1
    assert response.status_code == 400
    assert "EU-RO-1" in response.json()["detail"]


def test_persistent_and_network_mounts_together_are_400(api, pod_body):
    mounts = {"persistent": {"size": 20, "path": "/data"}, "network": [{"volumeId": "fuzzvol01eu", "path": "/w"}]}
    assert api.post("/pods", json={**pod_body, "mounts": mounts}).status_code == 400


def test_cuda_list_and_floor_together_are_400(api, pod_body):
    gpu = {"id": "NVIDIA L40S", "count": 1, "allowedCudaVersions": ["12.8"], "minCudaVersion": "12.4"}
    assert api.post("/pods", json={**pod_body, "gpu": gpu}).status_code == 400


def test_template_id_is_404_because_the_emulator_has_no_templates(api, pod_body):
    body = {k: v for k, v in pod_body.items() if k != "image"}
    assert api.post("/pods", json={**body, "templateId": "ru5n1lipag"}).status_code == 404


def test_patch_rejects_fields_that_are_not_patchable(api):
    pod = api.create()
    response = api.patch(f"/pods/{pod['id']}", json={"gpu": {"id": "NVIDIA L40S", "count": 2}, "startSsh": True})
    assert response.status_code == 422
    assert "$: additional properties 'gpu' not allowed" in response.json()["errors"]
    assert "$: additional properties 'startSsh' not allowed" in response.json()["errors"]


def test_patch_cannot_change_the_network_volume(api):
    pod = api.create()
    response = api.patch(f"/pods/{pod['id']}", json={"mounts": {"network": [{"volumeId": "usvol0001", "path": "/w"}]}})
    assert response.status_code == 400


def test_action_with_unknown_value_is_422_with_the_live_message(api):
    pod = api.create()
    response = api.action(pod["id"], "reset")
    assert response.status_code == 422
    assert response.json()["errors"] == ["$.action: value must be one of 'start', 'stop', 'restart', 'terminate'"]


def test_action_body_is_strict(api):
    pod = api.create()
    response = api.post(f"/pods/{pod['id']}/action", json={"action": "stop", "force": True})
    assert response.status_code == 422
    assert "$: additional properties 'force' not allowed" in response.json()["errors"]


def test_unknown_query_parameters_are_ignored(api):
    api.create()
    response = api.get("/pods", params={"desiredStatus": "RUNNING", "whatever": "1"})
    assert response.status_code == 200
    assert len(response.json()["pods"]) == 1


def test_unknown_path_is_404_problem(api):
    response = api.post("/pods/abc/update", json={})
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"


def test_wrong_method_is_405_with_allow_header(api):
    response = api.request("PUT", "/pods")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"GET", "POST"}
