"""A stand-in for RunPod's GraphQL API (`POST https://api.runpod.io/graphql`): only what a pod needs
to stop itself with its pod-scoped key, because that is what a live report saw work where REST did
not (runpod_emulator/README.md, "The pod-scoped key"; ../shared/reference/live-behaviour-review-2.md §2a).

Supported (anything else is a 400 "not emulated"):

    mutation { podStop(input: {podId: "<id>" | $var}) { id desiredStatus lastStatusChange } }
    query    { pod(input: {podId: "<id>" | $var})     { id desiredStatus lastStatusChange } }

Shapes, as RunPod's clients read them: a refusal or a failed operation is HTTP 200 with `data` holding
null for that field and an `errors` array (runpodctl api/pod.go reads `errors[0].message` from a 200;
"graphql answers a missing resource with 200 and a null data field", runpodctl internal/api/client.go);
an unknown key is HTTP 401 (runpod-python runpod/api/graphql.py raises AuthenticationError on 401).
The key comes as `Authorization: Bearer` (runpod-python) or `?api_key=` (runpodctl api/query.go).
"""
from __future__ import annotations

import re
import secrets
import threading
import time

from .messages import ApiError, Reply, Request, json_reply

PATH = "/graphql"
FIELDS = ("id", "desiredStatus", "lastStatusChange")  # what the stand-in can answer per pod
_OPERATION = re.compile(
    r"\b(podStop|pod)\s*\(\s*input\s*:\s*\{\s*podId\s*:\s*(\$\w+|\"[^\"]*\")\s*\}\s*\)\s*(\{[^{}]*\})?")


class GraphQL:
    """Answers `/graphql` for `emu` (an `Emulator`: its world and its account keys)."""

    def __init__(self, emu):
        self.emu = emu
        self._lock = threading.Lock()
        self._calls: list[dict] = []

    def calls(self) -> list[dict]:
        """Every GraphQL call: {"operation","pod_id","key" ("account"|"pod"|"unknown"),"ok","ts"}."""
        with self._lock:
            return [dict(c) for c in self._calls]

    def clear(self):
        with self._lock:
            self._calls.clear()

    def handle(self, req: Request) -> Reply:
        if req.method != "POST":
            return _errors(405, "use POST", headers={"Allow": "POST"})
        key, own_pod = self._key(req)
        kind = "account" if key in self.emu.api_keys else "pod" if own_pod else "unknown"
        try:
            body = req.json()
        except ApiError:
            return _errors(400, "request body is not valid JSON")
        query = body.get("query") if isinstance(body, dict) else None
        variables = (body.get("variables") or {}) if isinstance(body, dict) else {}
        match = _OPERATION.search(query) if isinstance(query, str) else None
        if match is None or not isinstance(variables, dict):
            return _errors(400, "not emulated: the stand-in serves only podStop and pod(input: {podId})")
        field, ref, selection = match[1], match[2], match[3] or "{ id }"
        pod_id = variables.get(ref[1:]) if ref.startswith("$") else ref[1:-1]
        record = {"operation": field, "pod_id": pod_id, "key": kind, "ok": False, "ts": time.time()}
        with self._lock:
            self._calls.append(record)
        if kind == "unknown":
            return _errors(401, "Unauthorized")
        if not isinstance(pod_id, str):
            return _field_error(field, "podId must be a String")
        if kind == "pod" and not secrets.compare_digest(pod_id, own_pod):
            return _field_error(field, "a pod-scoped API key may only act on its own pod")
        try:
            pod = self.emu.world.pod_action(pod_id, "stop") if field == "podStop" else self.emu.world.get_pod(pod_id)
        except ApiError as exc:
            return _field_error(field, "pod not found" if exc.status == 404 else exc.detail)
        record["ok"] = True
        values = {"id": pod["id"], "desiredStatus": pod["status"],
                  "lastStatusChange": f"{'Exited by user' if pod['status'] == 'EXITED' else 'Rented by User'}: "
                                      f"{time.strftime('%a %b %d %Y %H:%M:%S GMT+0000', time.gmtime())}"}
        wanted = [name for name in re.findall(r"\w+", selection) if name in FIELDS] or ["id"]
        return json_reply(200, {"data": {field: {name: values[name] for name in wanted}}})

    def _key(self, req: Request) -> tuple[str | None, str | None]:
        scheme, _, key = req.headers.get("authorization", "").partition(" ")
        key = key.strip() if scheme.lower() == "bearer" else ""
        key = key or req.query.get("api_key", "")
        if not key:
            return None, None
        return key, (None if key in self.emu.api_keys else self.emu.world.pod_of_key(key))


def _errors(status: int, message: str, headers=None) -> Reply:
    reply = json_reply(status, {"errors": [{"message": message}]})
    reply.headers.update(headers or {})
    return reply


def _field_error(field: str, message: str) -> Reply:
    return json_reply(200, {"data": {field: None}, "errors": [{"message": message, "path": [field]}]})
