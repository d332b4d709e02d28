"""`AdminClient`: drive an emulator running as a separate process through its `/_emulator` routes,
with the same methods as the in-process `Emulator` (stdlib only, so bench/demo code needs nothing).

    admin = AdminClient("http://127.0.0.1:8765/_emulator")
    admin.inject(method="POST", path="/v2/pods", kind="after_effect", status=500)
    admin.set_stock("EU-RO-1", "NVIDIA L40S", "NONE")
    admin.pods(); admin.requests()
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Optional
from urllib.parse import quote


class AdminError(RuntimeError):
    pass


class AdminClient:
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

    def set_service(self, pod_id: Optional[str] = None, ready: bool = True):
        self._call("POST", "/service", {"podId": pod_id, "ready": ready})

    def delete_pod_out_of_band(self, pod_id: str):
        self._call("DELETE", f"/pods/{quote(pod_id)}")

    def stop_pod_out_of_band(self, pod_id: str) -> dict:
        return self._call("POST", f"/pods/{quote(pod_id)}/stop")

    def reset(self):
        self._call("POST", "/reset")
