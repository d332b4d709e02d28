"""`Emulator`: a local RunPod REST v2 service, its proxy stand-in and its controls, in one object.

    emu = Emulator(api_keys=("test-key",), provision_delay=0.2, start_delay=0.2,
                   runtime_delay=0.2, ready_delay=0.3, log_interval=0.05).start()
    emu.api_url      # http://127.0.0.1:PORT/v2
    emu.proxy_url    # http://127.0.0.1:PORT/proxy/{pod_id}-{port}   (str.format template)
    emu.admin_url    # http://127.0.0.1:PORT/_emulator
    ...
    emu.stop()

`handle(request)` is the whole request pipeline, without HTTP (`server.py` only carries it):

    Cloudflare User-Agent check -> scripted fault -> bearer auth -> route -> (after-effect fault)

The check and faults come first because on the live service they sit in front of the API.
"""
from __future__ import annotations

import re
import threading
import time

from . import admin
from .api import Api
from .faults import REQUEST_KINDS, FaultBook
from .graphql import PATH as GRAPHQL_PATH
from .graphql import GraphQL
from .messages import ApiError, Reply, Request, problem
from .proxy import Proxy
from .server import Server
from .state import World

# What Cloudflare shows Python urllib's default User-Agent: error 1010, as HTML
# (https://github.com/lumpenspace/raft/pull/14). The proxy does the same.
CLOUDFLARE_1010 = (b"<!DOCTYPE html><html><head><title>Access denied | api.runpod.io used Cloudflare to "
                   b"restrict access</title></head><body><h1>Error 1010</h1><p>Access denied</p><p>The "
                   b"owner of this website has banned your access based on your browser's signature."
                   b"</p></body></html>")

# The spec's RateLimit / RateLimit-Policy headers on authenticated answers (RateLimitHeader,
# RateLimitPolicyHeader). By default counted, not enforced (the quotas are the emulator's own
# numbers); `enforce_quotas()` enforces the spec's example policy, per account over every call.
WINDOWS = (("minute", 60, 1000), ("hour", 3600, 30000), ("day", 86400, 500000))
# The spec's example policy (RateLimitPolicyHeader: "minute";q=60, "hour";q=3000, "day";q=50000).
SPEC_QUOTAS = {"minute": 60, "hour": 3000, "day": 50000}


def _policy(windows) -> str:
    return ", ".join(f'"{name}";q={quota};w={secs}' for name, secs, quota in windows)


RATELIMIT_POLICY = _policy(WINDOWS)


