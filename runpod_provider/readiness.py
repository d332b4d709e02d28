"""Waiting until a pod really serves.

RunPod v2 reports RUNNING before the container is up (runtime stays null for several polls), so
readiness is layered: RUNNING, then `runtime` present, then each probe answering 200 through the
proxy URL. Status polls back off (capped; `polling.poll_delays`) so a 10-minute cold start costs
under 30 of them; each poll also reads the pod's new log lines.

Two live behaviours shape the wait:
- After a `start` or a PATCH that resets the container, v2 `status` is still the *observed* state:
  the pod can read EXITED, or run the old container (RUNNING, its health answering), for several
  polls (runpod-plugins-official `runpod-migrate/reference/breaking-changes.md` Class 2 §7;
  `runpod-usage/concepts/pod.yaml` `pod.edits-apply-on-restart`). So such a wait starts from a
  `BootMark` and trusts nothing (EXITED is not final, a probe proves nothing) until the pod shows
  a new boot. The proof comes from the pod itself first: the agent prints `runpod-deploy boot=<id>`,
  a fresh random id, as the first line of every container boot (`startup.agent.protocol`); RunPod's
  `status`/`startedAt`/`uptime` (`boot_is_new`), whose behaviour on a reset nobody documents, are the
  second source.
- A first start on a network volume can take an hour (venv installs, weights; tts-webui-docker#11,
  runpod/containers#163). So the wait fails on lack of progress (`stall_s` without a new log line
  or status, RunPod's own `system` lines included: an image pull can hold a pod in PROVISIONING for
  15 min), within an absolute cap `timeout_s`, and at once when the startup says its setup ended
  (`runpod-deploy phase=failed`, after its `runpod-deploy error=` line).

Log event ids are not unique: the spec says they "are the event `ts` timestamp", so two lines of the
same second can share one, and a resume from an id may send that second again. Lines are told apart
by (id, text, occurrence), never by id alone (`log_keys`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import requests

from startup.agent import protocol

from .api_errors import RateLimitedError, RunPodError, ServerError, TransportError
from .client import USER_AGENT
from .polling import poll_delays, poll_until
from .spec import Probe
from .wire import FINAL_STATUSES, PodInfo, PodStatus

# How long a pod may still show the state from before a start/PATCH (EXITED, or the old container)
# before the wait says RunPod did not act on it.
BOOT_GRACE_S = 300.0
BOOTING = (PodStatus.PROVISIONING, PodStatus.STARTING)
LogEvent = tuple  # (event id or None, line)


@dataclass(frozen=True)
class BootMark:
    """The pod just before a start or a container PATCH: what a new boot must differ from."""

    status: str
    started_at: datetime | None
    at: float  # monotonic, taken before the request was sent
    seen_log_ids: frozenset = frozenset()  # log_keys of the lines already there
    last_log_id: str | None = None
    boot_id: str | None = None  # the last `runpod-deploy boot=` id in those lines

    @classmethod
    def before(cls, pod: PodInfo, log_events: list[LogEvent] = (),
               clock: Callable[[], float] = time.monotonic) -> BootMark:
        ids = [i for i, _ in log_events if i]
        boots = [e.value for _, line in log_events if (e := protocol.parse(line)) is not None and e.kind == "boot"]
        return cls(pod.status, pod.startedAt, clock(), frozenset(log_keys(log_events)), ids[-1] if ids else None,
                   boots[-1] if boots else None)


def log_keys(events: list[LogEvent]) -> list[tuple | None]:
    """One key per event: (id, text, how many times that (id, text) came before in `events`), or
    None without an id. The same line sent again (a resume from a one-second id) has the same key;
    two lines sharing an id do not."""
    counts: dict[tuple, int] = {}
    keys: list[tuple | None] = []
    for event_id, line in events:
        if event_id is None:
            keys.append(None)
            continue
        n = counts.get((event_id, line), 0)
        counts[(event_id, line)] = n + 1
        keys.append((event_id, line, n))
    return keys


def boot_is_new(pod: PodInfo, mark: BootMark | None, now: float) -> bool:
    """Proof that `pod` shows a boot begun after `mark` (always true without a mark): it is
    PROVISIONING/STARTING where it was not, or its `startedAt` moved, or the container's
    `runtime.uptime` ("seconds since the container started", spec PodRuntime) is shorter than the
    time since the mark. Only durations are compared: no clock skew between us and RunPod matters.
    The one place that decides "did the start/reset take effect"; the provider's start reuses it."""
    if mark is None:
        return True
    if pod.status in BOOTING and mark.status not in BOOTING:
        return True
    if pod.startedAt is not None and pod.startedAt != mark.started_at:
        return True
    uptime = pod.runtime.uptime if pod.runtime is not None else None
    return uptime is not None and uptime + 1 <= now - mark.at  # uptime is whole seconds, rounded down

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


class ZeroGpus(NotReady):
    """The new boot shows fewer GPUs than asked: a stopped pod started on a host whose GPU was rented
    meanwhile comes up with zero (runpod/docs pods/troubleshooting/zero-gpus.mdx), and vLLM crash-loops."""

    def __init__(self, pod: PodInfo, count: int):
        super().__init__(f"the pod came up with {count} GPUs", pod.status)
        self.pod, self.count = pod, count


def probe_ok(pod_id: str, probe: Probe) -> bool:
    """One GET through the proxy. Connection errors and 5xx (502 until the port listens,
    524 past the proxy's 100 s) just mean 'not yet'."""
    try:
        r = requests.get(proxy_url(pod_id, probe.port) + probe.path, timeout=10,
                         headers={"User-Agent": USER_AGENT})
        return r.status_code == 200
    except requests.RequestException:
        return False


