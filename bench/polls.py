"""How many times a create polls a pod that takes 10 minutes to serve.

Three figures, because waiting 10 real minutes does not fit a bench run:

- computed: walk `runpod_provider.polling.poll_delays()` (the provider's schedule) to 600 s;
- time-scaled: the real `ReadinessWaiter` and client against an emulator whose pod serves after
  600/K seconds, with the waiter's clock and sleep scaled by K. The whole schedule (first interval,
  ×1.5 and the 30 s cap) shrinks by K, so the count is the real one;
- env-scaled: a real `pulumi up` with `RUNPOD_DEPLOY_POLL_S = 1/K` (the provider's one knob). It
  scales the whole schedule, first interval and 30 s cap alike (`poll_delays()`), but each poll's
  own cost (an HTTP read, a log read waiting up to 0.5 s) does not shrink, so at this scale the
  count comes out LOWER than predicted: this row shows what the knob does; the time-scaled row is
  the faithful 10-minute figure.

The emulated pod looks like a cold start: container up after ~2 minutes (virtual), then ~8 minutes
of installs and model load during which RunPod reports RUNNING with a runtime but the proxy answers
502. In that phase every poll also reads the pod's logs (progress lines), so /v2 reads per create
are about twice the polls.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from common import Op, Sandbox, make_stack, models_for, pointed_at, timed

WAIT_S = 600.0
K = 60.0  # time scale: 600 s of virtual time take 10 s


def computed_polls(wait_s: float, initial: float = 1.0) -> tuple[int, list[float]]:
    """(polls until the first one at or after wait_s, the poll times) for the real schedule."""
    from runpod_provider.polling import poll_delays

    t, times, delays = 0.0, [0.0], poll_delays(initial)
    while t < wait_s:
        t += next(delays)
        times.append(t)
    return len(times), times


def schedule(n: int = 14, initial: float = 1.0) -> list[float]:
    from runpod_provider.polling import poll_delays

    it = poll_delays(initial)
    return [round(next(it), 3) for _ in range(n)]


@dataclass
class PollResults:
    computed: dict[float, int] = field(default_factory=dict)  # wait seconds -> polls
    scaled_polls: int = 0
    scaled_logs: int = 0
    scaled_wait_virtual: float = 0.0
    env_polls: int = 0
    env_logs: int = 0
    env_computed: int = 0
    env_op: Op | None = None


def emulator_delays() -> dict[str, float]:
    """Virtual 120 s to a container with a runtime, then 480 s until the services answer."""
    return dict(provision_delay=60 / K, start_delay=30 / K, runtime_delay=30 / K, ready_delay=480 / K)


def run(sandbox: Sandbox, say) -> PollResults:
    from runpod_emulator import Emulator

    res = PollResults()
    for wait in (60, 300, 600, 900, 1800):
        res.computed[wait] = computed_polls(wait)[0]
    say(f"10-minute create, time-scaled ×{K:g} (real ReadinessWaiter, clock and sleep scaled)")
    _time_scaled(res)
    say(f"  {res.scaled_polls} polls, {res.scaled_logs} log reads")
    say(f"10-minute create through the engine with RUNPOD_DEPLOY_POLL_S={1 / K:.4f} (whole schedule scaled)")
    emu = Emulator(api_keys=("rpa_" + secrets.token_hex(16),), log_interval=0.05, **emulator_delays()).start()
    try:
        with pointed_at(emu):
            bs = make_stack(sandbox, "benchpoll", emu, models_for(1),
                            extra_env={"RUNPOD_DEPLOY_POLL_S": f"{1 / K:.6f}"})
            res.env_op = timed("up", emu, bs.up)
            pod = next(iter(res.env_op.per_pod().values()))
            res.env_polls, res.env_logs = pod["polls"], pod["logs"]
            res.env_computed = computed_polls(WAIT_S / K, initial=1 / K)[0]
            bs.destroy()
    finally:
        emu.stop()
    say(f"  {res.env_polls} polls, {res.env_logs} log reads")
    return res


def _time_scaled(res: PollResults) -> None:
    import os

    from runpod_emulator import Emulator
    from runpod_provider.client import RunPodClient
    from runpod_provider.pod import delete_and_wait
    from runpod_provider.readiness import ReadinessWaiter
    from runpod_provider.spec import Probe
    from runpod_provider.wire import CreatePodRequest, GpuRequest

    assert "RUNPOD_DEPLOY_POLL_S" not in os.environ  # the production schedule
    emu = Emulator(api_keys=("rpa_" + secrets.token_hex(16),), log_interval=0.05, **emulator_delays()).start()
    client = RunPodClient(emu.api_key, emu.api_url)
    try:
        with pointed_at(emu):
            pod = client.create_pod(CreatePodRequest(
                name="runpod-deploy-bench-poll-abcdef", image="runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404",
                gpu=GpuRequest(id="NVIDIA L40S", count=1), dataCenterIds=["EU-RO-1"],
                ports=["8000/http", "3000/http", "22/tcp"]))
            n0 = len(emu.requests)
            start = time.monotonic()
            waiter = ReadinessWaiter(
                get_pod=lambda: client.get_pod(pod.id),
                read_logs=lambda last: client.pod_log_events(pod.id, tail=50, after=last, deadline_s=0.5 / K),
                probes=[Probe(port=8000), Probe(port=3000)], timeout_s=1800,
                say=lambda _line: None, clock=lambda: time.monotonic() * K, sleep=lambda s: time.sleep(s / K))
            waiter.wait()
            res.scaled_wait_virtual = (time.monotonic() - start) * K
            calls = emu.requests[n0:]
            res.scaled_polls = sum(1 for c in calls if c["method"] == "GET" and c["path"] == f"/v2/pods/{pod.id}")
            res.scaled_logs = sum(1 for c in calls if c["path"] == f"/v2/pods/{pod.id}/logs")
            delete_and_wait(client, pod.id)
    finally:
        client.close()
        emu.stop()
