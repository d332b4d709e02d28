"""The `/v2` REST endpoints: request in, `Reply` out. Auth and faults happen before, in `server.py`.

Bodies are validated strictly (422 with `$`-paths) before any rule is applied (400/404/409).
Query strings are never strict: unknown parameters are ignored (api digest §2).
"""
from __future__ import annotations

import base64
import re
import threading
import time
from typing import Optional
from urllib.parse import unquote

from . import catalog, validation
from .faults import FaultBook
from .logs import parse_event_id, parse_rfc3339
from .messages import ApiError, Reply, Request, json_reply, no_content, not_found, problem, validation_error
from .state import World

_ID = r"(?P<id>[^/]+)"
_LEVEL_RANK = {level: i for i, level in enumerate(catalog.AVAILABILITY_LEVELS)}


class Api:
    def __init__(self, world: World, faults: FaultBook, stop: threading.Event, paginate: Optional[int] = None):
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
            ("GET", r"/v2/network-volumes", self.list_volumes),
            ("POST", r"/v2/network-volumes", self.create_volume),
            ("GET", rf"/v2/network-volumes/{_ID}", self.get_volume),
            ("PATCH", rf"/v2/network-volumes/{_ID}", self.update_volume),
            ("DELETE", rf"/v2/network-volumes/{_ID}", self.delete_volume),
            ("GET", r"/v2/catalog/gpus", self.list_gpus),
            ("GET", rf"/v2/catalog/gpus/{_ID}", self.get_gpu),
            ("GET", r"/v2/catalog/cpus", self.list_cpus),
            ("GET", r"/v2/catalog/datacenters", self.list_data_centers),
            ("GET", rf"/v2/catalog/datacenters/{_ID}", self.get_data_center),
        ]

    def handle(self, req: Request) -> Reply:
        allowed = []
        for method, pattern, handler in self.routes:
            match = re.fullmatch(pattern, req.path)
            if not match:
                continue
            if method != req.method:
                allowed.append(method)
                continue
            try:
                return handler(req, *(unquote(v) for v in match.groups()))
            except ApiError as exc:
                return exc.reply()
        if allowed:
            return problem(405, "The requested method is not allowed for this path.",
                           headers={"Allow": ", ".join(allowed)})
        return problem(404, "resource not found")

    # ----- pods ------------------------------------------------------------------------------

    def create_pod(self, req: Request) -> Reply:
        body = req.json()
        errors = validation.validate_create_pod(body)
        if errors:
            raise validation_error(errors)

        def list_lag() -> float:
            fault = self.faults.take(("list_lag",), req.method, req.path)
            return fault.seconds if fault else 0.0

        return json_reply(201, self.world.create_pod(body, list_lag=list_lag))

    def list_pods(self, req: Request) -> Reply:
        if not self.paginate:
            pods, _ = self.world.list_pods()
            return json_reply(200, {"pods": pods})
        # Pagination is unconfirmed for v2 (api digest §14): behind a switch, `limit` + `cursor`,
        # pages never larger than the configured size so clients must follow the cursor.
        size = self.paginate
        if req.query.get("limit", "").isdigit() and int(req.query["limit"]) > 0:
            size = min(size, int(req.query["limit"]))
        after = _decode_cursor(req.query["cursor"]) if req.query.get("cursor") else 0
        pods, next_seq = self.world.list_pods(after_seq=after, limit=size)
        cursor = _encode_cursor(next_seq) if next_seq is not None else None
        return json_reply(200, {"pods": pods, "pagination": {"nextCursor": cursor, "hasNextPage": cursor is not None}})

    def get_pod(self, req: Request, pod_id: str) -> Reply:
        return json_reply(200, self.world.get_pod(pod_id))

    def update_pod(self, req: Request, pod_id: str) -> Reply:
        body = req.json()
        errors = validation.validate_update_pod(body)
        if errors:
            raise validation_error(errors)
        return json_reply(200, self.world.update_pod(pod_id, body))

    def delete_pod(self, req: Request, pod_id: str) -> Reply:
        self.world.delete_pod(pod_id)
        return no_content()

    def pod_action(self, req: Request, pod_id: str) -> Reply:
        body = req.json()
        errors = validation.validate_pod_action(body)
        if errors:
            raise validation_error(errors)
        pod = self.world.pod_action(
            pod_id, body["action"],
            start_fault=lambda: self.faults.take(("no_gpu_on_start",), req.method, req.path))
        return no_content() if pod is None else json_reply(200, pod)

    def pod_logs(self, req: Request, pod_id: str) -> Reply:
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
                yield line.sse()
            last_sent = time.monotonic()
            while not self.stop.is_set():
                lines, alive = self.world.log_lines(pod_id, cursor)
                for line in lines:
                    cursor = line.seq
                    if source is None or line.source == source:
                        last_sent = time.monotonic()
                        yield line.sse()
                if not alive:  # the pod is gone: end the stream after its last words
                    return
                if time.monotonic() - last_sent >= self.keepalive:
                    last_sent = time.monotonic()
                    yield b": keepalive\n\n"
                self.stop.wait(self.log_poll)

        headers = {"Cache-Control": "no-cache", "Connection": "keep-alive", "X-Accel-Buffering": "no"}
        return Reply(200, content_type="text/event-stream", headers=headers, stream=stream)

    # ----- network volumes -------------------------------------------------------------------

    def list_volumes(self, req: Request) -> Reply:
        return json_reply(200, {"networkVolumes": self.world.list_volumes()})

    def get_volume(self, req: Request, volume_id: str) -> Reply:
        return json_reply(200, self.world.get_volume(volume_id))

    def create_volume(self, req: Request) -> Reply:
        body = req.json()
        errors = validation.validate_create_volume(body)
        if errors:
            raise validation_error(errors)
        return json_reply(201, self.world.create_volume(body))

    def update_volume(self, req: Request, volume_id: str) -> Reply:
        body = req.json()
        errors = validation.validate_update_volume(body)
        if errors:
            raise validation_error(errors)
        return json_reply(200, self.world.update_volume(volume_id, body))

    def delete_volume(self, req: Request, volume_id: str) -> Reply:
        self.world.delete_volume(volume_id)
        return no_content()

    # ----- catalog ---------------------------------------------------------------------------

    def list_gpus(self, req: Request) -> Reply:
        filters = _availability_filters(req.query, catalog_products=("POD", "CLUSTER", "SERVERLESS"))
        gpus = [self._gpu(spec, filters) for spec in catalog.GPUS]
        if filters and filters["countries"]:
            gpus = [g for g in gpus if g.get("dataCenters")]  # outside those countries: dropped
        return json_reply(200, {"gpus": gpus})

    def get_gpu(self, req: Request, gpu_id: str) -> Reply:
        filters = _availability_filters(req.query, catalog_products=("POD", "CLUSTER", "SERVERLESS"))
        spec = catalog.GPUS_BY_ID.get(gpu_id)
        if spec is None:
            raise not_found(f"GPU type '{gpu_id}' not found")
        return json_reply(200, self._gpu(spec, filters))

    def _gpu(self, spec: catalog.GpuSpec, filters: Optional[dict]) -> dict:
        body = spec.as_api()
        if filters is None:
            return body
        dcs = []
        cuda_offered: dict[str, bool] = {}
        for dc in catalog.DATA_CENTERS:
            if filters["countries"] and dc.country not in filters["countries"]:
                continue
            versions = [v for v in dc.cuda_versions
                        if (not filters["cuda"] or v in filters["cuda"])
                        and (not filters["min_cuda"] or _cuda_key(v) >= _cuda_key(filters["min_cuda"]))]
            level = self.world.stock_level(dc.id, spec.id)
            if (filters["count"] > spec.max_count or not versions
                    or (filters["cloud"] == "COMMUNITY" and not spec.community)):
                level = "NONE"
            for v in versions:
                cuda_offered[v] = cuda_offered.get(v, False) or level != "NONE"
            if level != "NONE":
                dcs.append({"id": dc.id, "name": dc.name, "availability": level})
        body["availability"] = max((d["availability"] for d in dcs), key=_LEVEL_RANK.get, default="NONE")
        if dcs:
            body["dataCenters"] = dcs
        if spec.manufacturer == "NVIDIA":
            body["cudaVersions"] = [{"version": v, "available": ok}
                                    for v, ok in sorted(cuda_offered.items(), key=lambda kv: _cuda_key(kv[0]))]
        return body

    def list_cpus(self, req: Request) -> Reply:
        filters = _availability_filters(req.query, catalog_products=("POD", "SERVERLESS"))
        cpus = []
        for spec in catalog.CPUS:
            body = spec.as_api()
            if filters is not None:  # CPU stock is not modelled: plentiful everywhere
                body["availability"] = "HIGH"
                body["dataCenters"] = [{"id": d.id, "name": d.name, "availability": "HIGH"}
                                       for d in catalog.DATA_CENTERS]
            cpus.append(body)
        return json_reply(200, {"cpus": cpus})

    def list_data_centers(self, req: Request) -> Reply:
        q = req.query
        include = _data_center_include(q)
        regions = _csv(q.get("regions"))
        volume_types = _csv(q.get("networkVolumeTypes"))
        compliance = _csv(q.get("compliance"))
        global_network = q.get("globalNetwork")
        out = []
        for dc in catalog.DATA_CENTERS:
            if regions and dc.region not in regions:
                continue
            if not set(volume_types) <= set(dc.volume_types) or not set(compliance) <= set(dc.compliance):
                continue
            if global_network in ("true", "false") and dc.global_network != (global_network == "true"):
                continue
            out.append(self._data_center(dc, include))
        return json_reply(200, {"dataCenters": out})

    def get_data_center(self, req: Request, dc_id: str) -> Reply:
        include = _data_center_include(req.query)
        dc = catalog.DATA_CENTERS_BY_ID.get(dc_id)
        if dc is None:
            raise not_found(f"data center '{dc_id}' not found")
        return json_reply(200, self._data_center(dc, include))

    def _data_center(self, dc: catalog.DataCenterSpec, include: list) -> dict:
        body = dc.as_api()
        if "GPU_AVAILABILITY" in include:
            levels = [(g, self.world.stock_level(dc.id, g.id)) for g in catalog.GPUS]
            body["gpuAvailability"] = [{"id": g.id, "name": g.name, "availability": level}
                                       for g, level in levels if level != "NONE"]
        if "CPU_AVAILABILITY" in include:
            body["cpuAvailability"] = [{"id": c.id, "name": c.name, "availability": "HIGH"} for c in catalog.CPUS]
        return body