@dataclass
class ReadinessWaiter:
    """Polls one pod until it serves. `get_pod` and `read_logs` are the client's calls; `schedule`
    gives the delays between polls (read when `wait()` starts, so RUNPOD_DEPLOY_POLL_S applies)."""

    get_pod: Callable[[], PodInfo]
    read_logs: Callable[[str | None], list[LogEvent]]  # events after the given id (None: the tail)
    probes: list[Probe]
    timeout_s: float  # absolute cap
    say: Callable[[str], None] = print
    stall_s: float | None = None  # fail after this long without progress (None: only the cap)
    after: BootMark | None = None  # a start/PATCH was sent: wait for a new boot first
    boot_grace_s: float = BOOT_GRACE_S
    gpus: int = 0  # the new boot must show this many GPUs (0: not checked)
    schedule: Callable[[], Iterator[float]] = poll_delays
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    polls: int = 0
    _last: PodInfo | None = None
    _failing: list[Probe] = field(default_factory=list)
    _unanswered: RunPodError | None = None  # the last poll's transient error, if it had one
    _fresh: bool = False
    _seen_ids: set = field(default_factory=set)
    _last_id: str | None = None
    _last_line: str = ""
    _last_error: str = ""
    _failed: str | None = None  # the new boot's startup said it stopped (its error, or "")
    _progress_at: float = 0.0
    _started: float = 0.0
    _last_status: str | None = None

    def wait(self) -> PodInfo:
        self._started = self._progress_at = self.clock()
        self._fresh = self.after is None
        if self.after is not None:
            self._seen_ids, self._last_id = set(self.after.seen_log_ids), self.after.last_log_id
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

    def _look(self) -> PodInfo | None:
        """One poll: the pod if it serves, None if not yet; NotReady if it went down, stalled or
        its startup said it failed."""
        self.polls += 1
        try:
            pod = self._last = self.get_pod()
        except (RateLimitedError, ServerError, TransportError) as e:
            # Rate limits and RunPod's own failures say nothing about the pod (the client has already
            # retried them): keep polling until the wait's own deadline instead of failing the pod.
            if isinstance(e, RateLimitedError) and not isinstance(self._unanswered, RateLimitedError):
                # Said once per run of refusals: the user sees why the wait shows nothing new.
                after = f" (retry after {e.retry_after:.0f}s)" if e.retry_after is not None else ""
                self.say(f"RunPod's rate limit (per account, every call counts) refused a status read{after}: "
                         "still waiting")
            self._unanswered = e
            return None
        self._unanswered = None
        now = self.clock()
        if pod.status != self._last_status:
            self._last_status, self._progress_at = pod.status, now
        # The pod's own log first (any line is progress; a new boot id is the proof of a new boot),
        # RunPod's fields second. System lines count too: an image pull holds PROVISIONING for long.
        self._read_progress()
        if not self._fresh:
            self._fresh = boot_is_new(pod, self.after, now)
        if not self._fresh:
            # Still the state from before the start/PATCH: EXITED is not final, a probe would reach
            # the old container. ERROR/TERMINATED are final all the same.
            if pod.status in FINAL_STATUSES:
                raise NotReady(f"pod went to {pod.status}", pod.status)
            if now - self._started > self.boot_grace_s:
                raise NotReady(f"RunPod still shows the pod {pod.status} as before, {now - self._started:.0f}s "
                               "after the start/update: it did not restart", pod.status)
            return None
        if self._failed is not None:
            raise NotReady("the startup script stopped: " + (self._failed or "see the log lines"), pod.status)
        if pod.down:
            last = f" (last line: {self._last_line!r})" if self._last_line else ""
            raise NotReady(f"pod went to {pod.status} while starting{last}", pod.status)
        if self.gpus and pod.gpu is not None and pod.gpu.count is not None and pod.gpu.count < self.gpus:
            raise ZeroGpus(pod, pod.gpu.count)
        if self.stall_s is not None and now - self._progress_at > self.stall_s:
            last = f" (last line: {self._last_line!r})" if self._last_line else ""
            raise NotReady(f"no progress for {now - self._progress_at:.0f}s: no new log line or status{last}",
                           pod.status)
        if not pod.container_up:
            return None
        self._failing = [p for p in self.probes if not self._probe_ok(pod.id, p)]
        return None if self._failing else pod

    def _probe_ok(self, pod_id: str, probe: Probe) -> bool:
        return probe_ok(pod_id, probe)

    def _read_progress(self) -> None:
        """Read the log lines new since the last look: any counts as progress; a boot id other than
        the mark's proves the new boot; the new boot's phase and error lines are printed, and its
        `phase=failed` ends the wait (`_failed`). Lines of the old container, before the proof, are
        progress only. Logs are best effort: a failed read is no progress, never an error."""
        try:
            events = self.read_logs(self._last_id)
        except Exception:  # noqa: BLE001 - a progress nicety; never fail a create over it
            return
        for (event_id, line), key in zip(events, log_keys(events), strict=True):
            if key is not None:
                if key in self._seen_ids:
                    continue
                self._seen_ids.add(key)
                self._last_id = event_id
            self._progress_at, self._last_line = self.clock(), line
            event = protocol.parse(line)
            if event is None:
                continue
            # Proof only against a known earlier id (the mark's log read may have come back empty, and
            # then an old boot line would look new), and not while RunPod shows the pod down.
            if (event.kind == "boot" and self.after is not None and self.after.boot_id is not None
                    and event.value != self.after.boot_id and not (self._last and self._last.down)):
                self._fresh = True
            if not self._fresh:
                continue
            if event.kind in ("phase", "error"):
                self.say(line[line.index(protocol.PREFIX):].strip())
            if event.kind == "error":
                self._last_error = event.value
            if event.kind == "phase" and event.value == protocol.FAILED:
                self._failed = self._last_error