class Emulator:
    def __init__(self, api_keys=("emulator-key",), provision_delay: float = 1.0, start_delay: float = 1.0,
                 runtime_delay: float = 1.0, ready_delay: float = 2.0, log_interval: float = 0.25,
                 reset_lag: float = 1.0, paginate: int | None = None, host: str = "127.0.0.1",
                 port: int = 0, check_user_agent: bool = True, verbose: bool = False,
                 pod_key_v2: str = "refused"):
        self.api_keys = (api_keys,) if isinstance(api_keys, str) else tuple(api_keys)
        if not self.api_keys:
            raise ValueError("at least one API key is needed")
        self.host, self.port = host, port
        self.check_user_agent = check_user_agent  # 403 "Cloudflare 1010" for urllib's default UA
        self.verbose = verbose
        # What the pod-scoped key (RUNPOD_API_KEY in a pod) may do on /v2: "refused" (403 on every
        # path, as a live report saw; README "The pod-scoped key") or "own-pod" (its own pod's paths).
        if pod_key_v2 not in ("refused", "own-pod"):
            raise ValueError(f"pod_key_v2 must be 'refused' or 'own-pod', got {pod_key_v2!r}")
        self.pod_key_v2 = pod_key_v2
        self.world = World(provision_delay=provision_delay, start_delay=start_delay,
                           runtime_delay=runtime_delay, ready_delay=ready_delay, log_interval=log_interval,
                           reset_lag=reset_lag)
        self.faults = FaultBook()
        self.recorder = Recorder()
        self.stop_event = threading.Event()  # ends log streams and pending delay faults
        self.api = Api(self.world, self.faults, self.stop_event, paginate=paginate)
        self.proxy = Proxy(self.world)
        self.graphql = GraphQL(self)  # POST /graphql: podStop and pod, as a pod stops itself
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # ----- running -------------------------------------------------------------------------------

    def start(self) -> Emulator:
        if self._server is not None:
            return self
        self.stop_event.clear()
        self._server = Server((self.host, self.port), self.handle, verbose=self.verbose)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name=f"runpod-emulator:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is None:
            return
        self.stop_event.set()
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v2"

    @property
    def proxy_url(self) -> str:
        return f"{self.base_url}/proxy/{{pod_id}}-{{port}}"

    @property
    def admin_url(self) -> str:
        return f"{self.base_url}{admin.PREFIX}"

    @property
    def api_key(self) -> str:
        return self.api_keys[0]

    # ----- the request pipeline ------------------------------------------------------------------

    def handle(self, req: Request) -> Reply | None:
        """The reply to one request; None means: close the connection without answering."""
        if req.path == admin.PREFIX or req.path.startswith(admin.PREFIX + "/"):
            return admin.handle(self, req)
        is_api = req.path == "/v2" or req.path.startswith("/v2/")
        if not is_api and req.path != GRAPHQL_PATH and not req.path.startswith("/proxy/"):
            return problem(404, "resource not found")
        entry = self.recorder.begin(req) if is_api or req.path == GRAPHQL_PATH else None
        reply = self._pipeline(req, is_api)
        if entry is not None:
            self.recorder.finish(entry, reply.status if reply else None)
        return reply

    def _pipeline(self, req: Request, is_api: bool) -> Reply | None:
        agent = req.headers.get("user-agent", "")
        if self.check_user_agent and (not agent or agent.startswith("Python-urllib")):
            return Reply(403, CLOUDFLARE_1010, "text/html; charset=UTF-8")
        fault = self.faults.take(REQUEST_KINDS, req.method, req.path)
        if fault and fault.kind == "drop":
            return None
        if fault and fault.kind in ("status", "rate_window"):
            return self._rate_limited(fault.reply()) if is_api else fault.reply()
        if fault and fault.kind == "delay":
            self.stop_event.wait(fault.seconds)
        if is_api and (over := self.recorder.over_quota()) is not None:
            name, left = over
            return self._rate_limited(problem(429, f"rate limit exceeded for the {name} window",
                                              headers={"Retry-After": str(left)}))
        if req.path == GRAPHQL_PATH:
            reply = self.graphql.handle(req)
        else:
            reply = self._authenticated(req) if is_api else self.proxy.handle(req)
        if fault and fault.kind == "after_effect":  # the work is done; the client never learns it
            return None if fault.drop else self._rate_limited(fault.reply())
        return reply

    def _authenticated(self, req: Request) -> Reply:
        scheme, _, key = req.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return problem(401, "missing bearer token")  # the spec's 401 carries no RateLimit headers
        key = key.strip()
        if key not in self.api_keys:
            own_pod = self.world.pod_of_key(key)
            # A pod-scoped key (RUNPOD_API_KEY in the pod): by default refused on every /v2 path (a live
            # report saw the REST stop refused with 403); with pod_key_v2="own-pod", the earlier reading:
            # its own pod only. Its scope is documented nowhere (runpod_emulator/README.md).
            if own_pod is None or self.pod_key_v2 == "refused":
                return self._rate_limited(problem(403, "access denied"))
            if not re.fullmatch(rf"/v2/pods/{re.escape(own_pod)}(/.*)?", req.path):
                return self._rate_limited(problem(403, "a pod-scoped API key may only act on its own pod"))
        return self._rate_limited(self.api.handle(req))

    def _rate_limited(self, reply: Reply) -> Reply:
        reply.headers.setdefault("RateLimit", self.recorder.ratelimit_header())
        reply.headers.setdefault("RateLimit-Policy", _policy(self.recorder.windows))
        return reply

    # ----- inspection ------------------------------------------------------------------------------

    def pods(self) -> list[dict]:
        """Live (non-deleted) pods in API shape, env included; also those a list-lag hides."""
        return self.world.all_pods()

    @property
    def requests(self) -> list[dict]:
        """Every /v2 and /graphql call in arrival order: {"method","path","query","status","ts"}; status
        None = dropped. `graphql.calls()` names each GraphQL call's operation, pod and key."""
        return self.recorder.entries()

    def state(self) -> dict:
        return {"pods": self.pods(), "volumes": self.world.list_volumes(), "requests": self.requests,
                "faults": self.faults.pending()}

    # ----- controls --------------------------------------------------------------------------------

    def enforce_quotas(self, quotas: dict | None = None):
        """Enforce per-account quotas over every /v2 call, counted in fixed windows (default: the
        spec's example policy, SPEC_QUOTAS); a call over a quota answers 429 with Retry-After = the
        seconds left in that window. `quotas={}` stops enforcing."""
        self.recorder.enforce(SPEC_QUOTAS if quotas is None else quotas)

    def inject(self, **fault) -> dict:
        """Add a fault (see `runpod_emulator.faults`); returns it as a dict. Raises ValueError/TypeError."""
        return self.faults.add(**fault).as_dict()

    def set_stock(self, data_center: str, gpu_id: str, level: str):
        self.world.set_stock(data_center, gpu_id, level)

    def set_service(self, pod_id: str | None = None, ready: bool = True):
        """ready=False: that pod's (or, with pod_id None, every pod's, future ones included) proxied
        services never become ready (502). pod_id None also clears per-pod settings."""
        self._by_pod_id(self.world.set_service, pod_id, ready)

    def deny_pool(self, gpu_id: str, denied: bool = True):
        """Creates of this GPU type answer 403 "cannot access the requested pool" (createPod)."""
        (self.world.denied_pools.add if denied else self.world.denied_pools.discard)(gpu_id)

    def set_catalog_stock(self, data_center: str, gpu_id: str, level: str | None):
        """The catalog shows `level` whatever the real stock (catalog lag); None ends it."""
        self.world.set_catalog_stock(data_center, gpu_id, level)

    def start_pod_out_of_band(self, pod_id: str) -> dict:
        """Start as someone using the console would; returns the pod."""
        return self._by_pod_id(self.world.start_out_of_band, pod_id)

    def delete_pod_out_of_band(self, pod_id: str):
        """Delete as someone using the console would: the program learns it by looking."""
        self._by_pod_id(self.world.delete_pod, pod_id)

    def stop_pod_out_of_band(self, pod_id: str, reason: str = "Stopping container") -> dict:
        """Stop as someone using the console would, or as the pod does itself (idle stop, a crash:
        `reason` is logged); returns the pod."""
        return self._by_pod_id(self.world.stop_out_of_band, pod_id, reason)

    def give_up_services(self, pod_id: str, text: str = "vllm exited 5 times; not restarting it"):
        """The pod's services gave up (the agent's restart limit): RUNNING, not serving, until a restart."""
        self._by_pod_id(self.world.give_up_services, pod_id, text)

    def container_env(self, pod_id: str) -> dict:
        """The env the pod's container sees: its env plus what RunPod injects (RUNPOD_POD_ID, the
        pod-scoped RUNPOD_API_KEY, …). Run the real startup script with it to play the pod."""
        return self._by_pod_id(self.world.container_env, pod_id)

    def reset(self):
        """Back to a fresh world: no pods, seeded volumes, default stock, no faults, no requests."""
        self.world.reset()
        self.faults.clear()
        self.recorder.clear()
        self.graphql.clear()
        self.recorder.enforce({})

    @staticmethod
    def _by_pod_id(operation, pod_id, *args):
        try:
            return operation(pod_id, *args)
        except ApiError as exc:
            if exc.status == 404:
                raise KeyError(pod_id) from None
            raise


