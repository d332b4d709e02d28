"""Figures 1, 2 and 4: `up` wall time for n models vs a sequential client baseline, the /v2 calls of
each stack operation, and the engine overhead (no-op preview vs an empty program's preview).

Everything runs against one in-process emulator whose pods take D seconds from create to serving.
The provider runs with its production poll schedule (RUNPOD_DEPLOY_POLL_S unset: 1 s, ×1.5, cap 30 s).
"""

from __future__ import annotations

import copy
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from common import Op, Sandbox, empty_stack, make_stack, median, models_for, pointed_at, timed


def emulator_delays(d: float) -> dict[str, float]:
    """Split D (create → services answer 200) like a real pod: most of it provisioning, then 1 s each
    for STARTING, RUNNING without runtime, and the services coming up."""
    tail = 3.0 if d >= 6 else d / 2
    return dict(provision_delay=d - tail, start_delay=tail / 3, runtime_delay=tail / 3, ready_delay=tail / 3)


@dataclass
class ProvisioningResults:
    d: float
    delays: dict[str, float]
    ups: dict[int, Op] = field(default_factory=dict)          # n models -> the timed `up`
    destroys: dict[int, Op] = field(default_factory=dict)
    baseline: list[float] = field(default_factory=list)       # cumulative seconds until pod k is ready
    baseline_polls: list[int] = field(default_factory=list)
    ops: dict[str, Op] = field(default_factory=dict)          # figure 2, on the 2-model stack
    noop_previews: list[float] = field(default_factory=list)  # figure 4
    empty_previews: list[float] = field(default_factory=list)
    pods_left: int = 0


def run(sandbox: Sandbox, d: float, ns: list[int], preview_runs: int, say) -> ProvisioningResults:
    from runpod_emulator import Emulator

    delays = emulator_delays(d)
    res = ProvisioningResults(d=d, delays=delays)
    key = "rpa_" + secrets.token_hex(16)
    emu = Emulator(api_keys=(key,), log_interval=0.25, **delays).start()
    try:
        with pointed_at(emu):
            _lifecycle(sandbox, emu, res, preview_runs, say)
            for n in ns:
                if n == 2:
                    continue  # measured in the lifecycle above
                bs = make_stack(sandbox, f"bench{n}", emu, models_for(n))
                say(f"up, {n} models")
                res.ups[n] = timed("up", emu, bs.up)
                say(f"  {res.ups[n].wall:.1f} s; destroy")
                res.destroys[n] = timed("destroy", emu, bs.destroy)
            say(f"baseline: {max(ns)} pods one after the other through RunPodClient")
            _baseline(emu, models_for(max(ns)), res)
            say("  " + ", ".join(f"{t:.1f}" for t in res.baseline) + " s (cumulative)")
        res.pods_left = len(emu.pods())
    finally:
        emu.stop()
    return res


def _lifecycle(sandbox: Sandbox, emu, res: ProvisioningResults, preview_runs: int, say) -> None:
    """The 2-model stack through every operation of figure 2; figure 4's previews while it is up."""
    models = models_for(2)
    bs = make_stack(sandbox, "bench2", emu, models)
    empty = empty_stack(sandbox)
    say("preview (2 models, nothing deployed)")
    res.ops["preview"] = timed("preview", emu, bs.preview)
    say("up, 2 models")
    res.ops["up"] = res.ups[2] = timed("up", emu, bs.up)
    say(f"  {res.ups[2].wall:.1f} s")
    say(f"engine overhead: {preview_runs}× no-op preview of the program, {preview_runs}× preview of an empty program")
    empty.preview()  # first run of the empty project pays one-time setup; not counted
    for i in range(preview_runs):  # interleaved, so a colleague's load spike hits both alike
        op = timed("preview (no-op)", emu, bs.preview)
        res.noop_previews.append(op.wall)
        if i == 0:
            res.ops["preview (no-op)"] = op
        start = time.monotonic()
        empty.preview()
        res.empty_previews.append(time.monotonic() - start)
    say("no-op up, refresh, running: false flip, running: true again, destroy")
    res.ops["up (no-op)"] = timed("up (no-op)", emu, bs.up)
    res.ops["refresh"] = timed("refresh", emu, bs.refresh)
    flipped = copy.deepcopy(models)
    flipped["olmocr"]["running"] = False
    bs.write_config({**bs.config, "models": flipped})
    res.ops["up (olmocr running: false)"] = timed("up (running: false)", emu, bs.up)
    bs.write_config({**bs.config, "models": models})
    res.ops["up (olmocr running: true again)"] = timed("up (running: true)", emu, bs.up)
    res.ops["destroy"] = res.destroys[2] = timed("destroy", emu, bs.destroy)