# ----- query helpers ---------------------------------------------------------------------------

def _csv(value: Optional[str]) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def _cuda_key(version: str) -> tuple[int, int]:
    major, _, minor = version.partition(".")
    return int(major), int(minor or 0)


_AVAILABILITY_ONLY = ("count", "cloud", "countryCodes", "cudaVersions", "minCudaVersion")


def _availability_filters(q: dict, catalog_products) -> Optional[dict]:
    """Parse the catalog's stock parameters. `include=AVAILABILITY` and `product` go together:
    either one alone is a 400, and so is any stock filter without them (api digest §12)."""
    include, products = _csv(q.get("include")), _csv(q.get("product"))
    if bool(include) != bool(products):
        raise ApiError(400, "include=AVAILABILITY and product must be given together")
    if not include:
        extra = [name for name in _AVAILABILITY_ONLY if name in q]
        if extra:
            raise ApiError(400, f"{extra[0]} is valid only with include=AVAILABILITY")
        return None
    errors = []
    if include != ["AVAILABILITY"]:
        errors.append("include: value must be one of 'AVAILABILITY'")
    if any(p not in catalog_products for p in products):
        errors.append(f"product: value must be one of {', '.join(repr(p) for p in catalog_products)}")
    count = q.get("count", "1")
    if not count.isdigit() or int(count) < 1:
        errors.append("count: minimum 1")
    cloud = q.get("cloud", "SECURE")
    if cloud not in ("SECURE", "COMMUNITY"):
        errors.append("cloud: value must be one of 'SECURE', 'COMMUNITY'")
    countries = _csv(q.get("countryCodes"))
    errors += [f"countryCodes: '{c}' does not match pattern '^[A-Z]{{2}}$'"
               for c in countries if not re.fullmatch(r"[A-Z]{2}", c)]
    cuda, min_cuda = _csv(q.get("cudaVersions")), q.get("minCudaVersion")
    if cuda and min_cuda:
        raise ApiError(400, "cudaVersions and minCudaVersion are mutually exclusive")
    errors += [f"cudaVersions: '{v}' does not match pattern '^\\d+\\.\\d+$'"
               for v in cuda if not re.fullmatch(r"\d+\.\d+", v)]
    if min_cuda and not re.fullmatch(r"\d+(\.\d+)?", min_cuda):
        errors.append("minCudaVersion: must be a CUDA version such as 12 or 12.8")
    if errors:
        raise validation_error(errors)
    return {"count": int(count), "cloud": cloud, "countries": countries, "cuda": cuda, "min_cuda": min_cuda}


def _data_center_include(q: dict) -> list[str]:
    include = _csv(q.get("include"))
    bad = [v for v in include if v not in ("GPU_AVAILABILITY", "CPU_AVAILABILITY")]
    if bad:
        raise validation_error(["include: value must be one of 'GPU_AVAILABILITY', 'CPU_AVAILABILITY'"])
    return include


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
