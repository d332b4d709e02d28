"""The gate (startup/children/gate.py) in front of the REAL vLLM 0.11.2 OpenAI app: the route matrix.

vLLM's own app (build_app from vLLM's own argument parser, `--middleware gate.Gate`, vLLM's own key
check from VLLM_API_KEY) runs on CPU in the venv the lock installs (tests/startup_real/vllm_gate_app.py
stands in only for the engine's serving objects). A second copy runs without the gate: what the
pod exposed before, the baseline every "the gate refuses" assertion is contrasted with, so a test
that passed because the app itself refused would show.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from devkit.locked_venvs import locked_venv
from devkit.startup import free_port

pytestmark = pytest.mark.timeout(1800)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
KEY = "vk-SECRET-1f3a$9'q\"x"  # the tier's key: quotes and a dollar, as the stack's generated keys may not
CHAT = {"model": "olmocr", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
COMPLETION = {"model": "olmocr", "prompt": "hi", "max_tokens": 8}
ALLOWED = {("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("POST", "/v1/completions"), ("GET", "/metrics")}
OPEN = {("GET", "/health")}
UP_S = 600  # importing vLLM on two shared cores


class App:
    def __init__(self, venv: Path, tmp: Path, *, gate: bool):
        self.port = free_port()
        self.record = tmp / f"record-{self.port}.jsonl"
        self.record.touch()
        gate_dir = tmp / "gate-pythonpath"  # as the agent does: gate.py written into a dir on vLLM's PYTHONPATH
        gate_dir.mkdir(exist_ok=True)
        shutil.copy(REPO / "startup" / "children" / "gate.py", gate_dir / "gate.py")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GATE_", "VLLM_"))}
        env.update(VLLM_API_KEY=KEY, PYTHONPATH=str(gate_dir), GATE_APP_RECORD=str(self.record),
                   VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
        self.log = tmp / f"app-{self.port}.log"
        argv = [str(venv / "bin" / "python"), str(HERE / "vllm_gate_app.py"), str(self.port)]
        self.proc = subprocess.Popen(["nice", *argv] + ([] if gate else ["--no-gate"]), env=env,
                                     stdout=subprocess.PIPE, stderr=open(self.log, "w"), text=True)
        self.info = self._wait_routes()
        self._wait_health()

    def _wait_routes(self) -> dict:
        deadline = time.monotonic() + UP_S
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("ROUTES "):
                return json.loads(line[len("ROUTES "):])
            if not line and self.proc.poll() is not None:
                break
        raise AssertionError(f"vLLM's app did not build: {self.log.read_text()[-3000:]}")

    def _wait_health(self) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"/health did not answer: {self.log.read_text()[-3000:]}")

    def request(self, method: str, path: str, *, key: str | None = None, body: dict | None = None,
                host: str | None = None, headers: dict | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", host or f"127.0.0.1:{self.port}")
            data = b"" if body is None else json.dumps(body).encode()
            if body is not None:
                conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(len(data)))
            if key is not None:
                conn.putheader("Authorization", f"Bearer {key}")
            for k, v in (headers or {}).items():
                conn.putheader(k, v)
            conn.endheaders(data)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def stream(self, path: str, body: dict) -> tuple[int, list[tuple[float, bytes]]]:
        """The response body as it arrived: (seconds since the request, bytes) per read."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            t0 = time.monotonic()
            conn.request("POST", path, body=json.dumps(body),
                         headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
            resp = conn.getresponse()
            chunks = []
            while chunk := resp.read1(65536):
                chunks.append((time.monotonic() - t0, chunk))
            return resp.status, chunks
        finally:
            conn.close()

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def apps(tmp_path_factory):
    venv = locked_venv("vllm", "0.11.2")
    tmp = tmp_path_factory.mktemp("gate")
    gated = App(venv, tmp, gate=True)
    try:
        bare = App(venv, tmp, gate=False)
    except BaseException:
        gated.stop()
        raise
    yield gated, bare
    gated.stop()
    bare.stop()


def concrete(path: str) -> str:
    return path.replace("{response_id}", "resp_1")


def body_for(path: str) -> dict:
    if path in ("/v1/chat/completions", "/invocations", "/v1/messages"):
        return CHAT
    return COMPLETION if "completion" in path or "generate" in path else {"model": "olmocr", "input": "hi"}


def every_route(app: App) -> list[tuple[str, str]]:
    out = set()
    for r in app.info["routes"]:
        for method in r["methods"] or ["GET"]:
            if method != "HEAD":
                out.add((method, concrete(r["path"])))
    return sorted(out, key=lambda mp: (mp[1], mp[0]))


def test_the_gate_is_vllms_outermost_middleware(apps):
    gated, bare = apps
    assert gated.info["middleware"][0] == "Gate", gated.info["middleware"]
    assert "Gate" not in bare.info["middleware"]
    assert "AuthenticationMiddleware" in gated.info["middleware"]  # vLLM's own /v1 check is still there, inside


def test_route_matrix_only_health_without_key_and_only_the_allowed_routes_with_it(apps):
    gated, bare = apps
    routes = every_route(gated)
    paths = {p for _, p in routes}
    # the routes the review names are really in vLLM 0.11.2's app: the matrix covers them
    assert {"/invocations", "/tokenize", "/detokenize", "/inference/v1/generate", "/scale_elastic_ep", "/metrics",
            "/ping", "/load", "/version"} <= paths, sorted(paths)
    rows, wrong = [], []
    for method, path in routes:
        body = body_for(path) if method == "POST" else None
        got = {who: gated.request(method, path, key=key, body=body)[0]
               for who, key in (("none", None), ("wrong", KEY + "x"), ("key", KEY))}
        before = {who: bare.request(method, path, key=key, body=body)[0] for who, key in (("none", None),)}
        if (method, path) in OPEN:
            want = {"none": 200, "wrong": 200, "key": 200}
        elif (method, path) in ALLOWED:
            want = {"none": 401, "wrong": 401, "key": 200}
        else:
            want = {"none": 401, "wrong": 401, "key": 404}
        rows.append(f"{method:4} {path:40} gate: no key {got['none']}, wrong key {got['wrong']}, key {got['key']}"
                    f"   | without the gate, no key: {before['none']}")
        if got != want:
            wrong.append(f"{method} {path}: got {got}, want {want}")
    print("\nroute matrix (vLLM 0.11.2 app):\n" + "\n".join(rows))
    assert not wrong, "\n".join(wrong)
    # The baseline: without the gate, inference ran with no key at all (the hole the gate closes).
    assert bare.request("POST", "/invocations", body=CHAT)[0] == 200
    assert bare.request("GET", "/metrics")[0] == 200


@pytest.mark.parametrize("path", [
    "//invocations", "/v1/../invocations", "/v1/models/../../invocations", "/%2Fv1%2Fmodels", "/v1%2Fmodels",
    "/%76%31/models", "/V1/models", "/v1/models/", "/v1//models", "/v1/models/.", "/v1/models%00",
    "/v1/models;x", "/health/../invocations", "/health%2F..%2Finvocations", "/./v1/models", "/v1/models\\",
])
def test_path_tricks_never_reach_a_route(apps, path):
    gated, _ = apps
    assert gated.request("GET", path)[0] == 401
    assert gated.request("GET", path, key=KEY)[0] == 404
    assert gated.request("POST", path, key=KEY, body=CHAT)[0] == 404


@pytest.mark.parametrize("host", ["x/health?", "127.0.0.1:8000/health#", "evil.example/v1/models?", "", "a b"])
def test_a_forged_host_header_changes_nothing(apps, host):
    gated, _ = apps
    for path in ("/invocations", "/v1/models", "/tokenize", "/metrics"):
        assert gated.request("GET" if path != "/invocations" else "POST", path, host=host,
                             body=CHAT if path == "/invocations" else None)[0] in (400, 401), (host, path)
    assert gated.request("GET", "/v1/models", key=KEY, host=host)[0] in (200, 400)


def test_a_media_url_at_loopback_is_refused_before_vllm_sees_it(apps):
    gated, bare = apps
    url = f"http://127.0.0.1:{gated.port}/health"
    body = {"model": "olmocr", "max_tokens": 8, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": url}}]}]}
    before = len(gated.records())
    status, text = gated.request("POST", "/v1/chat/completions", key=KEY, body=body)
    assert status == 400 and b"data: URL" in text, text
    assert len(gated.records()) == before, "the request reached vLLM"
    video = {**body, "messages": [{"role": "user", "content": [
        {"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AAAA"}}]}]}
    assert gated.request("POST", "/v1/chat/completions", key=KEY, body=video)[0] == 400
    # Without the gate vLLM takes it (the stand-in records what the real handler would fetch).
    assert bare.request("POST", "/v1/chat/completions", key=KEY, body=body)[0] == 200
    assert any(url in json.dumps(r) for r in bare.records())
    # A data: URL passes, unchanged.
    png = "data:image/png;base64,iVBORw0KGgo="
    ok = {**body, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": png}}]}]}
    assert gated.request("POST", "/v1/chat/completions", key=KEY, body=ok)[0] == 200
    assert png in json.dumps(gated.records()[-1])


def test_a_streamed_chat_completion_passes_through_unchanged_and_unbuffered(apps):
    gated, bare = apps
    body = {**CHAT, "stream": True}
    status, chunks = gated.stream("/v1/chat/completions", body)
    _, bare_chunks = bare.stream("/v1/chat/completions", body)
    assert status == 200
    data = b"".join(c for _, c in chunks)
    assert data == b"".join(c for _, c in bare_chunks)
    assert data.count(b"data: ") == 7 and data.endswith(b"data: [DONE]\n\n"), data
    # Tokens arrive as vLLM yields them (0.2 s apart), not all at the end.
    first, last = chunks[0][0], chunks[-1][0]
    assert len(chunks) >= 4 and last - first >= 0.8, [round(t, 2) for t, _ in chunks]
