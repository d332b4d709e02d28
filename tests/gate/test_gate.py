"""startup/children/gate.py as ASGI, with a recording app behind it (no vLLM needed; the real app's route
matrix is tests/startup_real/test_realpkgs_gate.py)."""

from __future__ import annotations

import asyncio
import json

import pytest

from startup.children.gate import Gate, GateConfigError, body_problem, media_url_problem, parse_routes

KEY = "k-ey$'\"1"
PNG = "data:image/png;base64,iVBORw0KGgo="


class Recorder:
    def __init__(self):
        self.calls = []

    async def __call__(self, scope, receive, send):
        body = b""
        if scope["type"] == "http":
            while True:
                m = await receive()
                body += m.get("body", b"")
                if not m.get("more_body"):
                    break
        self.calls.append((scope.get("path"), body))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"a", b"b", b"c"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def call(gate, method="GET", path="/v1/models", *, key=KEY, body=b"", raw=None, chunks=None, headers=()):
    scope = {"type": "http", "method": method, "path": path, "raw_path": raw if raw is not None else path.encode(),
             "root_path": "", "headers": [*([(b"authorization", f"Bearer {key}".encode())] if key else []),
                                          *headers], "client": ("127.0.0.1", 1)}
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                for i, c in enumerate(chunks)] if chunks else [{"type": "http.request", "body": body}]
    messages.append({"type": "http.disconnect"})
    sent = []

    async def receive():
        return messages.pop(0)

    async def send(m):
        sent.append(m)

    asyncio.run(gate(scope, receive, send))
    status = sent[0]["status"] if sent and sent[0]["type"] == "http.response.start" else None
    return status, sent


def gate(**env):
    app = Recorder()
    return Gate(app, environ={"VLLM_API_KEY": KEY, **env}), app


def chat(*parts, **extra):
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": list(parts)}], **extra}).encode()


def test_no_key_no_gate():
    with pytest.raises(GateConfigError, match="VLLM_API_KEY"):
        Gate(Recorder(), environ={})


@pytest.mark.parametrize("key,status", [(None, 401), ("", 401), (KEY + "x", 401), (KEY[:-1], 401), (KEY, 200)])
def test_the_key_is_required_everywhere_but_health(key, status):
    g, app = gate()
    assert call(g, key=key)[0] == status
    assert call(g, path="/health", key=key)[0] == 200


def test_two_authorization_headers_or_another_scheme_are_refused():
    g, _ = gate()
    assert call(g, headers=[(b"authorization", f"Bearer {KEY}".encode())])[0] == 401
    assert call(g, key=None, headers=[(b"authorization", f"Basic {KEY}".encode())])[0] == 401
    assert call(g, key=None, headers=[(b"Authorization", f"bearer {KEY}".encode())])[0] == 200


@pytest.mark.parametrize("method,path,raw", [
    ("POST", "/invocations", None), ("POST", "/tokenize", None), ("GET", "/version", None),
    ("POST", "/v1/models", None), ("GET", "/v1/chat/completions", None),
    ("GET", "/v1/models", b"/v1%2Fmodels"), ("GET", "/v1/models", b"/%761/models"), ("GET", "//v1/models", None),
    ("GET", "/v1/../v1/models", None), ("GET", "/v1/models/", None), ("GET", "/V1/models", None),
    ("GET", "/v1/models", b"/v1/models\xff"),
])
def test_only_the_allowed_routes_exactly(method, path, raw):
    g, app = gate()
    assert call(g, method, path, raw=raw, body=chat("x"))[0] == 404
    assert call(g, method, path, raw=raw, key=None)[0] == 401
    assert app.calls == []


def test_a_root_path_or_a_websocket_never_passes():
    g, app = gate()
    sent = []

    async def run():
        async def send(m):
            sent.append(m)
        await g({"type": "websocket", "path": "/v1/models", "headers": []}, None, send)
    asyncio.run(run())
    assert sent == [{"type": "websocket.close", "code": 1008}] and app.calls == []


