"""The emulated world: pods, network volumes and stock, behind one lock.

A pod's status is never stored: timeline.py computes it from the current boot's timestamps;
placement.py decides where a create lands, from the stock and volumes held here.

Stopping ends the boot (EXITED). `start`, `restart` and a PATCH that changes the container begin a
new boot. Every method takes the lock, so the world is safe to share between handler threads.

v2 `status` is what the pod does now, not what was asked, and a reset is asynchronous
(runpod-plugins-official `runpod-migrate/reference/breaking-changes.md` Class 2 §7; `runpod-usage`
pod.yaml `pod.edits-apply-on-restart`). So a `start` or a container PATCH begins its new boot only
`reset_lag` seconds later: until then a started pod still reads EXITED, and a PATCHed pod still runs
its *old* container (RUNNING, old `startedAt`, old env answering through the proxy), or reads EXITED
with `patch_lag_status="EXITED"`.
"""
from __future__ import annotations

import random
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from startup.agent import protocol

from . import catalog, placement, timeline
from .faults import NO_GPU_DETAIL
from .logs import PodLog, rfc3339
from .messages import ApiError, not_found
from .timeline import Boot

# What `startSsh` injects when the account has an SSH key (CreatePodRequest.startSsh; the key
# registered with PUT /v2/account/ssh-keys).
DEFAULT_SSH_KEYS = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEmulatorTeamKeyForTestsOnly team@fuzzion",)

# Allowed actions per status, as the spec's podAction description lists them (its createPod
# example shows other ones for PROVISIONING; the description wins).
ACTIONS = {
    "PROVISIONING": ["stop", "terminate"],
    "STARTING": ["stop", "terminate"],
    "RUNNING": ["stop", "restart", "terminate"],
    "EXITED": ["start", "terminate"],
    "ERROR": ["start", "terminate"],
    "TERMINATED": [],
}

# PATCHing any of these restarts the container: unconfirmed for v2, but v1 documented that editing
# a pod "resets it completely" (https://docs.runpod.io/pods/manage-pods), the safe assumption.
RESTART_FIELDS = ("image", "args", "env", "ports", "disk")

# Live quirk (seen by clients, see runpod_emulator/README.md): runtime.ports carries an extra
# internal http port that is not in `ports`.
INTERNAL_HTTP_PORT = 19123

_ID_CHARS = string.ascii_lowercase + string.digits


def _random_id(length: int) -> str:
    return "".join(random.choice(_ID_CHARS) for _ in range(length))


@dataclass
class Pod:
    id: str
    seq: int  # creation order, also the pagination cursor
    name: str
    image: str
    args: str
    disk: int
    ports: list
    env: dict
    registry: str | None
    cloud: str
    data_center: str
    cuda_version: str | None
    gpu: dict
    mounts: dict
    locked: bool
    global_networking: bool
    cost: float
    created_at: float
    listed_at: float  # hidden from GET /v2/pods before this (listing-lag fault)
    log: PodLog
    boot: Boot | None = None  # None = EXITED
    # During a PATCH's reset lag: the old container, still running, and the env it runs with.
    old_boot: Boot | None = None
    old_env: dict | None = None
    last_started_at: float | None = None
    service_ready: bool | None = None  # per-pod override of World.service_default
    internal_ip: str = field(default_factory=lambda: f"100.65.{random.randint(0, 255)}.{random.randint(1, 254)}")
    # RunPod's pod-scoped API key, injected into the container as RUNPOD_API_KEY (see container_env).
    pod_key: str = field(default_factory=lambda: "rpa_pod_" + secrets.token_hex(16))


