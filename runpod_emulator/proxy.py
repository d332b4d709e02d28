"""Stand-in for `https://{podId}-{port}.proxy.runpod.net` at `/proxy/{pod_id}-{port}/...`.

Like the real proxy (https://docs.runpod.io/pods/configuration/expose-ports and
https://docs.runpod.io/pods/troubleshooting/troubleshooting-502-errors): a port not declared
`<port>/http` answers 404; a pod that is not running, has no runtime yet, or whose service is not
listening answers 502. Once the pod's services are ready it plays a tiny vLLM / Open WebUI:
`/health` is open, `/v1/*` needs `Authorization: Bearer <VLLM_API_KEY from the pod env>` when that
variable is set (vLLM's `--api-key` semantics), `/v1/models` lists SERVED_MODEL_NAME (or "model").
"""
from __future__ import annotations

import json
import re

from .messages import JSON, Reply, Request, json_reply
from .state import World

_TARGET = re.compile(r"^/proxy/(?P<pod>[a-z0-9]+)-(?P<port>\d+)(?P<rest>/.*)?$")


def _html(status: int, title: str) -> Reply:
    page = f"<html><head><title>{status} {title}</title></head><body><h1>{status} {title}</h1></body></html>"
    return Reply(status, page.encode(), "text/html; charset=utf-8")


class Proxy:
    def __init__(self, world: World):
        self.world = world

    def handle(self, req: Request) -> Reply:
        match = _TARGET.match(req.path)
        if not match:
            return _html(404, "Not Found")
        state, env = self.world.proxy_target(match["pod"], int(match["port"]))
        if state in ("no_pod", "no_port"):
            return _html(404, "Not Found")
        if state == "down":  # nothing listening yet (or the pod is stopped): the proxy's 502
            return _html(502, "Bad Gateway")
        return self._service(req, match["rest"] or "/", env)

    @staticmethod
    def _service(req: Request, path: str, env: dict) -> Reply:
        if path == "/health":
            return json_reply(200, {"status": True})
        if path.startswith("/v1/"):
            key = env.get("VLLM_API_KEY")
            if key and req.headers.get("authorization") != f"Bearer {key}":
                return Reply(401, json.dumps({"error": "Unauthorized"}).encode(), JSON)
            model = env.get("SERVED_MODEL_NAME") or "model"
            if path == "/v1/models":
                return json_reply(200, {"object": "list", "data": [{"id": model, "object": "model",
                                                                     "owned_by": "vllm"}]})
            if path == "/v1/chat/completions" and req.method == "POST":
                return json_reply(200, {
                    "id": "chatcmpl-emulator", "object": "chat.completion", "model": model,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": "emulated reply"}}],
                })
        return json_reply(200, {})