def test_more_routes_from_env_and_bad_entries_stop_the_start():
    g, _ = gate(GATE_ALLOWED_ROUTES="POST /v1/embeddings, /tokenize")
    assert call(g, "POST", "/v1/embeddings", body=b"{}")[0] == 200
    assert call(g, "GET", "/v1/embeddings")[0] == 404
    assert call(g, "POST", "/tokenize", body=b"{}")[0] == 200
    for bad in ("/v1/../x", "GET v1/x", "TRACE /x", "/v1/%2e", "/v1//x"):
        with pytest.raises(GateConfigError):
            parse_routes(bad)


def test_the_body_reaches_the_app_whole_and_the_response_untouched():
    g, app = gate()
    body = chat({"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": PNG}})
    status, sent = call(g, "POST", "/v1/chat/completions", chunks=[body[:7], body[7:20], body[20:]])
    assert status == 200 and app.calls == [("/v1/chat/completions", body)]
    assert [m.get("body") for m in sent[1:]] == [b"a", b"b", b"c", b""]  # each chunk as the app sent it


def test_a_body_over_the_limit_is_refused():
    g, app = gate(GATE_MAX_BODY_BYTES="100")
    assert call(g, "POST", "/v1/completions", chunks=[b"x" * 60, b"x" * 60])[0] == 413
    assert app.calls == []


@pytest.mark.parametrize("part", [
    {"type": "image_url", "image_url": {"url": "http://127.0.0.1:3000/x.png"}},
    {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}},
    {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}},
    {"type": "image_url", "image_url": {"url": " data:image/png;base64,AA"}},
    {"type": "input_image", "image_url": "http://10.0.0.1/x"},
    {"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AA"}},
    {"type": "text", "text": "x", "video_url": {"url": "data:video/mp4;base64,AA"}},
    {"image_url": {"url": PNG}},  # no type: vLLM guesses from the keys
    {"type": "image_url", "image_url": {"url": PNG}, "uuid": "u"},
    {"type": "audio_url", "audio_url": {"url": "data:audio/wav;base64,AA"}},
    {"type": "image_embeds", "image_embeds": "AA"},
    {"type": "image_pil", "image_pil": "x"},
])
def test_media_other_than_data_urls_and_other_parts_are_refused(part):
    g, app = gate()
    status, sent = call(g, "POST", "/v1/chat/completions", body=chat(part))
    assert status == 400 and app.calls == [], sent


def test_per_request_processor_kwargs_and_non_json_are_refused():
    assert body_problem(chat("x", mm_processor_kwargs={"max_pixels": 10**9}))
    assert body_problem(b"not json") and body_problem(b"[1]")
    assert body_problem(chat("x")) is None
    g, app = gate()
    gz = [(b"content-encoding", b"gzip")]
    assert call(g, "POST", "/v1/chat/completions", body=chat("x"), headers=gz)[0] == 400


def test_media_domains_allow_https_on_those_hosts_only():
    domains = frozenset({"images.example.com"})
    assert media_url_problem("https://images.example.com/a.png", domains) is None
    for url in ("http://images.example.com/a.png", "https://images.example.com:8443/a.png",
                "https://evil.com\\@images.example.com/a.png", "https://images.example.com@127.0.0.1/",
                "https://x.images.example.com/a", "https://images.example.com%2e/a", "https://127.0.0.1/a"):
        assert media_url_problem(url, domains), url
    g, app = gate(GATE_MEDIA_DOMAINS="images.example.com")
    ok = {"type": "image_url", "image_url": {"url": "https://images.example.com/a.png"}}
    assert call(g, "POST", "/v1/chat/completions", body=chat(ok))[0] == 200
    video = {"type": "video_url", "video_url": {"url": "https://images.example.com/a.mp4"}}
    assert call(g, "POST", "/v1/chat/completions", body=chat(video))[0] == 400
    with pytest.raises(GateConfigError):
        Gate(Recorder(), environ={"VLLM_API_KEY": KEY, "GATE_MEDIA_DOMAINS": "http://x.com"})


def test_the_gate_is_standard_library_only():
    import ast
    from pathlib import Path

    import startup.children.gate as mod
    tree = ast.parse(Path(mod.__file__).read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    import sys
    assert names <= set(sys.stdlib_module_names) | {"__future__"}, names