class World:
    def __init__(self, provision_delay=1.0, start_delay=1.0, runtime_delay=1.0, ready_delay=2.0,
                 log_interval=0.25, reset_lag=1.0, clock: Callable[[], float] = time.time):
        self.delays = dict(provision=provision_delay, start=start_delay, runtime=runtime_delay,
                           ready=ready_delay)
        self.log_interval = log_interval
        self.reset_lag = reset_lag  # seconds before a start or a container PATCH takes effect
        self.patch_lag_status = "RUNNING"  # what a PATCHed pod shows meanwhile: "RUNNING" (old) or "EXITED"
        self.clock = clock
        self.lock = threading.RLock()
        self.reset()

    def reset(self):
        with self.lock:
            self.pods: dict[str, Pod] = {}
            self.volumes: dict[str, dict] = {v["id"]: v for v in catalog.seeded_volumes()}
            self.stock = catalog.default_stock()
            self.service_default = True
            self._seq = 0
            self.capacity_details = list(placement.CAPACITY_DETAILS)
            self._capacity_turn = 0
            self.denied_pools: set[str] = set()  # GPU type ids whose create answers the pool 403
            self.catalog_stock: dict = {}  # (dc, gpu) -> level the catalog shows instead (catalog lag)
            self.ssh_keys = list(DEFAULT_SSH_KEYS)
            # What the startup prints on the next boots: {"mode": "normal"} | {"mode": "slow",
            # "seconds": s} (progress lines for s more seconds) | {"mode": "error", "text": t,
            # "phase": p} (error + phase=failed after p, then idles) | {"mode": "hang", "phase": p}.
            self.startup: dict = {"mode": "normal"}
            # How GET (getPod, listPods) echoes a pod; the defaults are the spec's. `sparse_get`: field ->
            # "omit" | "null" (live v2 has omitted fields the spec requires, e.g. `mounts`);
            # `normalised_echo`: the image in its full form (`docker.io/library/x:latest`), ports reordered.
            self.sparse_get: dict[str, str] = {}
            self.normalised_echo = False
            self.log_ids = "unique"  # getPodLogs event ids: "unique" (`ts/seq`) | "second" (the bare ts, 1 s)
            self.pull_line_every: float | None = None  # a system pull line every N s of PROVISIONING
            # A reset (PATCH or restart) that RunPod's fields do not show: status stays RUNNING, startedAt
            # and uptime keep the old boot's, runtime is null until the new container's runtime exists.
            self.opaque_reset = False
            # ERROR: {"after": s, "reason": text}: each boot goes to ERROR s seconds after RUNNING,
            # logging `reason` as a system line (e.g. "OCI runtime create failed" for a CUDA mismatch).
            self.error_after: dict | None = None
            # Starts (podAction start, console starts) come up with zero GPUs: the host's GPU was rented.
            self.zero_gpu_start = False

    # ----- lifecycle ---------------------------------------------------------------------------

    def _new_boot(self, pod: Pod, now: float, provision: float, lag: float = 0.0,
                  old: Boot | None = None, old_env: dict | None = None, reset: bool = False):
        """Begin a boot `lag` seconds from now; `old` keeps running until then (a PATCH's reset).
        `reset`: a PATCH or restart of a started container (what `opaque_reset` hides)."""
        shown = (old.shown_started or old.running_at) if old is not None else pod.last_started_at
        pod.last_started_at = timeline.started_at(pod, now)
        at = now + lag
        startup = dict(self.startup)
        extra = float(startup.get("seconds", 0)) if startup.get("mode") == "slow" else 0.0
        pod.boot = Boot(at, provision, self.delays["start"], self.delays["runtime"], self.delays["ready"] + extra,
                        f"213.173.{random.randint(96, 111)}.{random.randint(1, 254)}",
                        never_ready=startup.get("mode") in ("error", "hang"))
        if self.opaque_reset and reset and shown is not None:
            pod.boot.shown_started = shown
        if self.error_after:
            pod.boot.error_at = pod.boot.running_at + float(self.error_after.get("after", 0))
        pod.old_boot, pod.old_env = old, old_env
        pod.log.begin_boot(pod.image, at, at + provision, pod.boot.ready_at, pull=provision > 0,
                           restart=old is not None, startup=startup, pull_every=self.pull_line_every)
        if pod.boot.error_at is not None:
            pod.log.schedule(pod.boot.error_at, "system", self.error_after.get("reason", "container error"))

    def _end_boot(self, pod: Pod, now: float, reason: str = "Stopping container"):
        if pod.boot is None:
            return
        self._advance_log(pod, now)
        pod.last_started_at = timeline.started_at(pod, now)
        pod.log.end_boot(now, reason)
        pod.boot = pod.old_boot = pod.old_env = None

    def _service_ready_flag(self, pod: Pod) -> bool:
        return self.service_default if pod.service_ready is None else pod.service_ready

    def _services_up(self, pod: Pod, now: float) -> bool:
        boot = timeline.live_boot(pod, now)
        return (boot is not None and not boot.never_ready and now >= boot.ready_at
                and (boot.error_at is None or now < boot.error_at) and self._service_ready_flag(pod))

    def _advance_log(self, pod: Pod, now: float):
        pod.log.advance(now, self._service_ready_flag(pod))

    # ----- rendering ---------------------------------------------------------------------------

    def _render(self, pod: Pod, now: float) -> dict:
        status = timeline.status(pod, now)
        started = timeline.started_at(pod, now)
        runtime = None
        ssh_direct = None
        boot = timeline.live_boot(pod, now)
        if status == "RUNNING" and now >= boot.runtime_at:
            runtime = self._runtime(pod, now)
            if "22/tcp" in pod.ports:
                ip, port = boot.public_ip, runtime["ports"][pod.ports.index("22/tcp")]["public"]
                ssh_direct = {"host": ip, "port": port, "username": "root",
                              "command": f"ssh root@{ip} -p {port} -i ~/.ssh/id_ed25519"}
        proxy_user = f"{pod.id}-64411eb2"
        body = {
            "id": pod.id,
            "name": pod.name,
            "status": status,
            "actions": list(ACTIONS[status]),
            "image": pod.image,
            "args": pod.args,
            "disk": pod.disk,
            "ports": list(pod.ports),
            "env": dict(pod.env),
            "registry": pod.registry,
            "mounts": _copy_mounts(pod.mounts),
            "cloud": pod.cloud,
            "dataCenterId": pod.data_center,
            "cudaVersion": pod.cuda_version,
            "ssh": {
                "proxy": {"host": "ssh.runpod.io", "port": 22, "username": proxy_user,
                          "command": f"ssh {proxy_user}@ssh.runpod.io -i ~/.ssh/id_ed25519"},
                "direct": ssh_direct,
            },
            "template": None,
            "cost": pod.cost,  # live quirk: kept after a stop (the spec says 0.0)
            "locked": pod.locked,
            "globalNetworking": ({"enabled": True, "ip": pod.internal_ip.replace("100.65", "10.65", 1),
                                  "internalDns": f"{pod.id}.runpod.internal"}
                                 if pod.global_networking else {"enabled": False}),
            "runtime": runtime,
            "createdAt": rfc3339(pod.created_at),
            "startedAt": rfc3339(started) if started else None,
            "gpu": dict(pod.gpu),
        }
        return body

    def _runtime(self, pod: Pod, now: float) -> dict:
        boot, up = timeline.live_boot(pod, now), self._services_up(pod, now)
        ports = []
        for spec in [*pod.ports, f"{INTERNAL_HTTP_PORT}/http"]:
            private, kind = int(spec.split("/")[0]), spec.split("/")[1]
            ip = boot.public_ip if kind == "tcp" else pod.internal_ip
            # Drawn when first shown, then fixed for the boot (a port PATCHed in while PROVISIONING joins it).
            public = boot.public_ports.setdefault(private, random.randint(10000, 60000))
            ports.append({"ip": ip, "private": private, "public": public, "type": kind})
        gpus = pod.gpu["count"]
        return {
            "uptime": int(now - (boot.shown_started or boot.running_at)),
            "gpus": [{"util": 0, "memoryUtil": 88 if up else 0} for _ in range(gpus)],
            "cpu": {"util": 3 if up else 40},
            "memory": {"util": 35 if up else 10},
            "ports": ports,
        }

    # ----- pods: API operations (raise ApiError) ------------------------------------------------

    def _pod(self, pod_id: str) -> Pod:
        pod = self.pods.get(pod_id)
        if pod is None:
            raise not_found("pod not found")
        return pod

    def get_pod(self, pod_id: str) -> dict:
        with self.lock:
            return self._echo(self._render(self._pod(pod_id), self.clock()))

    def _echo(self, body: dict) -> dict:
        """A GET's view of a rendered pod: `sparse_get` and `normalised_echo` applied."""
        for name, how in self.sparse_get.items():
            if how == "omit":
                body.pop(name, None)
            else:
                body[name] = None
        if self.normalised_echo:
            if isinstance(body.get("image"), str):
                body["image"] = _full_image_ref(body["image"])
            if isinstance(body.get("ports"), list):
                body["ports"] = sorted(body["ports"], reverse=True)
        return body

    def list_pods(self, after_seq: int = 0, limit: int | None = None) -> tuple[list[dict], int | None]:
        """Visible pods created after `after_seq`, oldest first; plus the cursor seq when more remain."""
        with self.lock:
            now = self.clock()
            visible = [p for p in self.pods.values() if p.listed_at <= now and p.seq > after_seq]
            page = visible if limit is None else visible[:limit]
            more = limit is not None and len(visible) > limit
            return [self._echo(self._render(p, now)) for p in page], (page[-1].seq if more else None)

    def all_pods(self) -> list[dict]:
        """Every live pod, including ones a listing-lag fault hides (for assertions)."""
        with self.lock:
            now = self.clock()
            return [self._render(p, now) for p in self.pods.values()]

    def create_pod(self, body: dict, list_lag: Callable[[], float] = lambda: 0.0) -> dict:
        """Place and create a pod from a schema-valid CreatePodRequest. `list_lag()` is asked once
        the pod is placed, so a listing-lag fault is only consumed by a create that succeeds."""
        with self.lock:
            now = self.clock()
            if ("gpu" in body) == ("cpu" in body):
                raise ApiError(400, "exactly one of gpu or cpu must be set")
            if "cpu" in body:
                raise ApiError(400, "CPU pods are not emulated (runpod_emulator emulates GPU pods only)")
            if "templateId" in body:
                raise not_found(f"template '{body['templateId']}' not found")
            mounts = _copy_mounts(body.get("mounts") or {})
            if mounts.get("persistent") and mounts.get("network"):
                raise ApiError(400, "mounts.persistent and mounts.network cannot be combined")
            if not mounts.get("network"):
                mounts.pop("network", None)
            candidates = placement.candidate_dcs(body, mounts, self.volumes)
            cloud = body.get("cloud", "SECURE")
            dc, cuda, gpu, cost = placement.place_gpu(body["gpu"], cloud, candidates, stock=self.stock,
                                                      denied_pools=self.denied_pools,
                                                      capacity_error=self._capacity_error)
            env = dict(body.get("env", {}))
            if body.get("startSsh") and self.ssh_keys and "PUBLIC_KEY" not in env:
                # startSsh injects the account's keys as PUBLIC_KEY (CreatePodRequest.startSsh), and
                # GET echoes them in `env` (unconfirmed: the worst case for a client's diff).
                env["PUBLIC_KEY"] = "\n".join(self.ssh_keys)
            lag = list_lag()
            self._seq += 1
            pod = Pod(
                id=self._unused_id(), seq=self._seq, name=body["name"], image=body["image"],
                args=body.get("args", ""), disk=body.get("disk", 20), ports=list(body.get("ports", [])),
                env=env, registry=body.get("registry"), cloud=cloud,
                data_center=dc, cuda_version=cuda, gpu=gpu, mounts=mounts,
                locked=False, global_networking=bool(body.get("globalNetworking", False)),
                cost=cost, created_at=now, listed_at=now + lag, log=PodLog(self.log_interval),
            )
            self._new_boot(pod, now, provision=self.delays["provision"])
            self.pods[pod.id] = pod
            return self._render(pod, now)

    def _unused_id(self) -> str:
        while True:
            pod_id = _random_id(14)
            if pod_id not in self.pods:
                return pod_id

    def _capacity_error(self) -> ApiError:
        """The capacity 400, in the next of the live wordings (CAPACITY_DETAILS)."""
        detail = self.capacity_details[self._capacity_turn % len(self.capacity_details)]
        self._capacity_turn += 1
        return placement.capacity_error(detail)

    def update_pod(self, pod_id: str, body: dict) -> dict:
        """Apply a schema-valid UpdatePodRequest. `env` replaces the whole map (updatePod)."""
        with self.lock:
            now = self.clock()
            pod = self._pod(pod_id)
            if "templateId" in body:
                raise not_found(f"template '{body['templateId']}' not found")
            if "mounts" in body:
                mounts = _copy_mounts(body["mounts"])
                if mounts.get("persistent") and mounts.get("network"):
                    raise ApiError(400, "mounts.persistent and mounts.network cannot be combined")
                old_ids = [m["volumeId"] for m in pod.mounts.get("network", [])]
                if [m["volumeId"] for m in mounts.get("network", [])] != old_ids:
                    raise ApiError(400, "mounts.network[].volumeId is immutable after create")
            current = {"image": pod.image, "args": pod.args, "env": pod.env, "ports": pod.ports, "disk": pod.disk}
            restart = any(k in body and body[k] != current[k] for k in RESTART_FIELDS)
            status_before, env_before = timeline.status(pod, now), dict(pod.env)
            self._advance_log(pod, now)
            for key, attr in (("name", "name"), ("image", "image"), ("args", "args"), ("disk", "disk"),
                              ("registry", "registry"), ("locked", "locked"),
                              ("globalNetworking", "global_networking")):
                if key in body:
                    setattr(pod, attr, body[key])
            if "ports" in body:
                pod.ports = list(body["ports"])
            if "env" in body:
                pod.env = dict(body["env"])
            if "mounts" in body:
                pod.mounts = {k: v for k, v in _copy_mounts(body["mounts"]).items() if v}
            # A container change restarts a started container; a PROVISIONING pod picks it up when it
            # boots, and an EXITED one when it is next started.
            if restart and status_before in ("STARTING", "RUNNING"):
                if status_before == "RUNNING" and self.reset_lag > 0 and self.patch_lag_status == "RUNNING":
                    # The old container runs on (and answers) until the reset takes effect.
                    self._new_boot(pod, now, 0.0, lag=self.reset_lag, old=timeline.live_boot(pod, now),
                                   old_env=env_before, reset=True)
                else:
                    self._end_boot(pod, now)
                    self._new_boot(pod, now, 0.0, lag=self.reset_lag, reset=True)
            return self._render(pod, now)

    def pod_action(self, pod_id: str, action: str, start_fault: Callable[[], object] = lambda: None) -> dict | None:
        """Apply a lifecycle action; returns the pod, or None for `terminate`. `start_fault()` is
        asked only for a `start` that would otherwise succeed; a fault it returns fails the start."""
        with self.lock:
            now = self.clock()
            pod = self._pod(pod_id)
            status = timeline.status(pod, now)
            if action not in ACTIONS[status]:
                raise ApiError(409, f"cannot {action} a pod in status {status}")
            if pod.locked and action in ("stop", "restart"):
                raise ApiError(409, f"pod is locked: unlock it (PATCH locked=false) before {action}")
            if action == "terminate":
                self._delete(pod)
                return None
            if action == "stop":
                self._end_boot(pod, now)
            elif action == "start":
                fault = start_fault()
                if fault is not None:
                    raise ApiError(fault.status, fault.detail or NO_GPU_DETAIL)
                self._zero_gpus_if_rented(pod)
                self._new_boot(pod, now, provision=0.0, lag=self.reset_lag)
            elif action == "restart":
                self._end_boot(pod, now)
                self._new_boot(pod, now, provision=0.0, reset=True)
            return self._render(pod, now)

    def _zero_gpus_if_rented(self, pod: Pod):
        """`zero_gpu_start`: the stopped pod's host GPU was rented meanwhile, and the start answers
        200 but comes up with `gpu.count: 0` (runpod/docs pods/troubleshooting/zero-gpus.mdx): vLLM
        finds no GPU and crash-loops (the supervisor's restart lines go on: progress, never ready)."""
        if self.zero_gpu_start:
            pod.gpu = {**pod.gpu, "count": 0}
            pod.service_ready = False

    def delete_pod(self, pod_id: str):
        with self.lock:
            self._delete(self._pod(pod_id))

    def _delete(self, pod: Pod):
        # A deleted pod is gone: GET answers 404 and it leaves the list (TERMINATED is never shown).
        del self.pods[pod.id]

    # ----- the identity RunPod injects into every pod ---------------------------------------------

    def container_env(self, pod_id: str) -> dict:
        """The env the pod's container sees: its own env plus "Runpod-provided variables"
        (https://docs.runpod.io/pods/templates/environment-variables), among them RUNPOD_POD_ID and the
        pod-scoped RUNPOD_API_KEY. GET /pods/{id} echoes only the pod's own env (whether live echoes the
        injected ones is unconfirmed). Injected values win over the pod's own (unconfirmed)."""
        with self.lock:
            pod = self._pod(pod_id)
            injected = {"RUNPOD_POD_ID": pod.id, "RUNPOD_API_KEY": pod.pod_key, "RUNPOD_DC_ID": pod.data_center,
                        "RUNPOD_GPU_COUNT": str(pod.gpu.get("count", 0))}
            for mount in pod.mounts.get("network", []):
                injected["RUNPOD_VOLUME_ID"] = mount["volumeId"]
            return {**pod.env, **injected}

    def pod_of_key(self, key: str) -> str | None:
        """The id of the live pod whose pod-scoped key this is (a deleted pod's key is dead)."""
        with self.lock:
            return next((p.id for p in self.pods.values() if secrets.compare_digest(p.pod_key, key)), None)

    # ----- out-of-band (as if someone used the console) -------------------------------------

    def stop_out_of_band(self, pod_id: str, reason: str = "Stopping container") -> dict:
        """Stopped by the console, or by the pod itself (idle stop, a crash): `reason` is logged."""
        with self.lock:
            pod, now = self._pod(pod_id), self.clock()
            if reason != "Stopping container":
                self._advance_log(pod, now)
                pod.log.note(now, reason)
            self._end_boot(pod, now)
            return self._render(pod, now)

    def start_out_of_band(self, pod_id: str) -> dict:
        """Started in the console: a new boot at once."""
        with self.lock:
            pod, now = self._pod(pod_id), self.clock()
            if timeline.status(pod, now) not in ("EXITED", "ERROR"):
                raise ApiError(409, f"cannot start a pod in status {timeline.status(pod, now)}")
            self._zero_gpus_if_rented(pod)
            self._new_boot(pod, now, provision=0.0)
            return self._render(pod, now)

    def give_up_services(self, pod_id: str, text: str = "vllm exited 5 times; not restarting it"):
        """The pod agent's supervisor gave up on its services after its restart limit: the pod stays
        RUNNING (kept up for inspection) and the proxy answers 502, until the container restarts.
        Logged as the agent does: `runpod-deploy error=…`, then `runpod-deploy phase=failed`."""
        with self.lock:
            pod, now = self._pod(pod_id), self.clock()
            if pod.boot is None:
                raise ApiError(409, "the pod is not running")
            self._advance_log(pod, now)
            pod.boot.never_ready = True
            pod.log.note(now, protocol.error_line(text))
            pod.log.note(now, protocol.phase_line(protocol.FAILED))

    # ----- services behind the proxy, and logs --------------------------------------------------

    def set_service(self, pod_id: str | None, ready: bool):
        """pod_id None sets the default for all pods, present and future, and clears overrides."""
        with self.lock:
            if pod_id is None:
                self.service_default = bool(ready)
                for pod in self.pods.values():
                    pod.service_ready = None
            else:
                self._pod(pod_id).service_ready = bool(ready)

    def proxy_target(self, pod_id: str, port: int) -> tuple[str, dict]:
        """('no_pod'|'no_port'|'down'|'ready', pod env) for a proxied request to pod_id:port."""
        with self.lock:
            pod = self.pods.get(pod_id)
            if pod is None:
                return "no_pod", {}
            if f"{port}/http" not in pod.ports:
                return "no_port", {}
            now = self.clock()
            old = pod.boot is not None and now < pod.boot.at and pod.old_boot is not None
            env = pod.old_env if old else pod.env  # the old container runs with the old env
            return ("ready" if self._services_up(pod, now) else "down"), dict(env)

    def log_lines(self, pod_id: str, after_seq: int = 0, source: str | None = None):
        """(lines after `after_seq`, whether the pod still exists); for a stream already open."""
        with self.lock:
            pod = self.pods.get(pod_id)
            if pod is None:
                return [], False
            self._advance_log(pod, self.clock())
            return pod.log.after(after_seq, source), True

    def log_backlog(self, pod_id: str, source: str | None, tail: int,
                    since: float | None, after_seq: int | None):
        """The backfill a new log stream starts with; returns (lines, last seq in the log)."""
        with self.lock:
            pod = self._pod(pod_id)
            self._advance_log(pod, self.clock())
            lines = pod.log.after(0, source)
            last = pod.log.lines[-1].seq if pod.log.lines else 0
            if after_seq is not None:
                lines = [line for line in lines if line.seq > after_seq]
            elif since is not None:
                lines = [line for line in lines if line.ts > since]
            else:
                lines = lines[-tail:] if tail else []
            return lines, last

    # ----- stock -----------------------------------------------------------------------------

    def set_stock(self, data_center: str, gpu_id: str, level: str):
        if data_center not in catalog.DATA_CENTERS_BY_ID:
            raise ValueError(f"unknown data center {data_center!r}")
        if gpu_id not in catalog.GPUS_BY_ID:
            raise ValueError(f"unknown GPU type {gpu_id!r}")
        if level not in catalog.AVAILABILITY_LEVELS:
            raise ValueError(f"level must be one of {catalog.AVAILABILITY_LEVELS}")
        with self.lock:
            self.stock[(data_center, gpu_id)] = level

    def stock_level(self, data_center: str, gpu_id: str) -> str:
        with self.lock:
            return self.stock.get((data_center, gpu_id), "NONE")

    def catalog_level(self, data_center: str, gpu_id: str) -> str:
        """What the catalog shows: the stock, unless a catalog-lag override says otherwise (the
        spec: "a create can still fail for capacity on a GPU the catalog just reported")."""
        with self.lock:
            return self.catalog_stock.get((data_center, gpu_id)) or self.stock_level(data_center, gpu_id)

    def set_catalog_stock(self, data_center: str, gpu_id: str, level: str | None):
        with self.lock:
            if level is None:
                self.catalog_stock.pop((data_center, gpu_id), None)
            else:
                self.catalog_stock[(data_center, gpu_id)] = level

    # ----- network volumes --------------------------------------------------------------------

    def list_volumes(self) -> list[dict]:
        with self.lock:
            return [dict(v) for v in self.volumes.values()]

    def get_volume(self, volume_id: str) -> dict:
        with self.lock:
            volume = self.volumes.get(volume_id)
            if volume is None:
                raise not_found("network volume not found")
            return dict(volume)


def _full_image_ref(ref: str) -> str:
    """`runpod/x:1` -> `docker.io/runpod/x:1`, `ubuntu` -> `docker.io/library/ubuntu:latest`."""
    first = ref.split("/", 1)[0]
    if "/" in ref and ("." in first or ":" in first):
        return ref  # already names a registry
    if "/" not in ref:
        ref = "library/" + ref
    if "@" not in ref and ":" not in ref.rsplit("/", 1)[-1]:
        ref += ":latest"
    return "docker.io/" + ref


def _copy_mounts(mounts: dict) -> dict:
    out = {}
    if mounts.get("persistent"):
        out["persistent"] = dict(mounts["persistent"])
    if "network" in mounts:
        out["network"] = [dict(m) for m in mounts["network"]]
    return out
