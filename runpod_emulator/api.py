"""The `/v2` endpoints the project uses: request in, `Reply` out (auth and faults come before, in
`Emulator.handle`). Each handler names the spec's operationId (runpod/docs api-reference-v2).

Bodies are checked against the spec's schemas (422) before any rule (400/404/409). Query strings
are never strict: unknown parameters are ignored, as on the live API.
"""
from __future__ import annotations

import base64
import re
import threading
import time
from urllib.parse import unquote

from . import catalog, validation
from .faults import FaultBook
from .logs import parse_event_id, parse_rfc3339
from .messages import ApiError, Reply, Request, json_reply, no_content, problem, validation_error
from .state import World

_ID = r"([^/]+)"
_LEVEL_RANK = {level: i for i, level in enumerate(catalog.AVAILABILITY_LEVELS)}


class Api:
    def __init__(self, world: World, faults: FaultBook, stop: threading.Event, paginate: int | None = None):
        self.world, self.faults, self.stop, self.paginate = world, faults, stop, paginate
        # SSE pacing: poll the log a few times per printed line; comment lines keep proxies from idling out.
        self.log_poll = min(0.1, max(0.01, world.log_interval / 2))
        self.keepalive = max(0.2, 10 * world.log_interval)
        self.routes = [
            ("POST", r"/v2/pods", self.create_pod),
            ("GET", r"/v2/pods", self.list_pods),
            ("GET", rf"/v2/pods/{_ID}", self.get_pod),
            ("PATCH", rf"/v2/pods/{_ID}", self.update_pod),
            ("DELETE", rf"/v2/pods/{_ID}", self.delete_pod),
            ("POST", rf"/v2/pods/{_ID}/action", self.pod_action),
            ("GET", rf"/v2/pods/{_ID}/logs", self.pod_logs),
            ("GET", r"/v2/network-volumes", self.list_network_volumes),
            ("GET", rf"/v2/network-volumes/{_ID}", self.get_network_volume),
            ("GET", r"/v2/catalog/gpus", self.list_gpu_types),
        ]

    def handle(self, req: Request) -> Reply:
        allowed = []
        for method, pattern, handler in self.routes:
            match = re.fullmatch(pattern, req.path)
            if match and method == req.method:
                try:
                    return handler(req, *(unquote(v) for v in match.groups()))
                except ApiError as exc:
                    return exc.reply()
            if match:
                allowed.append(method)
        if allowed:
            return problem(405, "The requested method is not allowed for this path.",
                           headers={"Allow": ", ".join(allowed)})
        return problem(404, "resource not found")

    @staticmethod
    def _body(req: Request, operation: str) -> dict:
        body = req.json()
        errors = validation.errors(operation, body)
        if errors:
            raise validation_error(errors)
        return body

    # ----- pods ------------------------------------------------------------------------------

    def create_pod(self, req: Request) -> Reply:  # createPod
        body = self._body(req, "createPod")

        def list_lag() -> float:
            fault = self.faults.take(("list_lag",), req.method, req.path)
            return fault.seconds if fault else 0.0

        return json_reply(201, self.world.create_pod(body, list_lag=list_lag))

    def list_pods(self, req: Request) -> Reply:  # listPods
        if not self.paginate:
            pods, _ = self.world.list_pods()
            return json_reply(200, {"pods": pods})
        # The spec documents no pagination for listPods; behind a switch, `limit` + `cursor`, pages
        # never larger than the configured size, so a client that ignores the cursor misses pods.
        size = self.paginate
        if req.query.get("limit", "").isdigit() and int(req.query["limit"]) > 0:
            size = min(size, int(req.query["limit"]))
        after = _decode_cursor(req.query["cursor"]) if req.query.get("cursor") else 0
        pods, next_seq = self.world.list_pods(after_seq=after, limit=size)
        cursor = _encode_cursor(next_seq) if next_seq is not None else None
        return json_reply(200, {"pods": pods, "pagination": {"nextCursor": cursor, "hasNextPage": cursor is not None}})

    def get_pod(self, req: Request, pod_id: str) -> Reply:  # getPod
        return json_reply(200, self.world.get_pod(pod_id))

    def update_pod(self, req: Request, pod_id: str) -> Reply:  # updatePod
        return json_reply(200, self.world.update_pod(pod_id, self._body(req, "updatePod")))

    def delete_pod(self, req: Request, pod_id: str) -> Reply:  # deletePod
        self.world.delete_pod(pod_id)
        return no_content()

    def pod_action(self, req: Request, pod_id: str) -> Reply:  # podAction
        body = self._body(req, "podAction")
        pod = self.world.pod_action(
            pod_id, body["action"],
            start_fault=lambda: self.faults.take(("no_gpu_on_start",), req.method, req.path))
        return no_content() if pod is None else json_reply(200, pod)

    def pod_logs(self, req: Request, pod_id: str) -> Reply:  # getPodLogs: a Server-Sent Events stream
        source = req.query.get("source")
        if source is not None and source not in ("container", "system"):
            raise validation_error(["source: value must be one of 'container', 'system'"])
        tail = req.query.get("tail", "100")
        if not tail.isdigit() or int(tail) > 5000:
            raise validation_error(["tail: must be an integer from 0 to 5000"])
        since = after_seq = None
        try:
            if req.headers.get("last-event-id"):  # precedence: Last-Event-ID > since > tail
                since, after_seq = parse_event_id(req.headers["last-event-id"])
            elif req.query.get("since"):
                since = parse_rfc3339(req.query["since"])
        except ValueError:
            raise validation_error(["since: must be an RFC 3339 timestamp"]) from None
        backlog, cursor = self.world.log_backlog(pod_id, source, int(tail), since, after_seq)

        def stream():
            nonlocal cursor
            for line in backlog:
                yield line.sse(self.world.log_ids)
            last_sent = time.monotonic()
            while not self.stop.is_set():
                lines, alive = self.world.log_lines(pod_id, cursor)
                for line in lines:
                    cursor = line.seq
                    if source is None or line.source == source:
                        last_sent = time.monotonic()
                        yield line.sse(self.world.log_ids)
                if not alive:  # the pod is gone: end the stream after its last words
                    return
                if time.monotonic() - last_sent >= self.keepalive:
                    last_sent = time.monotonic()
                    yield b": keepalive\n\n"
                self.stop.wait(self.log_poll)

        headers = {"Cache-Control": "no-cache", "Connection": "keep-alive", "X-Accel-Buffering": "no"}
        return Reply(200, content_type="text/event-stream", headers=headers, stream=stream)

    # ----- network volumes (read-only: the program uses an existing one) ---------------------

    def list_network_volumes(self, req: Request) -> Reply:  # listNetworkVolumes
        return json_reply(200, {"networkVolumes": self.world.list_volumes()})

    def get_network_volume(self, req: Request, volume_id: str) -> Reply:  # getNetworkVolume
        return json_reply(200, self.world.get_volume(volume_id))

    # ----- GPU catalog -----------------------------------------------------------------------

    def list_gpu_types(self, req: Request) -> Reply:  # listGpuTypes
        q = req.query
        include, product = q.get("include"), q.get("product")
        # `include=AVAILABILITY` and `product` go together; the stock filters need them.
        if bool(include) != bool(product):
            raise ApiError(400, "include=AVAILABILITY and product must be given together")
        if not include:
            extra = [name for name in ("count", "cloud") if name in q]
            if extra:
                raise ApiError(400, f"{extra[0]} is valid only with include=AVAILABILITY")
            return json_reply(200, {"gpus": [spec.as_api() for spec in catalog.GPUS]})
        errors = []
        if include != "AVAILABILITY":
            errors.append("include: value must be one of 'AVAILABILITY'")
        if product not in ("POD", "CLUSTER", "SERVERLESS"):
            errors.append("product: value must be one of 'POD', 'CLUSTER', 'SERVERLESS'")
        count, cloud, min_cuda = q.get("count", "1"), q.get("cloud", "SECURE"), q.get("minCudaVersion")
        if not count.isdigit() or int(count) < 1:
            errors.append("count: minimum 1")
        if cloud not in ("SECURE", "COMMUNITY"):
            errors.append("cloud: value must be one of 'SECURE', 'COMMUNITY'")
        if min_cuda is not None and not re.fullmatch(r"\d+\.\d+", min_cuda):
            errors.append("minCudaVersion: must match '^\\d+\\.\\d+$'")
        if errors:
            raise validation_error(errors)
        gpus = [self._gpu_stock(spec, int(count), cloud, min_cuda) for spec in catalog.GPUS]
        return json_reply(200, {"gpus": gpus})

    def _gpu_stock(self, spec: catalog.GpuSpec, count: int, cloud: str, min_cuda: str | None = None) -> dict:
        """The GPU type with its stock per data center for `count` GPUs in `cloud`; data centers
        without stock are left out, and `dataCenters` too when there are none."""
        body, dcs = spec.as_api(), []
        if count <= spec.max_count and (cloud == "SECURE" or spec.community):
            for dc in catalog.DATA_CENTERS:
                level = self.world.catalog_level(dc.id, spec.id)
                # `minCudaVersion` (MinCudaVersionFilter): stock only on hosts with that CUDA or newer.
                if min_cuda and not any(_cuda_key(v) >= _cuda_key(min_cuda) for v in dc.cuda_versions):
                    level = "NONE"
                if level != "NONE":
                    dcs.append({"id": dc.id, "name": dc.name, "availability": level})
        body["availability"] = max((d["availability"] for d in dcs), key=_LEVEL_RANK.get, default="NONE")
        if dcs:
            body["dataCenters"] = dcs
        return body


def _cuda_key(version: str) -> tuple[int, int]:
    major, minor = version.split(".")
    return int(major), int(minor)


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"after:{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, seq = text.partition(":")
        if prefix != "after":
            raise ValueError(text)
        return int(seq)
    except ValueError:
        raise ApiError(400, "invalid pagination cursor") from None