def _baseline(emu, models: dict[str, Any], res: ProvisioningResults) -> None:
    """What the old shell scripts did: create a pod, poll it until it serves, then the next one.
    Same client, same create body, same readiness check and poll schedule as the provider; the only
    difference is that nothing runs in parallel."""
    from runpod_deploy import pod_env
    from runpod_deploy.config import StackConfig
    from runpod_deploy.model_server import PORTS
    from runpod_provider.client import RunPodClient
    from runpod_provider.naming import name_prefix, new_pod_name
    from runpod_provider.pod import delete_and_wait
    from runpod_provider.readiness import ReadinessWaiter
    from runpod_provider.spec import PodSpec

    cfg = StackConfig.model_validate({"project": "runpod-deploy", "stack": "baseline",
                                      "networkVolumeId": "fuzzvol01eu", "models": models})
    client = RunPodClient(emu.api_key, emu.api_url)
    created: list[str] = []
    start = time.monotonic()
    try:
        for name in models:
            prefix = name_prefix(cfg.project, cfg.stack, name)
            spec = PodSpec(
                name_prefix=prefix, name=new_pod_name(prefix), image=cfg.image,
                gpu_type_ids=cfg.gpu_types, data_center_ids=[cfg.data_center],
                network_volume_id=cfg.network_volume_id, min_cuda_version=cfg.min_cuda_version,
                start_ssh=True, ports=PORTS, env=pod_env.startup_env(name, cfg.models[name], cfg),
                secret_env={"VLLM_API_KEY": secrets.token_urlsafe(32),
                            "WEBUI_ADMIN_PASSWORD": secrets.token_urlsafe(32),
                            "WEBUI_SECRET_KEY": secrets.token_urlsafe(48)},
                start_command=pod_env.bootstrap_command(),
                readiness=[{"port": 8000, "path": "/health"}, {"port": 3000, "path": "/health"}])
            pod = client.create_pod(spec.create_request(spec.gpu_type_ids[0]))
            created.append(pod.id)
            waiter = ReadinessWaiter(get_pod=lambda pod_id=pod.id: client.get_pod(pod_id),
                                     read_logs=lambda last, pod_id=pod.id: client.pod_log_events(
                                         pod_id, tail=50, after=last, deadline_s=0.5),
                                     probes=spec.readiness, timeout_s=600, say=lambda _line: None)
            waiter.wait()
            res.baseline.append(time.monotonic() - start)
            res.baseline_polls.append(waiter.polls)
    finally:
        for pid in created:
            delete_and_wait(client, pid)
        client.close()


def schedule_floor(d: float, initial: float = 1.0) -> float:
    """When the first poll at or after D happens with the real schedule (polls at 0, 1, 2.5, …
    seconds after the create): the earliest a create can notice a pod that serves at D."""
    from runpod_provider.polling import poll_delays

    t = 0.0
    delays = poll_delays(initial)
    while t < d:
        t += next(delays)
    return t


def engine_overhead(res: ProvisioningResults) -> float:
    return median(res.noop_previews)
