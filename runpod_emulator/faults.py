"""Scripted failures: what the live API does on a bad day, on demand.

A fault matches requests by `method` (None = any) and `path` (a regex matched at the start of
the request path, so a plain prefix like `/v2/pods` works; None = any `/v2` API path, never a
proxy or admin path). `count` faults fire that many times, then disappear; `count=None` fires
forever. Among several matching faults, the earliest injected fires.

Kinds:
  status          answer `status` (problem+json; 429 adds Retry-After: `retry_after`) instead of handling
  after_effect    handle for real (e.g. the pod is created and bills), then answer `status` (default
                  500); with `drop=True`, close the connection instead of answering
  delay           sleep `seconds`, then handle normally
  drop            close the connection without any response
  no_gpu_on_start the next matching `start` action fails with `status` (default 400) and the
                  "not enough free GPUs on the host machine" detail; the pod stays EXITED
  list_lag        the next matching created pod stays out of GET /v2/pods for `seconds`
  rate_window     for `seconds` from the first matching call, every matching call answers 429 with Retry-After =
                  the seconds left and `RateLimit: "hour";r=0;t=<left>`: a long (hour/day) window
                  (spec RateLimitHeader, TooManyRequestsError); then it disappears
`errors` adds the problem's `errors` list (e.g. a 422's `$`-paths).
"""
from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import asdict, dataclass, field

from .messages import Reply, problem

REQUEST_KINDS = ("status", "after_effect", "delay", "drop", "rate_window")  # applied by `Emulator.handle`
DOMAIN_KINDS = ("no_gpu_on_start", "list_lag")  # consumed by the API routes
KINDS = REQUEST_KINDS + DOMAIN_KINDS

NO_GPU_DETAIL = "There are not enough free GPUs on the host machine to start this pod."


@dataclass
class Fault:
    kind: str
    method: str | None = None
    path: str | None = None
    count: int | None = 1
    status: int | None = None
    retry_after: int | None = None
    seconds: float = 0.0
    detail: str | None = None
    drop: bool = False
    errors: list | None = None
    until: float = 0.0  # rate_window: when it ends (time.time()); set when it first fires
    fired: bool = False
    id: int = field(default=0)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.kind == "status" and not self.status:
            raise ValueError("a 'status' fault needs status=<code>")
        if self.kind == "rate_window":
            self.status, self.count = 429, None
        if self.kind in ("delay", "list_lag", "rate_window") and not self.seconds:
            raise ValueError(f"a {self.kind!r} fault needs seconds=<float>")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be >= 1 (or None for a permanent fault)")
        if self.kind == "after_effect" and not self.status:
            self.status = 500
        if self.kind == "no_gpu_on_start" and not self.status:
            self.status = 400
        if self.status == 429 and self.retry_after is None:
            self.retry_after = 1
        if self.method:
            self.method = self.method.upper()
        if self.path is not None:
            re.compile(self.path)  # fail at injection, not at the first request

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method != method:
            return False
        if self.path is None:
            return path.startswith("/v2/") or path == "/v2"
        return re.match(self.path, path) is not None

    def as_dict(self) -> dict:
        return asdict(self)

    def reply(self) -> Reply:
        """The answer of a `status` or `after_effect` fault (429: the spec's TooManyRequestsError)."""
        if self.kind == "rate_window":
            left = max(1, math.ceil(self.until - time.time()))
            return problem(429, self.detail or "rate limit exceeded for the hour window",
                           headers={"Retry-After": str(left), "RateLimit": f'"hour";r=0;t={left}'})
        headers = {"Retry-After": str(self.retry_after)} if self.status == 429 else {}
        detail = self.detail or ("rate limit exceeded for the minute window" if self.status == 429
                                 else "emulated failure")
        return problem(self.status, detail, errors=self.errors, headers=headers)


class FaultBook:
    """The pending faults, consumed as they fire. Thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._next_id = 1

    def add(self, **kwargs) -> Fault:
        kwargs.pop("id", None)
        fault = Fault(**kwargs)
        with self._lock:
            fault.id = self._next_id
            self._next_id += 1
            self._faults.append(fault)
        return fault

    def take(self, kinds, method: str, path: str) -> Fault | None:
        """Fire the first pending fault of one of `kinds` matching the request, or return None."""
        with self._lock:
            now = time.time()
            self._faults = [f for f in self._faults if f.kind != "rate_window" or not f.until or f.until > now]
            for fault in self._faults:
                if fault.kind in kinds and fault.matches(method, path):
                    fault.fired = True
                    if fault.kind == "rate_window" and not fault.until:
                        fault.until = now + fault.seconds
                    if fault.count is not None:
                        fault.count -= 1
                        if fault.count == 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def pending(self) -> list[dict]:
        """Faults not yet fired; a rate window counts as fired once it has answered a call."""
        with self._lock:
            return [f.as_dict() for f in self._faults if not (f.kind == "rate_window" and f.fired)]

    def clear(self):
        with self._lock:
            self._faults.clear()
