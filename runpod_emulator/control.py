"""The admin routes under `/_emulator` (no auth): the in-process controls, over HTTP, for when the
emulator runs as its own process (benchmarks, demo). Each route is a thin wrapper over the
`Emulator` method of the same meaning, so both ways behave identically.

    GET    /_emulator/state            {"pods", "volumes", "requests", "faults"}
    POST   /_emulator/faults           body: kwargs of inject(), or a list of them
    DELETE /_emulator/faults           drop every pending fault
    POST   /_emulator/stock            {"dataCenter", "gpuId", "level"}
    POST   /_emulator/service          {"podId"?, "ready"}
    POST   /_emulator/reset
    DELETE /_emulator/pods/{id}        out-of-band delete (as from the console)
    POST   /_emulator/pods/{id}/stop   out-of-band stop
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .messages import ApiError, Reply, Request, json_reply, no_content, problem

if TYPE_CHECKING:
    from .emulator import Emulator


class Control:
    def __init__(self, emulator: "Emulator"):
        self.emu = emulator

    def handle(self, req: Request) -> Reply:
        try:
            return self._route(req)
        except ApiError as exc:
            return exc.reply()
        except (TypeError, ValueError, KeyError) as exc:
            return problem(400, f"bad admin request: {exc}")

    def _route(self, req: Request) -> Reply:
        emu, path, method = self.emu, req.path.rstrip("/"), req.method
        if path == "/_emulator/state" and method == "GET":
            return json_reply(200, emu.state())
        if path == "/_emulator/faults" and method == "POST":
            body = req.json()
            for fault in body if isinstance(body, list) else [body]:
                emu.inject(**fault)
            return json_reply(200, {"faults": emu.faults.pending()})
        if path == "/_emulator/faults" and method == "DELETE":
            emu.faults.clear()
            return no_content()
        if path == "/_emulator/stock" and method == "POST":
            body = req.json()
            emu.set_stock(body["dataCenter"], body["gpuId"], body["level"])
            return no_content()
        if path == "/_emulator/service" and method == "POST":
            body = req.json()
            emu.set_service(body.get("podId"), ready=bool(body["ready"]))
            return no_content()
        if path == "/_emulator/reset" and method == "POST":
            emu.reset()
            return no_content()
        match = re.fullmatch(r"/_emulator/pods/([^/]+)(/stop)?", path)
        try:
            if match and method == "DELETE" and not match[2]:
                emu.delete_pod_out_of_band(match[1])
                return no_content()
            if match and method == "POST" and match[2]:
                emu.stop_pod_out_of_band(match[1])
                return json_reply(200, emu.world.get_pod(match[1]))
        except KeyError:
            return problem(404, "pod not found")
        return problem(404, "no such admin route")
