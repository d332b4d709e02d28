"""The fake pod log: what a pod "prints" during a boot, and the SSE wire format.

A boot's lines are scheduled in pod time when the boot begins (system lines, then the phases our
startup script prints, spaced by `log_interval`), and materialised lazily when someone looks
(`PodLog.advance`). Lines already emitted never change, so ids stay stable across reconnects.
After the last phase the pod prints `phase=ready` once its services are ready, or, while the
emulator says they never will be (`set_service(ready=False)`), an error line every
10 x log_interval, like a supervisor restarting a crashing vLLM.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from startup.agent import protocol

PHASES = ("prepare", "install-vllm", "install-webui", "download-model", "start-vllm", "start-webui")
READY_LINE = "runpod-deploy phase=ready"
FAILED_LINE = "runpod-deploy phase=failed"
CRASH_LINE = "vllm exited with code 1, restarting in 5s"
MAX_LINES = 5000  # the API's tail maximum; older lines are dropped


def rfc3339(ts: float) -> str:
    """RFC 3339 with milliseconds and a Z, the spec's timestamp form (e.g. `Pod.createdAt`)."""
    dt = datetime.fromtimestamp(ts, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_rfc3339(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class LogLine:
    seq: int
    ts: float
    source: str  # "container" | "system"
    line: str

    def event_id(self, ids: str = "unique") -> str:
        """`unique`: `<ts>/<seq>`. `second`: the spec's literal reading ("event ids are the event `ts`
        timestamp") at one-second resolution, so lines of the same second share an id."""
        if ids == "second":
            return datetime.fromtimestamp(self.ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{rfc3339(self.ts)}/{self.seq:012d}"

    def as_api(self) -> dict:
        return {"ts": rfc3339(self.ts), "source": self.source, "line": self.line}

    def sse(self, ids: str = "unique") -> bytes:
        return f"id: {self.event_id(ids)}\ndata: {json.dumps(self.as_api())}\n\n".encode()


def parse_event_id(text: str) -> tuple[float | None, int | None]:
    """`<ts>/<seq>` -> (None, seq); a bare timestamp -> (ts, None). Raises ValueError. A resume from
    a one-second id sends every line after the start of that second again (the worst case)."""
    if "/" in text:
        return None, int(text.rsplit("/", 1)[1])
    return parse_rfc3339(text) - 1e-6, None


class PodLog:
    """One pod's log across its boots. Not thread-safe: the world's lock guards it."""

    def __init__(self, interval: float):
        self.interval = interval
        self.lines: list[LogLine] = []
        self._seq = 0
        self._scheduled: list[tuple[float, str, str]] = []  # (due, source, line), sorted by due
        self._tail_at: float | None = None  # when the ready/crash line is next due

    def begin_boot(self, image: str, at: float, container_at: float, ready_at: float, pull: bool,
                   restart: bool = False, startup: dict | None = None, pull_every: float | None = None,
                   boot_id: str | None = None):
        """Schedule a boot's lines. `container_at`: the container starts (end of PROVISIONING).
        `restart`: the old container stops at `at` first. `startup`: World.startup's mode.
        `pull_every`: a system line about the image pull every so many seconds of PROVISIONING.
        The container's first line is the agent's `runpod-deploy boot=<id>` (startup.agent.protocol)."""
        startup = startup or {}
        mode = startup.get("mode", "normal")
        script = [(at, "system", "Stopping container")] if restart else []
        if pull:
            script.append((at, "system", f"Pulling image {image}"))
            k = 1
            while pull_every and at + k * pull_every < container_at:
                script.append((at + k * pull_every, "system", f"{image}: extracting layer {k} (pulling fs layer)"))
                k += 1
        script.append((container_at, "system", "Starting container"))
        script.append((container_at, "container", protocol.boot_line(boot_id or protocol.new_boot_id())))
        t = container_at
        for phase in PHASES:
            t += self.interval
            script.append((t, "container", f"runpod-deploy phase={phase}"))
            if mode == "error" and phase == startup.get("phase", "install-vllm"):
                # The agent's SetupFailed: the error, then phase=failed; the pod idles under /start.sh.
                script.append((t + self.interval, "container", f"runpod-deploy error={startup.get('text', 'failed')}"))
                script.append((t + self.interval, "container", FAILED_LINE))
                self._scheduled, self._tail_at = script, None
                return
            if mode == "hang" and phase == startup.get("phase", "download-model"):
                self._scheduled, self._tail_at = script, None  # silent from here on
                return
            if mode == "slow" and phase == "download-model":
                # A slow volume: one progress line per step for `seconds` (like the agent's
                # download progress every DOWNLOAD_PROGRESS_S, model.py).
                seconds = float(startup.get("seconds", 0))
                step = max(self.interval, min(0.5, seconds / 4 or 0.5))
                n = max(1, int(seconds / step))
                for k in range(1, n + 1):
                    script.append((t + k * step, "container", f"runpod-deploy: download {k * 100 // n}%"))
                t += seconds
        self._scheduled = script
        self._tail_at = max(ready_at, t + self.interval)

    def schedule(self, at: float, source: str, line: str):
        """One more line of this boot, due at `at`; the boot's lines after it are never printed
        (the container died then, e.g. the pod went to ERROR)."""
        self._scheduled = [x for x in self._scheduled if x[0] < at] + [(at, source, line)]
        if self._tail_at is not None and self._tail_at >= at:
            self._tail_at = None

    def note(self, at: float, line: str):
        """A container line printed now (e.g. the idle stop's own line before it stops the pod)."""
        self._append(at, "container", line)

    def end_boot(self, at: float, reason: str = "Stopping container"):
        """The container stops at `at`; the caller has advanced the log to `at` first, so what
        was due by then is printed and the rest of the boot's script never is."""
        self._scheduled, self._tail_at = [], None
        self._append(at, "system", reason)

    def advance(self, now: float, service_ready: bool):
        """Print every line due by `now`. `service_ready`: the pod's services are (now) allowed up."""
        while self._scheduled and self._scheduled[0][0] <= now:
            self._append(*self._scheduled.pop(0))
        if self._scheduled or self._tail_at is None:
            return
        while self._tail_at is not None and self._tail_at <= now:
            if service_ready:
                self._append(self._tail_at, "container", READY_LINE)
                self._tail_at = None
            else:
                self._append(self._tail_at, "container", CRASH_LINE)
                self._tail_at += max(10 * self.interval, 0.1)  # never a zero step

    def _append(self, ts: float, source: str, line: str):
        self._seq += 1
        self.lines.append(LogLine(self._seq, ts, source, line))
        if len(self.lines) > MAX_LINES:
            del self.lines[: len(self.lines) - MAX_LINES]

    def after(self, seq: int, source: str | None = None) -> list[LogLine]:
        return [line for line in self.lines if line.seq > seq and (source is None or line.source == source)]
