"""The `runpod:Pod` dynamic resource: one RunPod GPU pod, from create to ready to delete.

This module is imported by reference when Pulumi pickles the provider, so it must stay at
`runpod_provider.pod` while any stack has pods (delete and refresh unpickle the old reference).
The provider keeps no per-call state on `self`: the engine runs up to 4 calls concurrently on one
instance, so each call makes its own client.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pulumi
from pulumi import dynamic
from pydantic import ValidationError

from startup.agent import protocol

from . import api_errors, placement, server_hooks
from .client import RunPodClient
from .keys import ApiKeyError, find_api_key
from .naming import is_pod_name_of, new_pod_name
from .polling import Backoff, poll_until
from .provider_errors import (
    CleanupFailed,
    CreateInterrupted,
    DeleteRateLimited,
    DeleteTimeout,
    Interrupted,
    MalformedApiKey,
    MissingApiKey,
    PodNotReady,
    PodVanished,
    RunPodFailed,
    StartRefused,
    WokeWithoutGpu,
)
from .readiness import BOOT_GRACE_S, BootMark, NotReady, ReadinessWaiter, ZeroGpus, boot_is_new, probe_ok, public_url
from .spec import (
    INPUT_KEYS,
    LOCAL_KEYS,
    PATCH_KEYS,
    REPLACE_KEYS,
    RESETTING_KEYS,
    PodArgs,
    PodSpec,
    Probe,
    describe_errors,
)
from .wire import (
    STOPPED_STATUSES,
    UP_STATUSES,
    PodInfo,  # the API's view of a pod; `Pod` below is the Pulumi resource
    PodStatus,
)

server_hooks.install()  # in the provider process: one-line errors, and Ctrl-C reaches the waits

OUTPUT_KEYS = ("pod_id", "gpu_type", "data_center", "cost_per_hr", "status", "urls")
LOG_TAIL_ON_FAILURE = 20
# How long a create whose answer was lost (5xx, timeout) looks for its pod in the list before it
# gives up. Long, because a pod in doubt that is not adopted here bills outside state until the
# next `up` sweeps it. RUNPOD_DEPLOY_ADOPT_WAIT_S shortens it for tests.
CREATE_ADOPT_WAIT_S = 60.0
# After DELETE, how long and how often to read the pod until it is gone.
DELETE_WAIT_S = 300.0
DELETE_POLL = Backoff(first_s=0.5, factor=2.0, cap_s=10.0)
# After a new key was set: `destroy` must run the program (a plain one configures the provider from the
# state, i.e. with the old key) and skip the refresh (which reads with the state's provider too).
NEW_KEY_DESTROY = "pulumi destroy --run-program --refresh=false"
# After a start answered with an error (outcome unknown): how often to look for the new boot.
START_POLL = Backoff(first_s=1.0, factor=1.5, cap_s=10.0)
# How long any call keeps honouring RunPod's Retry-After (an hour window can ask ~30 min). RunPod's
# windows are per account over every call, so the reads of a refresh-first `destroy` meet them as
# often as its DELETEs: one patience for all (a pod that cannot be deleted bills).
# RUNPOD_DEPLOY_RATE_PATIENCE_S (or the older RUNPOD_DEPLOY_DELETE_PATIENCE_S) shortens it for tests.
RATE_LIMIT_PATIENCE_S = 2700.0


class PodProvider(dynamic.ResourceProvider):
    # The RunPod key is read in configure() (it runs in the provider process, after unpickling), so
    # it is never pickled into state.
    _api_key: str | None = None

    def configure(self, req: dynamic.ConfigureRequest) -> None:
        self._api_key = req.config.get("runpod:apiKey")

    def _client(self) -> RunPodClient:
        try:
            key = find_api_key(self._api_key)
        except ApiKeyError as e:
            raise MalformedApiKey(str(e)) from None
        if not key:
            raise MissingApiKey()
        adopt_wait = float(os.environ.get("RUNPOD_DEPLOY_ADOPT_WAIT_S", CREATE_ADOPT_WAIT_S))
        return RunPodClient(key, adopt_wait_s=adopt_wait, patience_s=_rate_limit_patience(),
                            say=lambda line: print(f"[runpod] {line}", flush=True), sleep=_interruptible_sleep)

    # --- check: validate, and give the pod its unique name once --------------------------------
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        inputs = {k: v for k, v in news.items() if k != "__provider"}
        prefix = inputs.get("name_prefix")
        if _has_unknowns(prefix):  # preview of a first up: the name token does not exist yet
            prefix = None
        # The random suffix is drawn once and kept, like Pulumi's auto-naming.
        old_name = olds.get("name")
        if isinstance(prefix, str) and isinstance(old_name, str) and is_pod_name_of(prefix, old_name):
            inputs["name"] = old_name
        elif isinstance(prefix, str):
            inputs["name"] = new_pod_name(prefix)
        if any(_has_unknowns(v) for v in inputs.values()):
            # Preview, before secrets and ids exist: validate once they are known.
            return dynamic.CheckResult(inputs, [])
        try:
            PodSpec.model_validate(inputs)
        except ValidationError as e:
            return dynamic.CheckResult(inputs, [dynamic.CheckFailure(p, r) for p, r in describe_errors(e)])
        return dynamic.CheckResult(inputs, [])

    # --- diff: compares old OUTPUTS (which echo every input) with new inputs -------------------
    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        changed = [k for k in INPUT_KEYS
                   if _norm(olds.get(k)) != _norm(news.get(k)) and not _new_default(k, olds, news)]
        replaces = [k for k in changed if k in REPLACE_KEYS]
        if olds.get("status") == PodStatus.ERROR and news.get("running", True) is not False:
            # A pod in ERROR (e.g. "OCI runtime create failed": the image's CUDA does not fit the host)
            # would fail the same way on every start: a new pod, through the GPU walk, instead.
            changed, replaces = changed + ["status"], replaces + ["status"]
        # delete_before_replace: a GPU pod bills by the hour, and with the old pod gone first any pod
        # carrying this resource's name prefix at create time can only be an orphan (see create).
        return dynamic.DiffResult(changes=bool(changed), replaces=replaces,
                                  delete_before_replace=bool(replaces) or None)

    # --- create ---------------------------------------------------------------------------------
    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        spec = PodSpec.model_validate(_inputs(props))
        client = self._client()
        try:
            unknown: list = []
            try:
                self._sweep_orphans(client, spec)
                pod = placement.place(client, spec, unknown, say=lambda line: _say(spec, line))
            except api_errors.RunPodError as e:
                raise RunPodFailed(e, f"creating pod {spec.name}", "no pod was created", "pulumi up") from None
            try:
                if spec.running:
                    pod = self._wait_until_ready(client, spec, pod)
                else:
                    pod = self._stop_when_placed(client, spec, pod)
            except BaseException as e:  # noqa: BLE001 - re-raised (as what to tell the user) below
                # A failed create leaves nothing billing: the pod is deleted before the error surfaces.
                raise _failed_create(client, spec, pod, e) from None
            if unknown:
                self._sweep_orphans(client, spec, keep=pod.id)  # a create in doubt that appeared since
            return dynamic.CreateResult(pod.id, _outs(spec, pod))
        finally:
            client.close()

    def _sweep_orphans(self, client: RunPodClient, spec: PodSpec, keep: str | None = None) -> None:
        """A create killed mid-way (SIGKILL, lost laptop) leaves a pod that no state records. With
        delete-before-replace, any pod named like this resource's pods is such an orphan: delete it
        so it stops billing, instead of leaving a duplicate. `keep`: the pod this create placed after
        a create in doubt (5xx); then any other pod of this resource's names is that lost create's."""
        for pod in client.list_pods():
            mine = pod.id == keep if keep else pod.name == spec.name
            if is_pod_name_of(spec.name_prefix, pod.name) and not mine:
                _say(spec, f"deleting orphan pod {pod.id} ({pod.name}) left by an interrupted create")
                delete_and_wait(client, pod.id, say=lambda line: _say(spec, line))

    def _wait_until_ready(self, client: RunPodClient, spec: PodSpec, pod: PodInfo,
                          after: BootMark | None = None, gpus: int = 0) -> PodInfo:
        """Until the pod serves. `after`: a start or container PATCH was sent (update): wait for a
        new boot first, and on failure the pod is kept (it is in state), not deleted. `gpus`: the
        boot must show that many GPUs (a start on a host whose GPU was rented comes up with zero),
        else ZeroGpus."""
        waiter = ReadinessWaiter(
            gpus=gpus,
            get_pod=lambda: client.get_pod(pod.id),
            read_logs=lambda last: client.pod_log_events(pod.id, tail=50, after=last, deadline_s=0.5),
            probes=spec.readiness,
            timeout_s=spec.ready_timeout_s,
            stall_s=spec.ready_stall_s,
            after=after,
            say=lambda line: _say(spec, line),
            sleep=_interruptible_sleep,
        )
        try:
            ready = waiter.wait()
        except ZeroGpus:
            raise
        except NotReady as e:
            raise PodNotReady(pod.id, e.reason, _last_logs(client, pod.id), kept=after is not None) from None
        except api_errors.NotFoundError:
            raise PodVanished(pod.id) from None
        _say(spec, f"pod {pod.id} ready after {waiter.polls} polls")
        return ready

    def _stop_when_placed(self, client: RunPodClient, spec: PodSpec, pod: PodInfo) -> PodInfo:
        """`running: false` at create: place the pod (so the GPU and host are chosen), then stop it."""
        ReadinessWaiter(get_pod=lambda: client.get_pod(pod.id), read_logs=lambda _last: [], probes=[],
                        timeout_s=spec.ready_timeout_s, say=lambda line: _say(spec, line),
                        sleep=_interruptible_sleep).wait()
        return client.stop_pod(pod.id)

    def _replace_on_wake(self, client: RunPodClient, spec: PodSpec, old: PodInfo, why: str) -> dynamic.UpdateResult:
        """The stopped pod cannot get a GPU on its host (a stopped pod keeps its host: runpod-python#168,
        runpod/docs pods/troubleshooting/zero-gpus.mdx). The network volume holds everything, so a new pod
        through the usual GPU walk serves the same; the old one is deleted only once the new one serves.
        The resource keeps its Pulumi id; `pod_id` (and the URLs) name the new pod, and every later call
        uses `pod_id` (`_pod_id`)."""
        new_spec = spec.model_copy(update={"name": new_pod_name(spec.name_prefix)})
        _say(spec, f"pod {old.id} cannot wake on its host ({why}): replacing it with a new pod on any free GPU "
                   "(same volume); the old pod is deleted once the new one serves")
        try:
            pod = placement.place(client, new_spec, say=lambda line: _say(new_spec, line))
        except api_errors.RunPodError as e:
            raise RunPodFailed(e, f"creating a pod to replace {old.id}", f"pod {old.id} is still in the stack's "
                               "state, stopped", "pulumi up") from None
        try:
            pod = self._wait_until_ready(client, new_spec, pod)
        except BaseException as e:  # noqa: BLE001 - re-raised (as what to tell the user) below
            raise _failed_create(client, new_spec, pod, e) from None
        delete_and_wait(client, old.id, say=lambda line: _say(new_spec, line), in_state=True)
        return dynamic.UpdateResult(_outs(new_spec, pod))

    # --- read (refresh) -------------------------------------------------------------------------
    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        client = self._client()
        pod_id = _pod_id(id_, props)
        try:
            pod = client.get_pod(pod_id)
            not_serving = _not_serving(client, pod, props)
        except api_errors.NotFoundError:
            return dynamic.ReadResult("", {})  # a blank id drops the resource from state
        except api_errors.RunPodError as e:
            # Every `up`, `refresh` and `destroy` reads first (Pulumi.yaml: refresh always), and that read
            # uses the provider as the state recorded it, i.e. the key the pod was created with: a new
            # key reaches the provider only when the program runs, without the refresh.
            pods = f"pod {pod_id} is still in the stack's state, unchanged"
            if isinstance(e, api_errors.AuthError):
                pods += " (after a new key, `pulumi up` also needs `--refresh=false` once)"
            again = NEW_KEY_DESTROY if isinstance(e, api_errors.AuthError) else None
            raise RunPodFailed(e, f"reading pod {pod_id}", pods, again) from None
        finally:
            client.close()
        if pod.gone:
            return dynamic.ReadResult("", {})
        inputs = _inputs(props)
        # What the pod does now wins: a pod that stopped itself (idle stop, a crash) or was stopped
        # in the console reads back as running: false, one started in the console as running: true;
        # `status` (an output) keeps the exact observed status.
        # Absent or null means unknown, never empty (wire.PodInfo); an echo the server normalised (image
        # `docker.io/library/x:latest`, ports in another order) is the same value, not drift: either
        # would PATCH, i.e. reset the pod, on every refresh-first `up`.
        image, ports = inputs.get("image"), inputs.get("ports")
        if pod.image and not same_image(pod.image, image):
            image = pod.image
        if pod.ports is not None and set(pod.ports) != set(ports or []):
            ports = list(pod.ports)
        # A RUNNING pod whose services gave up (the agent stops restarting them after its limit)
        # reads as not running, so `up` heals it (update restarts it).
        if not_serving:
            _say_id(pod.id, f"pod {pod.id} is RUNNING but not serving ({not_serving}): `pulumi up` restarts it")
        inputs.update(running=pod.status in UP_STATUSES and not not_serving, image=image, ports=ports)
        if pod.env is not None:
            # Only the keys the program owns: RunPod injects others (startSsh's PUBLIC_KEY, RUNPOD_*)
            # and they are not drift. An owned key changed or gone on the pod is.
            plain, secret = set(inputs.get("env") or {}), set(inputs.get("secret_env") or {})
            inputs["env"] = {k: v for k, v in pod.env.items() if k in plain}
            inputs["secret_env"] = {k: v for k, v in pod.env.items() if k in secret}
        spec = PodSpec.model_construct(**inputs)
        return dynamic.ReadResult(id_, _outs(spec, pod), inputs)

    # --- update ---------------------------------------------------------------------------------
    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        spec = PodSpec.model_validate(_inputs(news))
        client = self._client()
        try:
            # Decide from what the pod does now, never from an answer to our own action: after a
            # start or a PATCH, v2 still shows the state from before for a while.
            id_ = _pod_id(id_, olds)  # the pod now (a wake onto a full host replaces it)
            before = client.get_pod(id_)
            pod, mark = before, None
            changed = [k for k in PATCH_KEYS if _norm(olds.get(k)) != _norm(news.get(k))]
            if changed:
                if set(changed) & set(RESETTING_KEYS):
                    mark = _boot_mark(client, before)
                owned = _owned_env(olds) | _owned_env(news)
                foreign = {k: v for k, v in (before.env or {}).items() if k not in owned}
                pod = client.update_pod(id_, spec.update_request(changed, foreign_env=foreign))
                _say(spec, f"updated pod {id_} in place ({', '.join(changed)})")
            stopped = before.status in STOPPED_STATUSES
            woken = False
            if spec.running and stopped:
                mark = mark or _boot_mark(client, before)
                try:
                    pod = start(client, spec, id_, mark)
                except StartRefused as e:
                    if spec.wake_without_gpu == "fail":
                        raise
                    return self._replace_on_wake(client, spec, before, f"RunPod refused the start: {e.cause}")
                woken = True
            elif not spec.running and not stopped:
                pod = client.stop_pod(id_)
                _say(spec, f"stopped pod {id_} (GPU released, volume kept)")
            elif spec.running and olds.get("running") is False and before.status == PodStatus.RUNNING and not changed:
                # read() found it RUNNING but not serving: restart the container.
                mark = _boot_mark(client, before)
                pod = client.restart_pod(id_)
                _say(spec, f"restarted pod {id_}: it was RUNNING but not serving")
            if spec.running:
                try:
                    pod = self._wait_until_ready(client, spec, pod, after=mark, gpus=spec.gpu_count if woken else 0)
                except ZeroGpus as e:
                    if spec.wake_without_gpu == "fail":
                        raise WokeWithoutGpu(id_, e.count) from None
                    return self._replace_on_wake(client, spec, e.pod, f"it came up with {e.count} GPUs")
            return dynamic.UpdateResult(_outs(spec, pod))
        except Interrupted:
            raise Interrupted(f"interrupted (Ctrl-C) while waiting for pod {id_} to serve after the update; the pod "
                              "is in state and keeps running; run `pulumi up` to wait for it again") from None
        except api_errors.RunPodError as e:
            raise RunPodFailed(e, f"updating pod {id_}", f"pod {id_} is still in the stack's state",
                               "pulumi up") from None
        finally:
            client.close()

    # --- delete ---------------------------------------------------------------------------------
    def delete(self, id_: str, props: dict[str, Any]) -> None:
        client = self._client()
        id_ = _pod_id(id_, props)
        try:
            delete_and_wait(client, id_, in_state=True)
        except api_errors.RunPodError as e:
            # A plain `destroy` configures the provider from the state, i.e. with the key the pods were
            # created with: a new key reaches it only when the program runs.
            again = NEW_KEY_DESTROY if isinstance(e, api_errors.AuthError) else "pulumi destroy"
            raise RunPodFailed(e, f"deleting pod {id_}", f"pod {id_} is still in the stack's state (and bills while it "
                               "runs)", again) from None
        finally:
            client.close()


class Pod(dynamic.Resource, module="runpod", name="Pod"):
    """A RunPod GPU pod that is ready (probes answer 200) when `pulumi up` returns."""

    pod_id: pulumi.Output[str]
    gpu_type: pulumi.Output[str]
    data_center: pulumi.Output[str]
    cost_per_hr: pulumi.Output[float]
    status: pulumi.Output[str]
    urls: pulumi.Output[dict[str, str]]
    name: pulumi.Output[str]

    def __init__(self, resource_name: str, args: PodArgs, opts: pulumi.ResourceOptions | None = None):
        # secret_env holds keys and tokens: keep it secret in state even where the engine's
        # input-to-output secret matching would not (e.g. after a refresh).
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["secret_env"]))
        # The outputs (and `name`, set by check()) as None: the SDK makes an attribute only for a key
        # it was given, and sends no None one to the engine.
        props = {"name": None, **args.props(), **{k: None for k in OUTPUT_KEYS}}
        super().__init__(PodProvider(), resource_name, props, opts)


# --- helpers: one mapping each ----------------------------------------------------------------
def _outs(spec: PodSpec, pod: PodInfo) -> dict[str, Any]:
    """The state: every input echoed (diff compares like with like), plus what RunPod decided."""
    outs = {k: _dump(getattr(spec, k, None)) for k in INPUT_KEYS}
    http_ports = [int(p.split("/")[0]) for p in (spec.ports or []) if p.endswith("/http")]
    outs.update(
        pod_id=pod.id,
        gpu_type=pod.gpu.id if pod.gpu else None,
        data_center=pod.dataCenterId,
        cost_per_hr=pod.cost,
        status=pod.status,
        urls={str(p): public_url(pod.id, p) for p in http_ports},
    )
    return outs


def _inputs(props: dict[str, Any]) -> dict[str, Any]:
    return {k: props[k] for k in INPUT_KEYS + ("name",) if k in props and props[k] is not None}


def _dump(v: Any) -> Any:
    if isinstance(v, list):
        return [_dump(x) for x in v]
    return v.model_dump() if hasattr(v, "model_dump") else v


def _norm(v: Any) -> Any:
    """Absent, None and empty compare equal; pydantic objects compare by their dict."""
    v = _dump(v)
    return None if v in (None, [], {}) else v


def same_image(a: str | None, b: str | None) -> bool:
    """Whether two image references name the same image once Docker's defaults are spelled out
    (`docker.io/`, `library/`, `:latest`): a registry may echo either form."""
    return a is not None and b is not None and _full_image(a) == _full_image(b)


def _full_image(ref: str) -> str:
    ref = ref.strip()
    for registry in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        ref = ref.removeprefix(registry)
    ref = ref.removeprefix("library/")
    name = ref.split("@", 1)[0]
    if "@" not in ref and ":" not in name.rsplit("/", 1)[-1]:
        ref += ":latest"
    return ref


def _has_unknowns(v: Any) -> bool:
    """During preview, values not computed yet (e.g. a generated key) arrive as the string
    rpc.UNKNOWN at the top level, or as `pulumi.output.Unknown` objects inside maps."""
    from pulumi.output import Unknown
    from pulumi.runtime import rpc

    if isinstance(v, dict):
        return any(_has_unknowns(x) for x in v.values())
    if isinstance(v, list):
        return any(_has_unknowns(x) for x in v)
    return isinstance(v, Unknown) or v == rpc.UNKNOWN


def delete_and_wait(client: RunPodClient, pod_id: str, timeout_s: float = DELETE_WAIT_S, *,
                     say=print, in_state: bool = False) -> None:
    """Idempotent: a pod already gone (404 or TERMINATED) counts as deleted. A rate limit is waited
    out by the client (RATE_LIMIT_PATIENCE_S, saying so); past that, DeleteRateLimited names the
    pod, that it bills, and the command."""

    def patiently(call):
        try:
            return call()
        except api_errors.RateLimitedError as e:
            wait = e.retry_after if e.retry_after is not None else 60.0
            raise DeleteRateLimited(pod_id, wait, client.patience_s, client.base_url, in_state) from None

    if not patiently(lambda: client.delete_pod(pod_id)):  # already gone (404)
        return

    def gone() -> bool | None:
        try:
            return patiently(lambda: client.get_pod(pod_id)).gone or None
        except api_errors.NotFoundError:
            return True

    if not poll_until(gone, timeout_s=timeout_s, delays=DELETE_POLL.delays()):
        raise DeleteTimeout(pod_id, timeout_s)


def start(client: RunPodClient, spec: PodSpec, pod_id: str, mark: BootMark) -> PodInfo:
    """`podAction` start of a stopped pod (same host). An error answer is not the outcome (a start can
    answer an error and start anyway: runpod/runpodctl#45): the pod's observed state decides. A
    refusal (400/409: e.g. the host's GPU is taken) is judged from one read; an answer lost to a 5xx
    or the network is watched for a new boot (the status lags the action) up to the boot grace."""
    try:
        pod = client.start_pod(pod_id)
    except api_errors.RunPodError as e:
        if isinstance(e, (api_errors.InsufficientFundsError, api_errors.AuthError,
                          api_errors.UnprocessableRequestError)):
            # The account or the request itself: no boot will follow, so no wait for one (402: add credit).
            raise RunPodFailed(e, f"starting pod {pod_id}", f"pod {pod_id} is still in the stack's state, stopped "
                               "(no GPU billed)", "pulumi up") from None
        refused = isinstance(e, (api_errors.BadRequestError, api_errors.CapacityError, api_errors.ConflictError))

        def booted() -> PodInfo | None:
            try:
                now = client.get_pod(pod_id)
            except (api_errors.RateLimitedError, api_errors.ServerError, api_errors.TransportError):
                return None
            return now if boot_is_new(now, mark, time.monotonic()) and now.status in UP_STATUSES else None

        now = booted() if refused else poll_until(booted, timeout_s=BOOT_GRACE_S, delays=START_POLL.delays(),
                                                  sleep=_interruptible_sleep)
        if now is None:
            if refused:
                raise StartRefused(pod_id, e) from None
            raise RunPodFailed(e, f"starting pod {pod_id}", f"pod {pod_id} is still in the stack's state, stopped "
                               "(no GPU billed)", "pulumi up") from None
        _say(spec, f"the start of pod {pod_id} was answered {e.status or 'with no answer'}, but the pod is "
                   f"{now.status}: waiting for it")
        return now
    _say(spec, f"started pod {pod_id}")
    return pod


def _failed_create(client: RunPodClient, spec: PodSpec, pod: PodInfo, cause: BaseException) -> BaseException:
    """Delete the pod of a create that failed, and return the exception to report."""
    if isinstance(cause, Interrupted):
        _say(spec, f"interrupted: deleting pod {pod.id} (`make pods` lists this stack's pods)")
    try:
        delete_and_wait(client, pod.id, say=lambda line: _say(spec, line))
    except (api_errors.RunPodError, DeleteTimeout) as e:
        return CleanupFailed(pod.id, spec.name, cause, e)
    if isinstance(cause, Interrupted):
        return CreateInterrupted(pod.id)
    if isinstance(cause, api_errors.RunPodError):
        return RunPodFailed(cause, f"waiting for pod {pod.id} to start", f"pod {pod.id} was deleted, so nothing "
                            "bills", "pulumi up")
    return cause


def _new_default(key: str, olds: dict[str, Any], news: dict[str, Any]) -> bool:
    """A provider-side input that a stack made before it existed lacks, now at its default: no change
    (else the first `up` after an upgrade shows every pod as an update)."""
    return (key in LOCAL_KEYS and key not in olds and key in PodSpec.model_fields
            and news.get(key) == PodSpec.model_fields[key].default)


def _pod_id(id_: str, props: dict[str, Any]) -> str:
    """The pod the resource stands for: its `pod_id` output, which a wake onto a full host moves to the
    replacement (the resource's Pulumi id stays the first pod's); the id itself otherwise."""
    pod_id = props.get("pod_id") if props else None
    return pod_id if isinstance(pod_id, str) and pod_id else id_


def _not_serving(client: RunPodClient, pod: PodInfo, props: dict[str, Any]) -> str | None:
    """Why a pod the state says is running, and RunPod shows RUNNING with a container, does not
    serve; None if it serves or may still be starting. A probe that fails twice is not yet proof: the
    pod's log must say its startup stopped (its last phase is `failed`) or that it had served
    (`ready`) and stopped since."""
    probes = [Probe.model_validate(p) for p in props.get("readiness") or []]
    if not probes or props.get("running") is False or not pod.container_up:
        return None
    failing = [p for p in probes if not _probe_ok_twice(pod.id, p)]
    if not failing:
        return None
    try:
        lines = client.pod_logs(pod.id, tail=200, deadline_s=1.0)
    except api_errors.RunPodError:
        return None
    phases = [e.value for e in map(protocol.parse, lines) if e is not None and e.kind == "phase"]
    if not phases or phases[-1] not in (protocol.FAILED, protocol.READY):
        return None  # still starting
    errors = [e.value for e in map(protocol.parse, lines) if e is not None and e.kind == "error"]
    ports = ", ".join(f"port {p.port}{p.path}" for p in failing)
    return f"{ports} not answering" + (f"; its log: {errors[-1]}" if errors else "")


def _probe_ok_twice(pod_id: str, probe: Probe) -> bool:
    return probe_ok(pod_id, probe) or (time.sleep(2.0) is None and probe_ok(pod_id, probe))


def _say_id(pod_id: str, line: str) -> None:
    print(f"[{pod_id}] {line}", flush=True)


def _rate_limit_patience() -> float:
    env = os.environ.get("RUNPOD_DEPLOY_RATE_PATIENCE_S") or os.environ.get("RUNPOD_DEPLOY_DELETE_PATIENCE_S")
    return float(env) if env else RATE_LIMIT_PATIENCE_S


def _interruptible_sleep(seconds: float) -> None:
    """Sleep, unless the engine cancels (Ctrl-C): then raise Interrupted at once."""
    if server_hooks.CANCELLED.wait(seconds):
        raise Interrupted()


def _boot_mark(client: RunPodClient, pod: PodInfo) -> BootMark:
    """The pod before a start/PATCH, with its current log lines (so none of them counts as the new
    boot's). The log read is best effort."""
    try:
        events = client.pod_log_events(pod.id, tail=200, deadline_s=2.0)  # its boot id, if it printed one
    except api_errors.RunPodError:
        events = []
    return BootMark.before(pod, events)


def _owned_env(props: dict[str, Any]) -> set[str]:
    """The env keys the program sets (plain and secret); any other key on the pod is RunPod's."""
    return set(props.get("env") or {}) | set(props.get("secret_env") or {})


def _last_logs(client: RunPodClient, pod_id: str) -> list[str]:
    try:
        return client.pod_logs(pod_id, tail=LOG_TAIL_ON_FAILURE, deadline_s=2.0)[-LOG_TAIL_ON_FAILURE:]
    except Exception:  # noqa: BLE001 - the logs only decorate the error being raised
        return []


def _say(spec: PodSpec, line: str) -> None:
    # Provider stdout reaches the CLI as info lines (not tied to a resource), so name the pod.
    print(f"[{spec.name}] {line}", flush=True)
