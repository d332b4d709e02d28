"""Waiting until a pod really serves.

RunPod v2 reports RUNNING before the container is up (runtime stays null for several polls), so
readiness is layered: RUNNING, then `runtime` present, then each probe answering 200 through the
proxy URL. Status polls back off (capped; `polling.poll_delays`) so a 10-minute cold start costs
under 30 of them; once the container runs, each poll also reads the pod's log tail for progress lines.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import requests

from .api_errors import RateLimitedError, RunPodError, ServerError, TransportError
from .client import USER_AGENT
from .polling import poll_delays, poll_until
from .spec import Probe
from .wire import Pod

DEFAULT_PROXY_URL = "https://{pod_id}-{port}.proxy.runpod.net"


def public_url(pod_id: str, port: int) -> str:
    """The URL users get (stack outputs): always RunPod's public proxy."""
    return DEFAULT_PROXY_URL.format(pod_id=pod_id, port=port)


def proxy_url(pod_id: str, port: int) -> str:
    """Where readiness is probed. Same as public_url unless RUNPOD_PROXY_URL points the probes at
    a stand-in (the emulator's proxy in tests and the demo)."""
    return os.environ.get("RUNPOD_PROXY_URL", DEFAULT_PROXY_URL).format(pod_id=pod_id, port=port)


class NotReady(Exception):
    """The pod did not become ready; `reason` says why, `status` is its last status."""

    def __init__(self, reason: str, status: str | None):
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass
class ReadinessWaiter:
    """Polls one pod until it serves. `get_pod` and `read_logs` are the client's calls; `schedule`
    gives the delays between polls (read when `wait()` starts, so RUNPOD_DEPLOY_POLL_S applies)."""

    get_pod: Callable[[], Pod]
    read_logs: Callable[[], list[str]]
    probes: list[Probe]
    timeout_s: float
    say: Callable[[str], None] = print
    schedule: Callable[[], Iterator[float]] = poll_delays
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    polls: int = 0
    _seen_phases: set[str] = field(default_factory=set)
    _last: Pod | None = None
    _failing: list[Probe] = field(default_factory=list)
    _unanswered: RunPodError | None = None  # the last poll's transient error, if it had one

    def wait(self) -> Pod:
        ready = poll_until(self._look, timeout_s=self.timeout_s, delays=self.schedule(),
                           clock=self.clock, sleep=self.sleep)
        if ready is not None:
            return ready
        last = self._last
        if self._unanswered is not None:
            waiting_for = f"an answer from RunPod (last poll: {self._unanswered})"
        elif last is None or not last.container_up:
            waiting_for = "the API to report RUNNING with a runtime"
        else:
            waiting_for = "HTTP 200 from " + ", ".join(f"port {p.port}{p.path}" for p in self._failing)
        raise NotReady(f"not ready after {self.timeout_s:.0f}s: still waiting for {waiting_for}",
                       last.status if last else None)

    def _look(self) -> Pod | None:
        """One poll: the pod if it serves, None if not yet; NotReady if it went down."""
        self.polls += 1
        try:
            pod = self._last = self.get_pod()
        except (RateLimitedError, ServerError, TransportError) as e:
            # Rate limits and RunPod's own failures say nothing about the pod (the client has already
            # retried them): keep polling until the wait's own deadline instead of failing the pod.
            self._unanswered = e
            return None
        self._unanswered = None
        if pod.down:
            raise NotReady(f"pod went to {pod.status} while starting", pod.status)
        if not pod.container_up:
            return None
        self._report_progress()
        self._failing = [p for p in self.probes if not self._probe_ok(pod.id, p)]
        return None if self._failing else pod

    def _probe_ok(self, pod_id: str, probe: Probe) -> bool:
        """One GET through the proxy. Connection errors and 5xx (502 until the port listens,
        524 past the proxy's 100 s) just mean 'not yet'."""
        try:
            r = requests.get(proxy_url(pod_id, probe.port) + probe.path, timeout=10,
                             headers={"User-Agent": USER_AGENT})
            return r.status_code == 200
        except requests.RequestException:
            return False

    def _report_progress(self) -> None:
        """Print the startup script's new `runpod-deploy phase=…` lines (pod logs are best effort)."""
        try:
            lines = self.read_logs()
        except Exception:  # noqa: BLE001 - logs are a progress nicety; never fail a create over them
            return
        for line in lines:
            if "runpod-deploy " in line:
                marker = line[line.index("runpod-deploy "):].strip()
                if marker not in self._seen_phases:
                    self._seen_phases.add(marker)
                    self.say(marker)