class Recorder:
    """The log of `/v2` calls (for assertions) and the rate-limit window counters."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries: list[dict] = []
        self._counts: dict[str, tuple[int, int]] = {}  # window name -> (window index, calls in it)
        self.windows = WINDOWS
        self.enforced = False

    def enforce(self, quotas: dict):
        with self._lock:
            self.windows = tuple((name, secs, quotas.get(name, quota)) for name, secs, quota in WINDOWS)
            self.enforced = bool(quotas)
            if not quotas:
                self.windows = WINDOWS

    def over_quota(self) -> tuple[str, int] | None:
        """(window, seconds left in it) if the last call counted went over an enforced quota."""
        if not self.enforced:
            return None
        now = time.time()
        with self._lock:
            for name, secs, quota in self.windows:
                window, count = self._counts.get(name, (-1, 0))
                if window == int(now // secs) and count > quota:
                    return name, max(1, int(secs - now % secs) + 1)
        return None

    def begin(self, req: Request) -> dict:
        entry = {"method": req.method, "path": req.path, "query": dict(req.query), "status": None,
                 "ts": time.time()}
        with self._lock:
            self._entries.append(entry)
            for name, secs, _ in self.windows:
                window, count = self._counts.get(name, (-1, 0))
                index = int(entry["ts"] // secs)
                self._counts[name] = (index, count + 1 if index == window else 1)
        return entry

    def finish(self, entry: dict, status: int | None):
        with self._lock:
            entry["status"] = status

    def entries(self) -> list[dict]:
        with self._lock:
            return [dict(e, query=dict(e["query"])) for e in self._entries]

    def clear(self):
        with self._lock:
            self._entries.clear()

    def ratelimit_header(self) -> str:
        now = time.time()
        parts = []
        with self._lock:
            for name, secs, quota in self.windows:
                window, count = self._counts.get(name, (-1, 0))
                used = count if window == int(now // secs) else 0
                parts.append(f'"{name}";r={max(0, quota - used)};t={int(secs - now % secs)}')
        return ", ".join(parts)
