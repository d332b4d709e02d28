"""Request bodies checked against the v2 OpenAPI spec's own request schemas (jsonschema).

The schemas (`CreatePodRequest`, `UpdatePodRequest`, `PodActionRequest` and what they `$ref`) are
copied verbatim into `request_schemas.json`, with the spec's source and sha256; a contract test
checks the copy still equals the spec. Regenerate it with
`python -m runpod_emulator.validation path/to/runpod-openapi-v2.json`.

Those schemas set `unevaluatedProperties: false`, so any unknown key (every v1 leftover such as
`imageName`) is a 422. Messages take the live API's `$`-path form, one per violation, e.g.
`$: additional properties 'dataCenterId' not allowed`, `$: missing property 'name'`,
`$.action: value must be one of 'start', 'stop', 'restart', 'terminate'` (the wording the
v2 docs and live clients show; see https://docs.runpod.io/api-reference-v2 and
`runpod_emulator/README.md`).
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import jsonschema
import referencing
from referencing.jsonschema import DRAFT202012

SCHEMA_FILE = Path(__file__).with_name("request_schemas.json")
ROOTS = ("CreatePodRequest", "UpdatePodRequest", "PodActionRequest")
SOURCE = "runpod/docs api-reference-v2/openapi.json @ 081392fe"

# Not in the spec (its `ports` items are any string), but the documented form is `<port>/http` or
# `<port>/tcp` (https://docs.runpod.io/pods/configuration/expose-ports); the emulator insists.
PORT_PATTERN = r"^\d+/(http|tcp)$"
_PORTS_RULE = {"properties": {"ports": {"items": {"pattern": PORT_PATTERN}}}}

_DOC = json.loads(SCHEMA_FILE.read_text())
_SCHEMAS = _DOC["components"]["schemas"]
_REGISTRY = referencing.Registry().with_resource(
    "urn:runpod-v2", referencing.Resource.from_contents(_DOC, default_specification=DRAFT202012))


def _validator(name: str, *rules: dict) -> jsonschema.Draft202012Validator:
    schema = {"allOf": [{"$ref": f"urn:runpod-v2#/components/schemas/{name}"}, *rules]}
    return jsonschema.Draft202012Validator(schema, registry=_REGISTRY)


VALIDATORS = {
    "createPod": _validator("CreatePodRequest", _PORTS_RULE),
    "updatePod": _validator("UpdatePodRequest", _PORTS_RULE),
    "podAction": _validator("PodActionRequest"),
}


def errors(operation: str, body) -> list[str]:
    """Every violation of the request schema of `operation` (an operationId), `$`-path strings."""
    found: dict[str, None] = {}  # ordered and without duplicates
    for error in VALIDATORS[operation].iter_errors(body):
        for message in _messages(error):
            found[f"{_path(error.absolute_path)}: {message}"] = None
    return list(found)


def _messages(error: jsonschema.ValidationError) -> list[str]:
    kind, wanted, value = error.validator, error.validator_value, error.instance
    if kind in ("additionalProperties", "unevaluatedProperties"):
        # jsonschema also reports valid keys as unevaluated when a sibling fails (annotations of a
        # failed subschema are dropped); only keys no subschema declares are really extra.
        return [f"additional properties '{key}' not allowed" for key in value if key not in _declared(error.schema)]
    if kind == "required":
        return [f"missing property '{name}'" for name in wanted if name not in value]
    if kind == "type":
        return [f"expected {' or '.join(wanted) if isinstance(wanted, list) else wanted}, got {_json_type(value)}"]
    if kind == "enum":
        return ["value must be one of " + ", ".join(f"'{v}'" for v in wanted)]
    if kind == "pattern":
        return [f"does not match pattern '{wanted}'"]
    if kind in ("minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems"):
        return [f"{kind} {wanted}"]
    return [error.message]


def _declared(schema: dict) -> set[str]:
    """Property names a schema declares, through `allOf` and `$ref`."""
    names = set(schema.get("properties", {}))
    for sub in schema.get("allOf", []):
        names |= _declared(sub)
    if "$ref" in schema:
        names |= _declared(_SCHEMAS[schema["$ref"].rsplit("/", 1)[1]])
    return names


def _path(parts) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _json_type(value) -> str:
    if isinstance(value, bool):  # before int: in JSON a boolean is not a number
        return "boolean"
    if isinstance(value, float) and value.is_integer():
        return "integer"
    names = {type(None): "null", int: "integer", float: "number", str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def extract(spec: dict) -> dict:
    """The part of the spec `request_schemas.json` holds: the ROOTS and every schema they `$ref`."""
    schemas, todo = {}, list(ROOTS)
    while todo:
        name = todo.pop()
        if name not in schemas:
            schemas[name] = spec["components"]["schemas"][name]
            todo += [ref.rsplit("/", 1)[1] for ref in _refs(schemas[name])]
    return {"components": {"schemas": dict(sorted(schemas.items()))}}


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from [value] if key == "$ref" else _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


if __name__ == "__main__":
    raw = Path(sys.argv[1]).read_bytes()
    doc = {"source": SOURCE, "sha256": hashlib.sha256(raw).hexdigest(), **extract(json.loads(raw))}
    SCHEMA_FILE.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
