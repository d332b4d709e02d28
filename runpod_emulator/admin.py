"""The emulator's admin interface, for when it runs as its own process (`python -m runpod_emulator`):
the `/_emulator` routes (no auth, not recorded) and `AdminClient`, which calls them. Both mirror
the in-process `Emulator` methods of the same names, so a test or demo behaves the same either way.

    GET    /_emulator/state            {"pods", "volumes", "requests", "faults"}
    POST   /_emulator/faults           body: kwargs of inject(), or a list of them
    DELETE /_emulator/faults           drop every pending fault
    POST   /_emulator/stock            {"dataCenter", "gpuId", "level"}
    POST   /_emulator/service          {"podId"?, "ready"}
    POST   /_emulator/reset
    POST   /_emulator/quotas           {"minute"?, "hour"?, "day"?} enforced per account ({} stops)
    DELETE /_emulator/pods/{id}        out-of-band delete (as from the console)
    POST   /_emulator/pods/{id}/stop   out-of-band stop (body {"reason"?}: the line it logs)
    POST   /_emulator/pods/{id}/start  out-of-band start (as from the console)
    GET    /_emulator/pods/{id}/container-env   the env the pod's container sees (injected identity included)

    admin = AdminClient("http://127.0.0.1:8765/_emulator")
    admin.inject(method="POST", path="/v2/pods", kind="after_effect", status=500)
    admin.set_stock("EU-RO-1", "NVIDIA L40S", "NONE"); admin.pods(); admin.requests()
"""
from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from urllib.parse import quote

from .messages import ApiError, Reply, Request, json_reply, no_content, problem

PREFIX = "/_emulator"


def handle(emu, req: Request) -> Reply:
    """Serve one `/_emulator` request with `emu` (an `Emulator`)."""
    try:
        return _route(emu, req.method, req.path[len(PREFIX):].rstrip("/"), req)
    except KeyError as exc:
        if req.path.startswith(f"{PREFIX}/pods/"):
            return problem(404, f"pod {exc} not found")
        return problem(400, f"bad admin request: missing {exc}")
    except ApiError as exc:
        return exc.reply()
    except (TypeError, ValueError) as exc:
        return problem(400, f"bad admin request: {exc}")


def _route(emu, method: str, path: str, req: Request) -> Reply:
    pod = re.fullmatch(r"/pods/([^/]+)(/stop|/start)?", path)
    if (method, path) == ("GET", "/state"):
        return json_reply(200, emu.state())
    if (method, path) == ("POST", "/faults"):
        body = req.json()
        for fault in body if isinstance(body, list) else [body]:
            emu.inject(**fault)
        return json_reply(200, {"faults": emu.faults.pending()})
    if pod and method == "POST" and pod[2] == "/start":
        return json_reply(200, emu.start_pod_out_of_band(pod[1]))
    if pod and method == "POST" and pod[2]:
        reason = (req.json() or {}).get("reason", "Stopping container") if req.body else "Stopping container"
        return json_reply(200, emu.stop_pod_out_of_band(pod[1], reason))
    container = re.fullmatch(r"/pods/([^/]+)/container-env", path)
    if container and method == "GET":
        return json_reply(200, emu.container_env(container[1]))
    if pod and method == "DELETE" and not pod[2]:
        emu.delete_pod_out_of_band(pod[1])
    elif (method, path) == ("DELETE", "/faults"):
        emu.faults.clear()
    elif (method, path) == ("POST", "/stock"):
        body = req.json()
        emu.set_stock(body["dataCenter"], body["gpuId"], body["level"])
    elif (method, path) == ("POST", "/service"):
        body = req.json()
        emu.set_service(body.get("podId"), ready=bool(body["ready"]))
    elif (method, path) == ("POST", "/quotas"):
        emu.enforce_quotas(req.json())
    elif (method, path) == ("POST", "/reset"):
        emu.reset()
    else:
        return problem(404, "no such admin route")
    return no_content()


class AdminError(RuntimeError):
    pass


class AdminClient:
    """The in-process controls of an `Emulator`, over HTTP (stdlib only)."""

    def __init__(self, admin_url: str, timeout: float = 10.0):
        self.admin_url = admin_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.admin_url + path, data=data, method=method,
            # An explicit UA: the emulator, like Cloudflare, refuses urllib's default on the API.
            headers={"Content-Type": "application/json", "User-Agent": "runpod-emulator-admin"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            if exc.code == 404 and path.startswith("/pods/"):
                raise KeyError(path.split("/")[2]) from None
            raise AdminError(f"{method} {path}: {exc.code} {detail}") from None
        return json.loads(payload) if payload else None

    def state(self) -> dict:
        return self._call("GET", "/state")

    def pods(self) -> list[dict]:
        return self.state()["pods"]

    def requests(self) -> list[dict]:
        return self.state()["requests"]

    def volumes(self) -> list[dict]:
        return self.state()["volumes"]

    def inject(self, **fault) -> list[dict]:
        """Add a fault; returns the pending faults."""
        return self._call("POST", "/faults", fault)["faults"]

    def clear_faults(self):
        self._call("DELETE", "/faults")

    def set_stock(self, data_center: str, gpu_id: str, level: str):
        self._call("POST", "/stock", {"dataCenter": data_center, "gpuId": gpu_id, "level": level})

    def set_service(self, pod_id: str | None = None, ready: bool = True):
        self._call("POST", "/service", {"podId": pod_id, "ready": ready})

    def delete_pod_out_of_band(self, pod_id: str):
        self._call("DELETE", f"/pods/{quote(pod_id)}")

    def stop_pod_out_of_band(self, pod_id: str, reason: str = "Stopping container") -> dict:
        return self._call("POST", f"/pods/{quote(pod_id)}/stop", {"reason": reason})

    def start_pod_out_of_band(self, pod_id: str) -> dict:
        return self._call("POST", f"/pods/{quote(pod_id)}/start")

    def container_env(self, pod_id: str) -> dict:
        return self._call("GET", f"/pods/{quote(pod_id)}/container-env")

    def enforce_quotas(self, quotas: dict | None = None):
        self._call("POST", "/quotas", {"minute": 60, "hour": 3000, "day": 50000} if quotas is None else quotas)

    def reset(self):
        self._call("POST", "/reset")
