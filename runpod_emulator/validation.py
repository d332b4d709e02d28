"""Strict request-body validation with v2-style `$`-path errors.

v2 request schemas set `additionalProperties`/`unevaluatedProperties: false`, so any unknown key
(notably every v1 leftover such as `imageName` or `dockerArgs`) is a 422 naming it (api digest §2,
§4). This is a small hand-written subset of JSON Schema (type, properties, required,
additionalProperties, enum, minimum/maximum, minLength, pattern, items, maxItems, minProperties)
so the emulator needs nothing beyond the stdlib. The schemas below mirror the spec's request
schemas (CreatePodRequest, UpdatePodRequest, PodActionRequest, Create/UpdateNetworkVolumeRequest).

Message formats (one string per violation):
    $: additional properties 'dockerArgs' not allowed
    $: missing property 'name'
    $.gpu.count: minimum 1
    $.ports[0]: does not match pattern '^\\d+/(http|tcp)$'
    $.action: value must be one of 'start', 'stop', 'restart', 'terminate'
    $.env.HF_TOKEN: expected string, got integer
"""
from __future__ import annotations

import re

PORT_PATTERN = r"^\d+/(http|tcp)$"
CUDA_PATTERN = r"^\d+\.\d+$"

_STRING = {"type": "string"}
_BOOL = {"type": "boolean"}
_CUDA = {"type": "string", "pattern": CUDA_PATTERN}

# BaseContainerConfig + ContainerConfig.registry. The spec leaves `ports` items unconstrained,
# but documents the `<port>/http|tcp` form and the API rejects others; we check the pattern.
_CONTAINER = {
    "args": {"type": "string"},
    "disk": {"type": "integer", "minimum": 1},
    "env": {"type": "object", "additionalProperties": {"type": "string"}},
    "image": {"type": "string"},
    "ports": {"type": "array", "items": {"type": "string", "pattern": PORT_PATTERN}},
    "registry": {"type": ["string", "null"]},
}

_NETWORK_MOUNT = {
    "type": "object",
    "required": ["volumeId", "path"],
    "additionalProperties": False,
    "properties": {"volumeId": _STRING, "path": _STRING},
}
_PERSISTENT_MOUNT = {
    "type": "object",
    "required": ["size", "path"],
    "additionalProperties": False,
    "properties": {"size": {"type": "integer", "minimum": 10}, "path": _STRING},
}
MOUNTS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "persistent": _PERSISTENT_MOUNT,
        "network": {"type": "array", "maxItems": 1, "items": _NETWORK_MOUNT},
    },
}

_CREATE_GPU = {
    "type": "object",
    "required": ["id"],
    "additionalProperties": False,
    "properties": {
        "id": _STRING,
        "count": {"type": "integer", "minimum": 1},
        "allowedCudaVersions": {"type": "array", "items": _CUDA},
        "minCudaVersion": _CUDA,
        "minRamPerGpu": {"type": "integer", "minimum": 1},
        "minVcpuCountPerGpu": {"type": "integer", "minimum": 1},
    },
}
_CREATE_CPU = {
    "type": "object",
    "required": ["id", "vcpuCount"],
    "additionalProperties": False,
    "properties": {"id": {"type": "string", "minLength": 1}, "vcpuCount": {"type": "integer", "minimum": 2}},
}

CREATE_POD = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        **_CONTAINER,
        "name": {"type": "string", "minLength": 1},
        "cloud": {"type": "string", "enum": ["SECURE", "COMMUNITY"]},
        "cpu": _CREATE_CPU,
        "dataCenterIds": {"type": "array", "items": _STRING},
        "globalNetworking": _BOOL,
        "gpu": _CREATE_GPU,
        "mounts": MOUNTS,
        "startJupyter": _BOOL,
        "startSsh": _BOOL,
        "templateId": {"type": "string", "minLength": 1},
    },
}

UPDATE_POD = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **_CONTAINER,
        "globalNetworking": _BOOL,
        "locked": _BOOL,
        "mounts": MOUNTS,
        "name": {"type": "string", "minLength": 1},
        "templateId": _STRING,
    },
}

POD_ACTIONS = ["start", "stop", "restart", "terminate"]
POD_ACTION = {
    "type": "object",
    "required": ["action"],
    "additionalProperties": False,
    "properties": {"action": {"type": "string", "enum": POD_ACTIONS}},
}

_VOLUME_SIZE = {"type": "integer", "minimum": 10, "maximum": 4096}
CREATE_VOLUME = {
    "type": "object",
    "required": ["name", "size", "dataCenter"],
    "additionalProperties": False,
    "properties": {
        "dataCenter": {"type": "string", "minLength": 1},
        "name": {"type": "string", "minLength": 1},
        "size": _VOLUME_SIZE,
        "type": {"type": "string", "enum": ["STANDARD", "HIGH_PERFORMANCE"]},
    },
}
UPDATE_VOLUME = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {"name": {"type": "string", "minLength": 1}, "size": _VOLUME_SIZE},
}


def json_type(value) -> str:
    """The JSON type name of a decoded value (bool is not an integer here, unlike in Python)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _type_ok(value, wanted) -> bool:
    have = json_type(value)
    names = wanted if isinstance(wanted, list) else [wanted]
    return have in names or (have == "integer" and "number" in names)


def _quote_list(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


def validate(schema: dict, value, path: str = "$") -> list[str]:
    """Return every violation of `schema` by `value`, as `$`-path strings (empty when valid)."""
    if "type" in schema and not _type_ok(value, schema["type"]):
        wanted = schema["type"]
        wanted = " or ".join(wanted) if isinstance(wanted, list) else wanted
        return [f"{path}: expected {wanted}, got {json_type(value)}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: value must be one of {_quote_list(schema['enum'])}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: maximum {schema['maximum']}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(f"{path}: minLength {schema['minLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: does not match pattern '{schema['pattern']}'")
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{path}: maxItems {schema['maxItems']}")
        if "items" in schema:
            for i, item in enumerate(value):
                errors += validate(schema["items"], item, f"{path}[{i}]")
    if isinstance(value, dict):
        errors += _validate_object(schema, value, path)
    return errors


def _validate_object(schema: dict, value: dict, path: str) -> list[str]:
    errors = [f"{path}: missing property '{name}'" for name in schema.get("required", []) if name not in value]
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        errors.append(f"{path}: minProperties {schema['minProperties']}")
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in props:
            errors += validate(props[key], item, f"{path}.{key}")
        elif extra is False:
            errors.append(f"{path}: additional properties '{key}' not allowed")
        elif isinstance(extra, dict):
            errors += validate(extra, item, f"{path}.{key}")
    return errors


def validate_create_pod(body) -> list[str]:
    errors = validate(CREATE_POD, body)
    # The spec's `if not templateId then required image`.
    if isinstance(body, dict) and "templateId" not in body and "image" not in body:
        errors.insert(0, "$: missing property 'image'")
    return errors


def validate_update_pod(body) -> list[str]:
    return validate(UPDATE_POD, body)


def validate_pod_action(body) -> list[str]:
    return validate(POD_ACTION, body)


def validate_create_volume(body) -> list[str]:
    return validate(CREATE_VOLUME, body)


def validate_update_volume(body) -> list[str]:
    return validate(UPDATE_VOLUME, body)
