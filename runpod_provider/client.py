"""HTTP client for RunPod REST v2 (https://api.runpod.io/v2).

Transport, retries and RunPod's quirks live here, each in one place; callers get pydantic models
(`wire.py`) and exceptions from `api_errors.py`.

Retry policy, by method:
- GET, PATCH, DELETE are idempotent (our PATCH bodies carry the full desired value of each field),
  so urllib3's `Retry` resends them on connection errors, read timeouts, 429 (honouring
  Retry-After up to MAX_RETRY_AFTER_S) and 500/502/503/504, with exponential backoff,
  `retry_total` times at most.
- A 429 asking for longer (a minute window the account's other calls filled, an hour or day window:
  RunPod's windows are per account and count every call) is waited out for up to `patience_s` in
  all, whatever the method (a 429 is refused before any effect), saying so through `say`; then it
  is raised. Log streams never wait.
- POST (create, actions) is never resent by urllib3 (a failed connect, where nothing was sent, is
  the exception). `_post` resends only after a 429, which the server refuses before doing
  anything; a longer Retry-After is `_request`'s patient wait. A 5xx or timeout
  on a create is resolved by adoption (see `create_pod`); on an action it is raised, and the
  caller re-reads the pod.

One client per thread: a `requests.Session` is not thread-safe.
"""

from __future__ import annotations

