"""startup/agent/idle.py: the idle watcher and the stop chain (v2 action, GraphQL podStop, runpodctl),
against a tiny local HTTP server playing vLLM's /metrics, RunPod's v2 API and its GraphQL API, and a
fake runpodctl. Minutes are shortened to fractions of a second."""

from __future__ import annotations

import json
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from startup.agent import idle, protocol

POD = "pod7k2m4n6p"
KEY = "rpa_pod_SECRET_c0ffee42"
VLLM_KEY = "vk-metrics-SECRET-5e1d"  # the gate in vLLM's process wants it on /metrics


class FakeRunPod:
    """/metrics, /v2/pods/{id}[/action] and /graphql on 127.0.0.1; each answer is a setting, and every
    request is recorded. Refusals echo the key they got, so a test sees whether the agent scrubs it."""

    def __init__(self):
        self.metrics: str | None = metrics_text(0)  # None: 404 (no such page)
        self.v2_action = (403, {"title": "Forbidden", "status": 403, "detail": f"key {KEY} may not"})
        self.v2_status = "RUNNING"  # GET /v2/pods/{id}; refused (403) when v2_action is a refusal
        self.graphql_stop = "ok"  # "ok" | "error" (200 with errors) | an HTTP status (int)
        self.graphql_status = "RUNNING"
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                fake.serve(self, "GET")

            def do_POST(self):
                fake.serve(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def calls(self, kind: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["kind"] == kind]

    def serve(self, h: BaseHTTPRequestHandler, method: str):
        url = urlsplit(h.path)
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        payload = json.loads(body) if body else None
        kind = ("metrics" if url.path == "/metrics" else "graphql" if url.path == "/graphql"
                else "v2 action" if url.path.endswith("/action") else "v2 get")
        if kind == "graphql" and "podStop" not in payload["query"]:
            kind = "graphql pod"
        with self.lock:
            self.requests.append({"kind": kind, "method": method, "path": h.path, "query": parse_qs(url.query),
                                  "headers": dict(h.headers), "body": payload})
        if kind == "metrics" and h.headers.get("Authorization") != f"Bearer {VLLM_KEY}":
            status, answer = 401, "no key"  # as the gate in vLLM's process answers
        else:
            status, answer = self.answer(kind, payload)
        data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
        h.send_response(status)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def answer(self, kind, payload):
        if kind == "metrics":
            return (404, "no") if self.metrics is None else (200, self.metrics)
        if kind == "v2 action":
            status, body = self.v2_action
            return status, body if status >= 300 else {"id": POD, "status": "EXITED"}
        if kind == "v2 get":
            return (403, {"detail": "access denied"}) if self.v2_action[0] >= 300 else (200, {"status": self.v2_status})
        if kind == "graphql pod":
            return 200, {"data": {"pod": {"id": POD, "desiredStatus": self.graphql_status}}}
        if isinstance(self.graphql_stop, int):
            return self.graphql_stop, {"errors": [{"message": f"Unauthorized {KEY}"}]}
        if self.graphql_stop == "error":
            return 200, {"data": {"podStop": None}, "errors": [{"message": f"denied for key {KEY}"}]}
        self.graphql_status = "EXITED"
        return 200, {"data": {"podStop": {"id": payload["variables"]["podId"], "desiredStatus": "EXITED"}}}


def metrics_text(finished: int, running: int = 0, waiting: int = 0) -> str:
    """vLLM 0.11's families the watcher reads, two finished_reason series, and the _created twins."""
    labels = 'engine="0",model_name="olmocr"'
    return "\n".join([
        "# TYPE vllm:num_requests_running gauge",
        f"vllm:num_requests_running{{{labels}}} {running}.0",
        f"vllm:num_requests_waiting{{{labels}}} {waiting}.0",
        "# TYPE vllm:request_success_total counter",
        f'vllm:request_success_total{{{labels},finished_reason="stop"}} {finished}.0',
        f'vllm:request_success_total{{{labels},finished_reason="length"}} 0.0',
        f'vllm:request_success_created{{{labels},finished_reason="stop"}} 1.7645e+09',
        "",
    ])


@pytest.fixture
def fake():
    server = FakeRunPod()
    yield server
    server.close()


class Log(list):
    def __call__(self, line: str):
        assert "\n" not in line
        self.append(line)

    def text(self) -> str:
        return "\n".join(self)


def runpodctl(tmp_path, *, syntax: str, exit_code: int = 0, talk: str = "") -> str:
    """A fake runpodctl: `new` knows `pod --help` and `pod stop <id>`, `legacy` only `stop pod <id>`.
    Records argv and whether the key reached it through its env."""
    script = tmp_path / f"runpodctl-{syntax}"
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import json, os, sys
        with open({str(tmp_path / "runpodctl.calls")!r}, "a") as f:
            f.write(json.dumps({{"argv": sys.argv[1:], "key": os.environ.get("RUNPOD_API_KEY"),
                                "url": os.environ.get("RUNPOD_API_URL")}}) + "\\n")
        args = sys.argv[1:]
        known = {{"new": (["pod", "--help"], ["pod", "stop"]), "legacy": (["stop", "pod"],)}}[{syntax!r}]
        if not any(args[:len(k)] == k for k in known):
            print("Error: unknown command", args[0], file=sys.stderr)
            sys.exit(1)
        if args[-1] != "--help":
            print({talk!r} or 'pod "%s" stopped' % args[-1])
        sys.exit({exit_code} if args[-1] != "--help" else 0)
        """))
    script.chmod(0o755)
    return str(script)


def ctl_calls(tmp_path) -> list[dict]:
    path = tmp_path / "runpodctl.calls"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def stopper(fake, log, ctl="runpodctl-not-installed-here", **kw) -> idle.PodStopper:
    return idle.PodStopper(pod_id=POD, pod_key=KEY, api_url=fake.base + "/v2", graphql_url=fake.base + "/graphql",
                           log=log, runpodctl=ctl, **kw)


# --- metrics -------------------------------------------------------------------------------------

def test_metrics_sum_every_finished_series_and_skip_the_created_twins():
    assert idle.parse_metrics(metrics_text(7, running=1, waiting=2).replace(" 0.0\n", " 3.0\n", 1)) == (10.0, 3.0)
    assert idle.parse_metrics(metrics_text(4)) == (4.0, 0.0)


@pytest.mark.parametrize("text", ["", "# HELP nothing\n", "python_gc_objects_collected_total 12.0\n",
                                  'vllm:request_success_total{a="b"} 4.0\n'])
def test_metrics_without_vllms_series_are_unknown_not_zero(text):
    with pytest.raises(idle.MetricsMissing):
        idle.parse_metrics(text)


# --- the stop chain --------------------------------------------------------------------------------

def test_v2_accepting_ends_the_chain(fake):
    fake.v2_action = (200, None)
    log = Log()
    s = stopper(fake, log)
    assert s.stop() is True and s.accepted_by == "v2 action"
    (call,) = fake.calls("v2 action")
    assert call["path"] == f"/v2/pods/{POD}/action" and call["body"] == {"action": "stop"}
    assert call["headers"]["Authorization"] == f"Bearer {KEY}"
    assert call["headers"]["User-Agent"] == idle.USER_AGENT
    assert fake.calls("graphql") == []
    assert log == ["runpod-deploy: idle stop: v2 action accepted (HTTP 200)"]


@pytest.mark.parametrize("status", [401, 403, 404, 410])
def test_a_v2_refusal_of_the_key_goes_on_to_graphql_podstop_with_the_same_key(fake, status):
    fake.v2_action = (status, {"detail": "nope"})
    log = Log()
    s = stopper(fake, log)
    assert s.stop() is True and s.accepted_by == "GraphQL podStop"
    (call,) = fake.calls("graphql")
    assert call["path"] == "/graphql" and call["query"] == {}  # the key is never in the URL
    assert call["headers"]["Authorization"] == f"Bearer {KEY}"
    assert call["headers"]["User-Agent"] == idle.USER_AGENT
    assert "podStop(input: {podId: $podId})" in call["body"]["query"]
    assert call["body"]["variables"] == {"podId": POD}
    assert [line.split(" (")[0] for line in log] == ["runpod-deploy: idle stop: v2 action refused",
                                                     "runpod-deploy: idle stop: GraphQL podStop accepted"]
    assert f"HTTP {status}: nope" in log[0]


@pytest.mark.parametrize("status", [409, 429, 500, 503])
def test_a_v2_answer_that_is_not_a_key_refusal_ends_this_attempt(fake, status):
    fake.v2_action = (status, {"detail": "later"})
    s = stopper(fake, Log())
    assert s.stop() is False
    assert fake.calls("graphql") == [] and s.outcomes == [f"v2 action: HTTP {status}: later"]


def test_no_answer_from_v2_ends_this_attempt_too(fake):
    s = idle.PodStopper(pod_id=POD, pod_key=KEY, api_url="http://127.0.0.1:9/v2", graphql_url=fake.base + "/graphql",
                        log=Log(), runpodctl=None, timeout_s=2)
    assert s.stop() is False and s.outcomes[0].startswith("v2 action: no answer: ")
    assert fake.calls("graphql") == []


@pytest.mark.parametrize("graphql", ["error", 401, 403, 404, 410, 500])
def test_graphql_refused_goes_on_to_the_new_runpodctl_with_the_key_in_its_env(fake, tmp_path, graphql):
    fake.graphql_stop = graphql
    log = Log()
    s = stopper(fake, log, runpodctl(tmp_path, syntax="new"))
    assert s.stop() is True and s.accepted_by == "runpodctl"
    calls = ctl_calls(tmp_path)
    assert [c["argv"] for c in calls] == [["pod", "--help"], ["pod", "stop", POD]]
    assert all(c["key"] == KEY and KEY not in " ".join(c["argv"]) for c in calls)
    assert calls[-1]["url"] == fake.base + "/graphql"  # the legacy CLI's GraphQL endpoint variable
    assert log[-1] == ("runpod-deploy: idle stop: runpodctl accepted "
                       f'(`runpodctl pod stop`: exit 0: pod "{POD}" stopped)')


def test_the_legacy_runpodctl_syntax_is_used_when_the_new_one_is_unknown(fake, tmp_path):
    fake.graphql_stop = "error"
    s = stopper(fake, Log(), runpodctl(tmp_path, syntax="legacy"))
    assert s.stop() is True
    assert [c["argv"] for c in ctl_calls(tmp_path)] == [["pod", "--help"], ["stop", "pod", POD]]


def test_every_path_refused_is_false_with_each_paths_reason(fake, tmp_path):
    fake.graphql_stop = "error"
    log = Log()
    s = stopper(fake, log, runpodctl(tmp_path, syntax="new", exit_code=1, talk="Error: forbidden"))
    assert s.stop() is False and s.accepted_by is None
    assert [o.split(":")[0] for o in s.outcomes] == ["v2 action", "GraphQL podStop", "runpodctl"]
    assert "`runpodctl pod stop`: exit 1: Error: forbidden" in s.outcomes[2]
    assert "`runpodctl stop pod`: exit 1: Error: unknown command stop" in s.outcomes[2]
    assert [c["argv"][:2] for c in ctl_calls(tmp_path)] == [["pod", "--help"], ["pod", "stop"], ["stop", "pod"]]


def test_without_runpodctl_the_chain_ends_after_graphql(fake):
    fake.graphql_stop = 403
    s = stopper(fake, Log())
    assert s.stop() is False and s.outcomes[-1] == "runpodctl: not on PATH"


def test_the_key_never_reaches_the_log_even_when_an_answer_echoes_it(fake, tmp_path):
    fake.graphql_stop = "error"
    log = Log()
    s = stopper(fake, log, runpodctl(tmp_path, syntax="new", exit_code=1, talk=f"bad key {KEY}"))
    assert s.stop() is False
    assert KEY not in log.text() and KEY not in " ".join(s.outcomes)
    assert "<pod key>" in log.text()  # the echoes were there, scrubbed


def test_status_asks_v2_then_graphql(fake):
    s = stopper(fake, Log())
    assert s.status() == "RUNNING"
    assert [c["kind"] for c in fake.requests] == ["v2 get", "graphql pod"]
    fake.v2_action, fake.v2_status = (200, None), "EXITED"
    assert s.status() == "EXITED" and fake.requests[-1]["kind"] == "v2 get"


# --- the watcher -----------------------------------------------------------------------------------

MINUTE_S, CHECK_S = 0.2, 0.02


class Watching:
    def __init__(self, fake, log, s, minutes=2, retry_s=0.6):
        self.log, self.stop_event = log, threading.Event()
        self.watcher = idle.IdleWatcher(minutes=minutes, minute_s=MINUTE_S, check_s=CHECK_S,
                                        metrics_url=fake.base + "/metrics", stopper=s, log=log, retry_s=retry_s,
                                        metrics_key=VLLM_KEY)
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self.watcher.run, args=(self.stop_event,), daemon=True)
        self.thread.start()

    def wait_for(self, text: str, timeout: float = 5.0, count: int = 1) -> float:
        """Seconds since start when the `count`th line containing `text` appeared."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(text in line for line in list(self.log)) >= count:
                return time.monotonic() - self.started
            time.sleep(0.01)
        raise AssertionError(f"no line with {text!r} in:\n{self.log.text()}")

    def close(self):
        self.stop_event.set()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()


@pytest.fixture
def watch(fake):
    runs = []

    def start(s=None, **kw):
        log = Log()
        runs.append(Watching(fake, log, s or stopper(fake, log), **kw))
        return runs[-1]

    yield start
    for run in runs:
        run.close()


def test_an_idle_pod_stops_after_the_limit_once_and_confirms(fake, watch):
    w = watch()
    assert w.log[0] == "runpod-deploy: idle stop: on; the pod stops itself after 2 min without a request to vLLM"
    at = w.wait_for("idle stop: no request for 2 min: stopping pod " + POD)
    assert at >= 2 * MINUTE_S
    w.wait_for("idle stop: RunPod accepted the stop (GraphQL podStop)")
    w.wait_for("idle stop: RunPod shows the pod EXITED")  # checked before asking again
    time.sleep(1.0)
    assert len(fake.calls("graphql")) == 1 and len(fake.calls("v2 action")) == 1
    assert {c["headers"].get("Authorization") for c in fake.calls("metrics")} == {f"Bearer {VLLM_KEY}"}
    assert KEY not in w.log.text() and VLLM_KEY not in w.log.text()
    assert all(protocol.parse(line) is not None for line in w.log)


def test_a_busy_pod_never_stops(fake, watch):
    w = watch(minutes=5)  # 1 s: a scheduling hiccup on a busy machine must not look idle
    for finished in range(1, 21):  # a request finishing every 0.1 s: two limits
        fake.metrics = metrics_text(finished)
        time.sleep(0.1)
    fake.metrics = metrics_text(20, running=1)  # one long request
    time.sleep(1.3)
    fake.metrics = metrics_text(20, waiting=3)  # queued ones
    time.sleep(1.3)
    assert fake.calls("v2 action") == [] and "no request" not in w.log.text()
    fake.metrics = metrics_text(21)  # the last one ended: idle from now on
    w.wait_for("RunPod accepted the stop")


def test_missing_vllm_metrics_never_arm_and_say_why_once(fake, watch):
    fake.metrics = "python_gc_objects_collected_total 12.0\n"  # vLLM with --disable-log-stats
    w = watch()
    w.wait_for("idle stop: not armed: vLLM's /metrics lacks vllm:request_success_total")
    time.sleep(1.2)  # three limits
    assert fake.calls("v2 action") == [] and fake.calls("graphql") == []
    assert sum("not armed" in line for line in w.log) == 1
    assert "--disable-log-stats" in w.log[1]


def test_the_clock_waits_for_vllms_first_answer(fake, watch):
    fake.metrics = None
    w = watch()
    time.sleep(1.0)  # 2.5 limits while vLLM loads
    assert fake.calls("v2 action") == []
    fake.metrics = metrics_text(0)
    served = time.monotonic() - w.started
    assert w.wait_for("no request for 2 min") - served >= 2 * MINUTE_S


def test_a_refused_stop_is_logged_the_pod_keeps_serving_and_it_asks_again_while_idle(fake, watch):
    fake.graphql_stop = "error"
    w = watch(retry_s=0.6)
    first = w.wait_for("runpod-deploy error=idle stop refused (v2 action: HTTP 403: key <pod key> may not; "
                       "GraphQL podStop: HTTP 200: denied for key <pod key>; runpodctl: not on PATH): the pod keeps "
                       "serving and billing; asking again every 0.6 s while it stays idle")
    assert len(fake.calls("graphql")) == 1
    second = w.wait_for("asking RunPod again to stop pod " + POD + " (attempt 2)")
    assert second - first >= 0.6 - CHECK_S
    assert any("idle stop: RunPod shows the pod RUNNING" in line for line in w.log)  # checked first
    fake.graphql_stop = "ok"  # e.g. RunPod's GraphQL recovered
    w.wait_for("RunPod accepted the stop (GraphQL podStop)", timeout=3)
    assert KEY not in w.log.text()
    assert not w.stop_event.is_set() and w.thread.is_alive()  # the watcher never ends the agent


def test_a_request_after_a_refusal_starts_the_clock_again(fake, watch):
    fake.graphql_stop = "error"
    w = watch(minutes=5, retry_s=0.3)
    w.wait_for("error=idle stop refused")
    fake.metrics = metrics_text(1)
    w.wait_for("idle stop: a request came in: the pod keeps serving")
    calls = len(fake.calls("graphql"))
    time.sleep(0.5)  # half the limit (1 s) after the request: well past retry_s
    assert len(fake.calls("graphql")) == calls
    w.wait_for("still no request: asking RunPod again")


def test_an_accepted_stop_that_did_not_happen_is_asked_again(fake, watch):
    fake.v2_action = (200, None)  # accepted, yet the pod still runs
    w = watch(retry_s=0.3)
    w.wait_for("RunPod accepted the stop (v2 action)")
    w.wait_for("idle stop: RunPod shows the pod RUNNING")
    w.wait_for("(attempt 2)")
    w.wait_for("RunPod accepted the stop (v2 action)", count=2)  # asked, not only announced
    assert len(fake.calls("v2 action")) >= 2


@pytest.mark.parametrize("kw", [dict(minutes=0), dict(minutes=1.5), dict(minutes=True), dict(minute_s=0),
                                dict(check_s=-1), dict(retry_s=0)])
def test_bad_settings_raise_with_the_rule(fake, kw):
    args = {**dict(minutes=1, minute_s=60.0, check_s=5.0, metrics_url=fake.base + "/metrics",
                   stopper=stopper(fake, Log()), log=Log()), **kw}
    with pytest.raises(ValueError, match="must be"):
        idle.IdleWatcher(**args)


# --- from the pod env ------------------------------------------------------------------------------

IDENTITY = {"RUNPOD_POD_ID": POD, "RUNPOD_API_KEY": KEY}


def test_from_env_off_unless_configured_and_off_saying_why_without_the_identity():
    log = Log()
    assert idle.from_env({**IDENTITY}, metrics_url="http://127.0.0.1:9/metrics", log=log) is None and log == []
    assert idle.from_env({"IDLE_STOP_MINUTES": "30", "RUNPOD_POD_ID": POD}, metrics_url="x", log=log) is None
    assert log == ["runpod-deploy error=idle stop is off: RUNPOD_POD_ID and RUNPOD_API_KEY, which RunPod sets in "
                   "every pod, are not both set"]


def test_from_env_reads_every_knob(monkeypatch):
    monkeypatch.delenv("IDLE_STOP_RETRY_S", raising=False)
    w = idle.from_env({**IDENTITY, "IDLE_STOP_MINUTES": "30", "VLLM_API_KEY": VLLM_KEY},
                      metrics_url="http://127.0.0.1:9/metrics", log=Log())
    assert w._headers["Authorization"] == f"Bearer {VLLM_KEY}"  # `python3 -m agent.idle` reads /metrics too
    assert (w.limit_s, w.check_s, w.retry_s) == (1800.0, 30.0, 300.0)
    assert (w.stopper.api_url, w.stopper.graphql_url) == (idle.DEFAULT_API_URL, idle.DEFAULT_GRAPHQL_URL)
    env = {**IDENTITY, "IDLE_STOP_MINUTES": "2", "IDLE_STOP_MINUTE_S": "0.5", "IDLE_STOP_CHECK_S": "0.1",
           "IDLE_STOP_RETRY_S": "7", "IDLE_STOP_API_URL": "http://a/v2", "IDLE_STOP_GRAPHQL_URL": "http://a/graphql"}
    w = idle.from_env(env, metrics_url="http://127.0.0.1:9/metrics", log=Log())
    assert (w.limit_s, w.check_s, w.retry_s, w.stopper.pod_id) == (1.0, 0.1, 7.0, POD)
    assert (w.stopper.api_url, w.stopper.graphql_url) == ("http://a/v2", "http://a/graphql")
    monkeypatch.setenv("IDLE_STOP_RETRY_S", "4")  # a watcher built without retry_s takes it from the env
    assert idle.IdleWatcher(minutes=1, minute_s=1, check_s=1, metrics_url="x", stopper=w.stopper,
                            log=Log()).retry_s == 4.0


@pytest.mark.parametrize("value", ["0", "ten", "1.5", "-3"])
def test_from_env_refuses_a_bad_minutes_value_with_the_fix(value):
    with pytest.raises(ValueError) as exc:
        idle.from_env({**IDENTITY, "IDLE_STOP_MINUTES": value}, metrics_url="x", log=Log())
    assert str(exc.value) == (f"IDLE_STOP_MINUTES must be a whole number of minutes (1 or more), or empty for "
                              f"no idle stop (got '{value}')")


def test_from_env_refuses_bad_seconds():
    with pytest.raises(ValueError, match=r"IDLE_STOP_CHECK_S must be a positive number of seconds \(got 'soon'\)"):
        idle.from_env({**IDENTITY, "IDLE_STOP_MINUTES": "1", "IDLE_STOP_CHECK_S": "soon"}, metrics_url="x", log=Log())
