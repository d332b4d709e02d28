"""Idle stop: after `minutes` without a request to vLLM the pod stops itself through RunPod's API,
with the identity RunPod injects into every pod (RUNPOD_POD_ID and the pod-scoped RUNPOD_API_KEY).
A stop keeps the volume, so `pulumi up` brings the pod back with a warm start.

    IdleWatcher   reads vLLM's /metrics every `check_s`; after the limit asks the PodStopper, and
                  again every `retry_s` while the pod stays idle and still runs.
    PodStopper    one stop request down a chain of paths: REST v2 podAction, GraphQL podStop, the
                  injected runpodctl (which of them the pod key may use is documented nowhere; a live
                  report saw REST refused and GraphQL work: ../shared/reference/live-behaviour-review-2.md).

Every line goes through `log` whole, built with `protocol`; no key ever appears in one (texts from
outside are scrubbed of it). Standard library only (it runs in the agent's zipapp).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from urllib.parse import quote

from . import protocol

# Cloudflare in front of api.runpod.io refuses urllib's default User-Agent (403 "Error 1010").
USER_AGENT = "runpod-deploy-agent/1 (idle-stop)"
HTTP_TIMEOUT_S = 30.0
RUNPODCTL_TIMEOUT_S = 60.0
DEFAULT_RETRY_S = 300.0  # a refused (or unconfirmed) stop is asked again this often while idle
DEFAULT_API_URL = "https://api.runpod.io/v2"
DEFAULT_GRAPHQL_URL = "https://api.runpod.io/graphql"
# The pod env's knobs (the tests shorten them): name -> default.
SECONDS_ENV = {"IDLE_STOP_MINUTE_S": 60.0, "IDLE_STOP_CHECK_S": 30.0, "IDLE_STOP_RETRY_S": DEFAULT_RETRY_S}

# v2 answers meaning "not with this key here" (401/403 scope, 404 hidden, 410 retired), not "try later".
REFUSED_STATUSES = (401, 403, 404, 410)

# vLLM 0.11 (v1/metrics/loggers.py): a counter with a series per finished_reason (its `_created` twin
# is a birth time, not a count) and two gauges (a long request counts while it runs or queues).
# /metrics is read with the vLLM key: the gate in vLLM's process (startup/children/gate.py) wants it.
FINISHED = "vllm:request_success_total"
BUSY = ("vllm:num_requests_running", "vllm:num_requests_waiting")
_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{.*\})?\s+(\S+)(\s+\S+)?\s*$")

# GraphQL podStop as the legacy runpodctl sends it (runpodctl api/pod.go StopPod @ 2e2df89), and the
# pod's desired status for the check after a stop.
STOP_MUTATION = ("mutation stopPod($podId: String!) { podStop(input: {podId: $podId}) "
                 "{ id desiredStatus } }")
STATUS_QUERY = "query pod($podId: String!) { pod(input: {podId: $podId}) { id desiredStatus } }"
STOPPED_STATUSES = ("EXITED", "TERMINATED", "DEAD")


class MetricsMissing(Exception):
    """vLLM answered /metrics without the series idle stop needs (e.g. `--disable-log-stats`)."""


def parse_metrics(text: str) -> tuple[float, float]:
    """(requests finished, requests running or waiting) from vLLM's Prometheus text; raises
    MetricsMissing naming the absent series, as a count of zero would look idle."""
    finished = busy = 0.0
    seen: set[str] = set()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        name, value = match[1], match[3]
        if name != FINISHED and name not in BUSY:
            continue
        try:
            number = float(value)
        except ValueError:
            continue
        seen.add(name)
        if name == FINISHED:
            finished += number
        else:
            busy += number
    missing = [name for name in (FINISHED, *BUSY) if name not in seen]
    if missing:
        raise MetricsMissing(", ".join(missing))
    return finished, busy


def _opener() -> urllib.request.OpenerDirector:
    # No proxy: vLLM is local, and the pod's env proxies (if any) are not for RunPod's API.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def api_urls(env: Mapping[str, str]) -> dict[str, str]:
    """PodStopper's api_url and graphql_url: RunPod's unless the env points elsewhere (the emulator)."""
    return {"api_url": env.get("IDLE_STOP_API_URL") or DEFAULT_API_URL,
            "graphql_url": env.get("IDLE_STOP_GRAPHQL_URL") or DEFAULT_GRAPHQL_URL}


class PodStopper:
    """Asks RunPod to stop pod `pod_id` with the pod key; `stop()` is True once a path accepted.
      1. REST v2 `POST {api_url}/pods/{id}/action {"action":"stop"}`: 2xx accepted; 401/403/404/410
         go on; anything else (5xx, 409, 429, no answer) ends this attempt (the watcher asks later).
      2. GraphQL `podStop` (200 without `errors`: accepted), key in `Authorization: Bearer` as
         runpod-python sends it (the legacy runpodctl puts it in the query string: into logs).
      3. `runpodctl` if on PATH: the syntax `runpodctl pod --help` accepts first (`pod stop <id>`,
         else legacy `stop pod <id>`), then the other; exit 0 accepted. The key goes in its env.
    """

    def __init__(self, *, pod_id: str, pod_key: str, api_url: str, graphql_url: str,
                 log: Callable[[str], None], runpodctl: str | None = "runpodctl",
                 timeout_s: float = HTTP_TIMEOUT_S) -> None:
        self.pod_id, self._key = pod_id, pod_key
        self.api_url, self.graphql_url = api_url.rstrip("/"), graphql_url
        self.log, self.runpodctl, self.timeout_s = log, runpodctl, timeout_s
        self.outcomes: list[str] = []  # the last stop()'s outcome per path, for the watcher's line
        self.accepted_by: str | None = None

    # ----- the chain -----------------------------------------------------------------------------

    def stop(self) -> bool:
        self.outcomes, self.accepted_by = [], None
        status, detail = self._http("POST", f"{self.api_url}/pods/{quote(self.pod_id, safe='')}/action",
                                    {"action": "stop"})
        if self._done("v2 action", status is not None and 200 <= status < 300, _http_text(status, detail)):
            return True
        if status not in REFUSED_STATUSES:
            self._say("idle stop: other paths not tried: that is no refusal of this key, so the next attempt "
                      "asks the same way")
            return False
        ok, text = self._graphql_stop()
        if self._done("GraphQL podStop", ok, text):
            return True
        ok, text = self._runpodctl_stop()
        return self._done("runpodctl", ok, text)

    def status(self) -> str | None:
        """The pod's status as RunPod shows it (v2 `status`, else GraphQL `desiredStatus`), or None
        when neither answers this key."""
        status, body = self._http("GET", f"{self.api_url}/pods/{quote(self.pod_id, safe='')}")
        if status == 200 and isinstance(body, dict) and isinstance(body.get("status"), str):
            return body["status"]
        status, body = self._http("POST", self.graphql_url, {"query": STATUS_QUERY,
                                                             "variables": {"podId": self.pod_id}})
        if status == 200 and isinstance(body, dict) and not body.get("errors"):
            pod = (body.get("data") or {}).get("pod") or {}
            if isinstance(pod.get("desiredStatus"), str):
                return pod["desiredStatus"]
        return None

    def _done(self, path: str, ok: bool, text: str) -> bool:
        text = self._scrub(text)
        self.outcomes.append(f"{path}: {text}")
        self._say(f"idle stop: {path} {'accepted' if ok else 'refused'} ({text})")
        if ok:
            self.accepted_by = path
        return ok

    # ----- the paths -------------------------------------------------------------------------------

    def _graphql_stop(self) -> tuple[bool, str]:
        status, body = self._http("POST", self.graphql_url, {"query": STOP_MUTATION,
                                                             "variables": {"podId": self.pod_id}})
        if status is None:
            return False, f"no answer: {body}"
        if isinstance(body, dict) and body.get("errors"):
            first = body["errors"][0]
            message = first.get("message") if isinstance(first, dict) else None
            return False, f"HTTP {status}: {message or 'GraphQL error'}"
        if status != 200:
            return False, _http_text(status, body)
        stopped = ((body or {}).get("data") or {}).get("podStop") if isinstance(body, dict) else None
        if not stopped:
            return False, "HTTP 200 without podStop data"
        return True, f"HTTP 200, desiredStatus {stopped.get('desiredStatus', '?')}"

    def _runpodctl_stop(self) -> tuple[bool, str]:
        exe = shutil.which(self.runpodctl) if self.runpodctl else None
        if exe is None:
            return False, "not on PATH"
        # The legacy CLI reads its GraphQL endpoint from RUNPOD_API_URL (runpodctl api/query.go); the
        # agent's own env may hold another value for that name, so set it.
        env = {**os.environ, protocol.RUNPOD_POD_KEY_ENV: self._key, "RUNPOD_API_URL": self.graphql_url}
        new_first = self._run([exe, "pod", "--help"], env)[0] == 0
        syntaxes = (["pod", "stop"], ["stop", "pod"]) if new_first else (["stop", "pod"], ["pod", "stop"])
        tried = []
        for words in syntaxes:
            code, out = self._run([exe, *words, self.pod_id], env)
            said = out if code is None else f"exit {code}" + (f": {out}" if out else "")
            tried.append(f"`runpodctl {' '.join(words)}`: {said}")
            if code == 0:
                return True, tried[-1]
        return False, "; ".join(tried)

    def _run(self, argv: list[str], env: dict) -> tuple[int | None, str]:
        try:
            done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  errors="replace", timeout=RUNPODCTL_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"{type(exc).__name__}: {exc}"
        lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        return done.returncode, " ".join(lines)[-200:]

    def _http(self, method: str, url: str, payload: dict | None = None) -> tuple[int | None, object]:
        """(HTTP status, JSON body or text); (None, reason) when nothing answered."""
        headers = {"Authorization": f"Bearer {self._key}", "User-Agent": USER_AGENT, "Accept": "application/json"}
        data = None
        if payload is not None:
            data = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with _opener().open(request, timeout=self.timeout_s) as response:
                return response.status, _body(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _body(exc.read())
        except (OSError, http.client.HTTPException, ValueError) as exc:  # refused, reset, timeout, DNS, bad URL
            return None, f"{type(exc).__name__}: {exc}"

    def _scrub(self, text: str) -> str:
        text = " ".join(str(text).split())[:300]
        # (a key too short to be real would scrub ordinary words)
        return text.replace(self._key, "<pod key>") if len(self._key or "") >= 6 else text

    def _say(self, text: str) -> None:
        self.log(protocol.detail_line(self._scrub(text)))


def _body(raw: bytes) -> object:
    text = raw.decode(errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _http_text(status: int | None, body: object) -> str:
    if status is None:
        return f"no answer: {body}"
    detail = body
    if isinstance(body, dict):  # problem+json (v2) or a GraphQL envelope
        detail = body.get("detail") or body.get("title") or body.get("message") or ""
        if not detail and body.get("errors"):
            first = body["errors"][0]
            detail = first.get("message", first) if isinstance(first, dict) else first
    detail = " ".join(str(detail).split())[:200]
    return f"HTTP {status}: {detail}" if detail else f"HTTP {status}"


class IdleWatcher:
    """Counts idle time from vLLM's counters (monotonic clock) and stops the pod after the limit.
    The clock starts at vLLM's first answer (never while installing or loading); a finished request
    (the counter moved, down included: a restart) or one running/queued restarts it. /metrics without
    the vllm:* series (`--disable-log-stats`) is unknown, not idle: said once, no clock. After the
    limit: one attempt, then another every `retry_s` while idle, once RunPod does not show it stopped.
    """

    def __init__(self, *, minutes: int, minute_s: float, check_s: float, metrics_url: str,
                 stopper: PodStopper, log: Callable[[str], None], retry_s: float | None = None,
                 metrics_key: str | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if retry_s is None:  # not passed: the pod env's IDLE_STOP_RETRY_S, so tests can shorten it
            retry_s = _seconds(os.environ, "IDLE_STOP_RETRY_S")
        if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes < 1:
            raise ValueError(f"minutes must be a whole number of minutes (1 or more), got {minutes!r}")
        for name, value in (("minute_s", minute_s), ("check_s", check_s), ("retry_s", retry_s)):
            if not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        self.minutes, self.limit_s = minutes, minutes * minute_s
        self.check_s, self.retry_s, self.metrics_url = check_s, retry_s, metrics_url
        self.stopper, self.log, self.clock = stopper, log, clock
        self._headers = {"User-Agent": USER_AGENT}
        if metrics_key:  # sent as `Authorization: Bearer`, never logged
            self._headers["Authorization"] = f"Bearer {metrics_key}"

    def run(self, stop: threading.Event) -> None:
        say = lambda text: self.log(protocol.detail_line(text))  # noqa: E731
        say(f"idle stop: on; the pod stops itself after {self.minutes} min without a request to vLLM")
        idle_since: float | None = None
        last: float | None = None
        missing_told = False
        attempts, next_try = 0, 0.0
        while not stop.wait(self.check_s):
            try:
                finished, busy = self._sample()
            except MetricsMissing as exc:
                idle_since = None
                if not missing_told:
                    missing_told = True
                    say(f"idle stop: not armed: vLLM's /metrics lacks {exc} (are its stats off, e.g. "
                        f"--disable-log-stats in the model's vllmArgs?); the pod will not stop itself")
                continue
            except OSError:
                continue  # not answering: before the first answer the clock waits; after, it runs
            now = self.clock()
            if idle_since is None or finished != last or busy > 0:
                if attempts:
                    say("idle stop: a request came in: the pod keeps serving; the idle clock starts again")
                if missing_told and idle_since is None:
                    say("idle stop: armed: vLLM's request counters are there now")
                    missing_told = False
                idle_since, last, attempts = now, finished, 0
                continue
            if now - idle_since < self.limit_s or now < next_try:
                continue
            if attempts and self._stopped(say):
                stop.wait()  # RunPod stopped the pod; this container goes with it
                return
            attempts += 1
            next_try = now + self.retry_s
            self._attempt(attempts, say)

    def _attempt(self, attempt: int, say: Callable[[str], None]) -> None:
        pod = self.stopper.pod_id
        if attempt == 1:
            say(f"idle stop: no request for {self.minutes} min: stopping pod {pod} through the RunPod API "
                f"(the volume is kept; `pulumi up` starts it again)")
        else:
            say(f"idle stop: still no request: asking RunPod again to stop pod {pod} (attempt {attempt})")
        retry = f"{self.retry_s / 60:g} min" if self.retry_s >= 60 else f"{self.retry_s:g} s"
        if self.stopper.stop():
            say(f"idle stop: RunPod accepted the stop ({self.stopper.accepted_by}); checking again in "
                f"{retry} if the pod still runs")
        else:
            why = "; ".join(self.stopper.outcomes) or "no path tried"
            self.log(protocol.error_line(
                f"idle stop refused ({why}): the pod keeps serving and billing; asking again every {retry} "
                f"while it stays idle (or stop it with `pulumi up` and running: false)"))

    def _stopped(self, say: Callable[[str], None]) -> bool:
        status = self.stopper.status()
        if status in STOPPED_STATUSES:
            say(f"idle stop: RunPod shows the pod {status}")
            return True
        say(f"idle stop: RunPod shows the pod {status or 'in an unknown status (no API answers this key)'}")
        return False

    def _sample(self) -> tuple[float, float]:
        request = urllib.request.Request(self.metrics_url, headers=self._headers)
        try:
            with _opener().open(request, timeout=5) as response:
                text = response.read().decode(errors="replace")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise OSError(str(exc)) from None
        return parse_metrics(text)


def _seconds(env: Mapping[str, str], name: str) -> float:
    raw = env.get(name) or ""
    if not raw:
        return SECONDS_ENV[name]
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", raw) or not float(raw) > 0:
        raise ValueError(f"{name} must be a positive number of seconds (got '{raw}')")
    return float(raw)


def from_env(env: Mapping[str, str], *, metrics_url: str, log: Callable[[str], None]) -> IdleWatcher | None:
    """The watcher the pod env asks for, or None (off; without RunPod's identity an error= line says
    why). ValueError, whose text is the line to print, for a bad setting."""
    minutes = env.get("IDLE_STOP_MINUTES") or ""
    if not minutes:
        return None
    if not re.fullmatch(r"[1-9][0-9]*", minutes):
        raise ValueError("IDLE_STOP_MINUTES must be a whole number of minutes (1 or more), or empty for no "
                         f"idle stop (got '{minutes}')")
    seconds = {name: _seconds(env, name) for name in SECONDS_ENV}
    pod_id, key = env.get(protocol.RUNPOD_POD_ID_ENV), env.get(protocol.RUNPOD_POD_KEY_ENV)
    if not pod_id or not key:
        log(protocol.error_line(f"idle stop is off: {protocol.RUNPOD_POD_ID_ENV} and {protocol.RUNPOD_POD_KEY_ENV}, "
                                "which RunPod sets in every pod, are not both set"))
        return None
    stopper = PodStopper(pod_id=pod_id, pod_key=key, **api_urls(env), log=log)
    return IdleWatcher(minutes=int(minutes), minute_s=seconds["IDLE_STOP_MINUTE_S"],
                       check_s=seconds["IDLE_STOP_CHECK_S"], metrics_url=metrics_url, stopper=stopper, log=log,
                       retry_s=seconds["IDLE_STOP_RETRY_S"], metrics_key=env.get("VLLM_API_KEY"))


def main(argv: list[str] | None = None) -> int:
    """`python3 -m agent.idle [--stop-now]` (the zipapp on PYTHONPATH): the watcher alone from this env;
    `--stop-now` asks RunPod once and says which path accepted (how to learn on a live pod what its
    key may do). Exit 0: accepted or watched until stopped; 1: refused or off; 2: a bad setting."""
    import signal
    import sys

    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["--stop-now"]):
        print("usage: python3 -m agent.idle [--stop-now]", file=sys.stderr)
        return 2
    log = lambda line: print(line, flush=True)  # noqa: E731
    env = dict(os.environ)
    if args == ["--stop-now"]:
        env.setdefault("IDLE_STOP_MINUTES", "1")
    try:
        watcher = from_env(env, metrics_url=f"http://127.0.0.1:{env.get('VLLM_PORT') or protocol.VLLM_PORT}/metrics",
                           log=log)
    except ValueError as exc:
        log(protocol.error_line(str(exc)))
        return 2
    if watcher is None:
        return 1
    if args == ["--stop-now"]:
        return 0 if watcher.stopper.stop() else 1
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    watcher.run(done)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