import http.client
import logging
import math
import os
import threading
import time
import tomllib
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import pydantic
import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from . import sse
from .api_errors import (
    NotFoundError,
    RateLimitedError,
    RunPodError,
    ServerError,
    TransportError,
    error_from_response,
)
from .keys import check_api_key
from .polling import Backoff, poll_until
from .wire import (
    CreatePodRequest,
    GpuType,
    NetworkVolume,
    PodActionRequest,
    PodInfo,
    UpdatePodRequest,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.runpod.io/v2"
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
RETRY_STATUSES = (429, 500, 502, 503, 504)
# urllib3 resends silently after a 429 asking for at most this long; a longer wait (a minute window
# filled by the account's other calls, hour/day windows) is waited out by `_request`, saying so.
MAX_RETRY_AFTER_S = 10
DEFAULT_PATIENCE_S = 120.0  # a library client's total wait for rate limits; the provider sets its own
BACKOFF_MAX_S = 30.0
ADOPT_POLL = Backoff(first_s=0.5)  # create adoption re-reads the pod list this often
MAX_LIST_PAGES = 1000  # guards against a server that never stops paginating

M = TypeVar("M", bound=pydantic.BaseModel)


def _version() -> str:
    """This project's version, from its package metadata (scripts/setup.sh installs the checkout
    editable). A checkout run without that install (a venv made before it, or another tool's) still
    needs a User-Agent, so it falls back to pyproject.toml itself: the version is written only there."""
    try:
        return metadata.version("runpod-deploy")
    except metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        try:
            return tomllib.loads(pyproject.read_text())["project"]["version"]
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown"


# The one User-Agent of every request this project sends (API and readiness probes). Quirk:
# Cloudflare, in front of the API and the proxy, answers 403/1010 to library-default User-Agents.
USER_AGENT = f"runpod-deploy/{_version()}"


class _BearerAuth(requests.auth.AuthBase):
    """Sets the Bearer header. Set as `session.auth`, it also stops requests reading ~/.netrc."""

    def __init__(self, api_key: str) -> None:
        self._header = f"Bearer {api_key}"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._header
        return request

    def __repr__(self) -> str:
        return "_BearerAuth(***)"


class _Retry(Retry):
    """urllib3's Retry, except that a 429 asking for longer than `retry_after_max` is not retried:
    urllib3 would clamp the wait and ask again into the same hour/day window (spec RateLimitHeader).
    The 429 goes back to the caller, who decides (reads give up; a cleanup DELETE waits it out)."""

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        if response is not None and response.status == 429:
            header = response.headers.get("Retry-After")
            if header and header.strip().isdigit() and int(header) > self.retry_after_max:
                raise urllib3.exceptions.MaxRetryError(_pool, url, urllib3.exceptions.ResponseError("long Retry-After"))
        return super().increment(method, url, response, error, _pool, _stacktrace)


class RunPodClient:
    """RunPod REST v2. One client per thread; `close()` it, or use it as a context manager."""

    def __init__(
        self,
        api_key: str,
        base_url: str | None = None,
        *,
        timeout: float = 30.0,
        retry_total: int = 5,
        backoff_factor: float = 0.5,
        adopt_wait_s: float = 5.0,
        max_retry_after_s: float | None = None,
        patience_s: float = DEFAULT_PATIENCE_S,
        say: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        api_key = check_api_key(api_key or "", "the api_key argument")
        if not api_key:
            raise ValueError("api_key is empty")
        self.base_url = (base_url or os.environ.get("RUNPOD_API_URL") or DEFAULT_BASE_URL).rstrip("/")
        self._path_prefix = urlsplit(self.base_url).path  # "/v2", so messages show the real path
        self.timeout = timeout
        self.retry_total = retry_total
        self.backoff_factor = backoff_factor
        self.adopt_wait_s = adopt_wait_s
        # RUNPOD_DEPLOY_MAX_RETRY_AFTER_S shortens the cap for tests of long rate-limit windows.
        self.max_retry_after_s = float(max_retry_after_s if max_retry_after_s is not None
                                       else os.environ.get("RUNPOD_DEPLOY_MAX_RETRY_AFTER_S", MAX_RETRY_AFTER_S))

        self.patience_s = patience_s
        self._say = say or (lambda line: log.warning("%s", line))
        self._sleep = sleep

        self._session = requests.Session()
        self._session.auth = _BearerAuth(api_key)
        self._session.headers.update(
            {
                "User-Agent": USER_AGENT,
                "Content-Type": "application/json",
            }
        )
        retry = _Retry(
            total=retry_total,
            allowed_methods=IDEMPOTENT_METHODS,  # never POST: a create may take effect and fail
            status_forcelist=RETRY_STATUSES,
            backoff_factor=backoff_factor,
            backoff_max=BACKOFF_MAX_S,
            respect_retry_after_header=True,
            retry_after_max=int(self.max_retry_after_s),
            raise_on_status=False,  # hand back the last response so it becomes a typed error
        )
        adapter = HTTPAdapter(max_retries=retry)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)

    # --- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> RunPodClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- pods --------------------------------------------------------------------------------

    def create_pod(self, req: CreatePodRequest) -> PodInfo:
        """POST /pods. `req.name` must be unique to this create (adoption matches on it).

        On a 5xx, timeout or dropped connection the pod is looked up by name and adopted. If it
        does not appear within `adopt_wait_s`, the original ServerError/TransportError is raised;
        nothing was created as far as the list shows, so the caller may send the create again.
        """
        try:
            resp = self._post("/pods", req.to_body())
        except (ServerError, TransportError) as exc:
            # Quirk: no idempotency key, and a create can fail after it has created the pod.
            pod = self._adopt(req.name)
            if pod is None:
                raise
            log.warning("create of %r failed (%s) but the pod exists: adopted %s", req.name, exc, pod.id)
            return pod
        return self._model(PodInfo, resp, "POST", "/pods")

    def get_pod(self, pod_id: str) -> PodInfo:
        """GET /pods/{id}. Raises NotFoundError on 404 (unknown, or not visible to this key)."""
        path = f"/pods/{_seg(pod_id)}"
        return self._model(PodInfo, self._request("GET", path), "GET", path)

    def list_pods(self) -> list[PodInfo]:
        """GET /pods, every page."""
        pods: list[PodInfo] = []
        params: dict[str, str] = {}
        seen: set[str] = set()
        for _ in range(MAX_LIST_PAGES):
            data = self._json(self._request("GET", "/pods", params=params), "GET", "/pods")
            pods += [self._validate(PodInfo, p, "GET", "/pods") for p in data.get("pods") or []]
            # Quirk: pagination is undocumented; follow `pagination` when present, else one page.
            page = data.get("pagination") or {}
            cursor = page.get("nextCursor")
            if not page.get("hasNextPage") or not cursor or cursor in seen:
                break
            seen.add(cursor)
            params = {"cursor": cursor}
        return pods

    def update_pod(self, pod_id: str, req: UpdatePodRequest) -> PodInfo:
        """PATCH /pods/{id} with the fields set in `req`; returns the full updated Pod."""
        path = f"/pods/{_seg(pod_id)}"
        return self._model(PodInfo, self._request("PATCH", path, body=req.to_body()), "PATCH", path)

    def delete_pod(self, pod_id: str) -> bool:
        """DELETE /pods/{id}. True if this call deleted it, False if it was already gone (404).

        A False can also follow a retried DELETE whose first attempt did delete; either way the
        pod no longer exists.
        """
        try:
            self._request("DELETE", f"/pods/{_seg(pod_id)}").close()
        except NotFoundError:
            return False
        return True

    def start_pod(self, pod_id: str) -> PodInfo:
        """Start an EXITED/ERROR pod (same host). ConflictError (409) if not allowed now."""
        return self._action(pod_id, "start")

    def restart_pod(self, pod_id: str) -> PodInfo:
        """Restart a RUNNING pod's container (same host, GPU kept). ConflictError (409) if not allowed now."""
        return self._action(pod_id, "restart")

    def stop_pod(self, pod_id: str) -> PodInfo:
        """Stop a pod: releases the GPU, keeps the disk. ConflictError (409) if not allowed now."""
        return self._action(pod_id, "stop")

    def pod_logs(self, pod_id: str, *, tail: int = 50, deadline_s: float = 3.0) -> list[str]:
        """The pod's recent log lines (container and system), read for at most `deadline_s`."""
        return [line for _, line in self.pod_log_events(pod_id, tail=tail, deadline_s=deadline_s)]

    def pod_log_events(self, pod_id: str, *, tail: int = 50, after: str | None = None,
                       deadline_s: float = 3.0) -> list[tuple[str | None, str]]:
        """(event id, line) of the pod's log, read for at most `deadline_s`: the last `tail` lines,
        or, with `after` (an event id), only the lines after it (getPodLogs: `Last-Event-ID` wins
        over `tail`).

        Quirk: the endpoint is a Server-Sent Events stream that never ends by itself, so a timer
        shuts the socket down at the deadline and whatever arrived by then is returned. An error
        answer (404, ...) raises as usual.
        """
        path = f"/pods/{_seg(pod_id)}/logs"
        deadline = time.monotonic() + deadline_s
        headers = {"Accept": "text/event-stream", **({"Last-Event-ID": after} if after else {})}
        resp = self._request(
            "GET",
            path,
            params={"tail": tail},
            headers=headers,
            stream=True,
            timeout=(self.timeout, deadline_s + 1.0),
            patient=False,  # a best-effort read within its own deadline
        )
        timer = threading.Timer(max(0.0, deadline - time.monotonic()), _shutdown_stream, [resp.raw])
        timer.daemon = True
        timer.start()
        lines: list[tuple[str | None, str]] = []
        try:
            for event_id, data in sse.events(resp.raw):
                lines.append((event_id, sse.log_line(data)))
                if time.monotonic() >= deadline:
                    break
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError):
            pass  # the stream was shut down at the deadline, or broke: keep what arrived
        finally:
            timer.cancel()
            resp.close()
        return lines

    # --- volumes and catalog -----------------------------------------------------------------

    def get_network_volume(self, volume_id: str) -> NetworkVolume:
        path = f"/network-volumes/{_seg(volume_id)}"
        return self._model(NetworkVolume, self._request("GET", path), "GET", path)

    def gpu_types(
        self, *, data_center: str | None = None, gpu_count: int = 1, cloud: str = "SECURE",
        min_cuda_version: str | None = None,
    ) -> list[GpuType]:
        """GPU types with pod stock for `gpu_count` GPUs in `cloud` (read `GpuType.stock_in`), on
        hosts with at least `min_cuda_version` (listGpuTypes `minCudaVersion`) when given.

        With `data_center`, only the types offered there (at any stock level) are returned.
        """
        # `include=AVAILABILITY` needs `product`, and the reverse: either alone is a 400.
        params = {"include": "AVAILABILITY", "product": "POD", "count": gpu_count, "cloud": cloud}
        if min_cuda_version:
            params["minCudaVersion"] = min_cuda_version
        data = self._json(self._request("GET", "/catalog/gpus", params=params), "GET", "/catalog/gpus")
        gpus = [self._validate(GpuType, g, "GET", "/catalog/gpus") for g in data.get("gpus") or []]
        if data_center is not None:
            gpus = [g for g in gpus if any(dc.id == data_center for dc in g.dataCenters or [])]
        return gpus

    # --- internals ---------------------------------------------------------------------------

    def _action(self, pod_id: str, action: str) -> PodInfo:
        path = f"/pods/{_seg(pod_id)}/action"
        resp = self._post(path, PodActionRequest(action=action).to_body())
        return self._model(PodInfo, resp, "POST", path)

    def _post(self, path: str, body: dict[str, Any]) -> requests.Response:
        """POST, resent only after a 429 (refused before any effect), at most `retry_total` times."""
        for attempt in range(self.retry_total + 1):
            try:
                return self._request("POST", path, body=body)
            except RateLimitedError as exc:
                wait = exc.retry_after
                if wait is None:
                    wait = min(BACKOFF_MAX_S, self.backoff_factor * 2**attempt)
                if attempt == self.retry_total or wait > self.max_retry_after_s:
                    raise
                log.info("%s %s rate-limited; retrying in %.1f s", "POST", path, wait)
                time.sleep(wait)
        raise AssertionError("unreachable")

    def _adopt(self, name: str) -> PodInfo | None:
        """The pod named `name`, polling the list on ADOPT_POLL for up to `adopt_wait_s` (it may lag)."""

        def look() -> PodInfo | None:
            try:
                found = [p for p in self.list_pods() if p.name == name and not p.gone]
            except RunPodError as exc:
                log.warning("listing pods to find %r failed: %s", name, exc)
                return None
            return self._keep_oldest(found) if found else None

        return poll_until(look, timeout_s=self.adopt_wait_s, delays=ADOPT_POLL.delays())

    def _keep_oldest(self, pods: list[PodInfo]) -> PodInfo:
        """Names are unique per create by construction, so several pods with the name are
        duplicates of this one create (e.g. a create retried upstream): keep the oldest and
        delete the others so they stop billing."""
        pods = sorted(pods, key=lambda p: (p.createdAt.timestamp() if p.createdAt else math.inf, p.id))
        keep, extras = pods[0], pods[1:]
        for extra in extras:
            log.warning("deleting duplicate pod %s (name %r); keeping %s", extra.id, keep.name, keep.id)
            try:
                self.delete_pod(extra.id)
            except RunPodError as exc:
                log.error("could not delete duplicate pod %s: %s", extra.id, exc)
        return keep

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        timeout: float | tuple[float, float] | None = None,
        patient: bool = True,
    ) -> requests.Response:
        """Send one request (plus urllib3's retries); any HTTP error becomes a RunPodError. With
        `patient`, a rate limit is waited out for up to `patience_s` in all (see the module doc)."""
        give_up_at = time.monotonic() + self.patience_s
        while True:
            try:
                return self._send(method, path, body=body, params=params, headers=headers, stream=stream,
                                  timeout=timeout)
            except RateLimitedError as exc:
                wait = exc.retry_after if exc.retry_after is not None else 60.0
                # A short wait urllib3 already resent `retry_total` times is a server that keeps refusing.
                if not patient or wait <= self.max_retry_after_s or time.monotonic() + wait > give_up_at:
                    raise
                until = time.strftime("%H:%M:%S UTC", time.gmtime(time.time() + wait))
                self._say(f"RunPod's rate limit (per account, every call counts) asks to wait {wait:.0f}s: "
                          f"{method} {self._path_prefix + path} again at {until}")
                self._sleep(wait)

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None,
        params: dict[str, Any] | None,
        headers: dict[str, str] | None,
        stream: bool,
        timeout: float | tuple[float, float] | None,
    ) -> requests.Response:
        where = self._path_prefix + path
        try:
            resp = self._session.request(
                method,
                self.base_url + path,
                json=body,
                params=params,
                headers=headers,
                stream=stream,
                timeout=timeout or self.timeout,
            )
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            raise TransportError(method, where, None, detail=f"{type(exc).__name__}: {exc}") from None
        if resp.status_code >= 400:
            try:
                text = resp.text
            except requests.RequestException:
                text = ""
            finally:
                resp.close()
            raise error_from_response(
                method,
                where,
                resp.status_code,
                text,
                content_type=resp.headers.get("Content-Type", ""),
                retry_after=resp.headers.get("Retry-After"),
            )
        return resp

    def _json(self, resp: requests.Response, method: str, path: str) -> dict[str, Any]:
        try:
            data = resp.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            where = self._path_prefix + path
            raise RunPodError(method, where, resp.status_code, detail="response is not a JSON object")
        return data

    def _model(self, model: type[M], resp: requests.Response, method: str, path: str) -> M:
        return self._validate(model, self._json(resp, method, path), method, path)

    def _validate(self, model: type[M], data: Any, method: str, path: str) -> M:
        try:
            return model.model_validate(data)
        except pydantic.ValidationError as exc:
            # Locations and messages only: the input values may include env secrets.
            problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False)]
            raise RunPodError(
                method, self._path_prefix + path, None, detail=f"unexpected {model.__name__} shape", errors=problems
            ) from None


def _seg(value: str) -> str:
    """An id as one path segment: ids are opaque strings."""
    return quote(value, safe="")


def _shutdown_stream(raw: urllib3.response.BaseHTTPResponse) -> None:
    try:
        raw.shutdown()  # unblocks the reading thread; its read then ends or raises
    except (ValueError, RuntimeError, OSError, AttributeError):
        pass  # already closed
