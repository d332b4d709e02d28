"""The gate on vLLM's public port: only the team's key reaches the GPU, and only through the routes
the team uses.

vLLM loads it in its own process with ``--middleware gate.Gate`` (vLLM 0.11.2
``entrypoints/openai/api_server.py`` ``build_app``: a class is ``app.add_middleware``-ed after vLLM's
own middlewares, so it is the outermost one and sees every request, ``/metrics`` and the SageMaker
``/invocations`` included; only Starlette's error handler is outside it). The agent writes this file
into a directory on vLLM's ``PYTHONPATH``. Pure ASGI, standard library only: it runs in vLLM's venv
and must import there whatever vLLM pins.

Why in vLLM's process and not a proxy in front: a streamed completion goes through no second hop
(no extra socket copy per token, no second event loop, no buffering to get wrong), and there is no
second service to supervise, port to move or health to check. The gate never touches ``send``:
responses, streams included, leave vLLM byte for byte.

What it lets through (README, "What the pod exposes"):

- ``GET /health`` without a key (RunPod's and the provider's readiness probe);
- with ``Authorization: Bearer <VLLM_API_KEY>`` (compared in constant time): ``GET /v1/models``,
  ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /metrics`` (the idle watcher sends
  the key too: the source address proves nothing on a pod where Open WebUI and the image's nginx
  make local requests), and what ``GATE_ALLOWED_ROUTES`` adds;
- nothing else: 401 without the right key, 404 with it. Paths are matched exactly, on the raw
  bytes the client sent as well as the decoded path, so ``//x``, ``/v1/../x``, ``%2F``, ``/V1/...``
  and trailing junk never match; websockets are refused.

Request bodies of ``POST`` routes are read (up to ``GATE_MAX_BODY_BYTES``), checked, then replayed
to vLLM unchanged: media only as ``data:`` URLs (or ``https`` on a host in ``GATE_MEDIA_DOMAINS``),
video never (vLLM 0.11.2's video decoding had a remote-code-execution bug, GHSA-4r2x-xpjr-7cvv),
no per-request ``mm_processor_kwargs`` (GHSA-gx7p-2j49-hfq4). vLLM fetches any URL it is given,
127.0.0.1 included (GHSA-qh4c-xf7m-gxfc).

Env (read once, when vLLM builds its app; a bad value stops vLLM with the message):
  VLLM_API_KEY          the key (required: without it the gate refuses to start, vLLM with it)
  GATE_ALLOWED_ROUTES   more routes, comma-separated, each ``METHOD /path`` or ``/path`` (GET and
                        POST), e.g. ``POST /v1/embeddings``
  GATE_MEDIA_DOMAINS    comma-separated host names whose https media URLs are allowed
  GATE_MAX_BODY_BYTES   request body limit (default 48 MiB: a few full-page PNGs as data URLs)
"""

from __future__ import annotations

import hmac
import json
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

OPEN_ROUTES = {"/health": frozenset({"GET"})}
DEFAULT_ROUTES = {
    "/v1/models": frozenset({"GET"}),
    "/v1/chat/completions": frozenset({"POST"}),
    "/v1/completions": frozenset({"POST"}),
    "/metrics": frozenset({"GET"}),
}
DEFAULT_MAX_BODY = 48 * 1024 * 1024
# A path the gate can name: segments of these characters only. Anything else (percent signs,
# backslashes, dots-only segments, empty segments) cannot be an allowed route.
_PATH_RE = re.compile(r"(/[A-Za-z0-9_-][A-Za-z0-9._-]*)+")
_DATA_URL_RE = re.compile(r"data:[a-z]+/[a-z0-9.+-]+;base64,", re.IGNORECASE)
_HOST_RE = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+")
TEXT_PARTS = frozenset({"text", "input_text", "refusal", "thinking"})
IMAGE_PARTS = frozenset({"image_url", "input_image"})


class GateConfigError(ValueError):
    """A GATE_* / VLLM_API_KEY value the gate cannot work with; str() names it and the fix."""


def parse_routes(value: str) -> dict[str, frozenset[str]]:
    """GATE_ALLOWED_ROUTES -> {path: methods}."""
    routes: dict[str, set[str]] = {}
    for entry in filter(None, (e.strip() for e in value.split(","))):
        method, _, path = entry.rpartition(" ")
        methods = {method.strip().upper()} if method.strip() else {"GET", "POST"}
        if not _PATH_RE.fullmatch(path) or methods - {"GET", "POST", "PUT", "PATCH", "DELETE"}:
            raise GateConfigError(f"GATE_ALLOWED_ROUTES entry {entry!r} is not `METHOD /path` or `/path` "
                                  "(path of letters, digits, '.', '_', '-' segments)")
        routes.setdefault(path, set()).update(methods)
    return {p: frozenset(m) for p, m in routes.items()}


def parse_domains(value: str) -> frozenset[str]:
    domains = set()
    for d in filter(None, (d.strip().lower() for d in value.split(","))):
        if not _HOST_RE.fullmatch(d):
            raise GateConfigError(f"GATE_MEDIA_DOMAINS entry {d!r} is not a host name (e.g. images.example.com)")
        domains.add(d)
    return frozenset(domains)


class Gate:
    """ASGI middleware; ``Gate(app)`` is how Starlette's add_middleware builds it."""

    def __init__(self, app: Callable[..., Awaitable[None]], *, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.app = app
        key = env.get("VLLM_API_KEY", "")
        if not key:
            raise GateConfigError("VLLM_API_KEY is empty: the gate admits no request without a key to compare with")
        self._key = key.encode("utf-8")
        self.routes = {**DEFAULT_ROUTES}
        for path, methods in parse_routes(env.get("GATE_ALLOWED_ROUTES", "")).items():
            self.routes[path] = self.routes.get(path, frozenset()) | methods
        self.media_domains = parse_domains(env.get("GATE_MEDIA_DOMAINS", ""))
        try:
            self.max_body = int(env.get("GATE_MAX_BODY_BYTES") or DEFAULT_MAX_BODY)
        except ValueError:
            raise GateConfigError("GATE_MAX_BODY_BYTES must be a whole number of bytes") from None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            return await self.app(scope, receive, send)
        if kind != "http":  # websockets: no route of ours uses one
            return await send({"type": "websocket.close", "code": 1008})
        path = _exact_path(scope)
        method = scope.get("method", "")
        if path is not None and method in OPEN_ROUTES.get(path, ()):
            return await self.app(scope, receive, send)
        if not self._authorized(scope):
            return await _refuse(send, 401, "unauthorized", [(b"www-authenticate", b"Bearer")])
        if path is None or method not in self.routes.get(path, ()):
            return await _refuse(send, 404, "not found")
        if method != "POST":
            return await self.app(scope, receive, send)
        body = await self._read_body(receive, send)
        if body is None:
            return None  # refused, or the client went away
        problem = _headers_problem(scope) or body_problem(body, self.media_domains)
        if problem:
            return await _refuse(send, 400, problem)
        return await self.app(scope, _replay(body, receive), send)

    def _authorized(self, scope: Scope) -> bool:
        values = [v for k, v in scope.get("headers", ()) if k.lower() == b"authorization"]
        if len(values) != 1:
            return False
        scheme, _, token = values[0].partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(token, self._key)

    async def _read_body(self, receive: Receive, send: Send) -> bytes | None:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # http.disconnect
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _refuse(send, 413, f"request body over {self.max_body} bytes")
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _exact_path(scope: Scope) -> str | None:
    """The path, if it is one the gate can compare exactly: the raw bytes the client sent decode to
    exactly the path the app routes on (no percent-encoding, no normalisation), there is no
    root_path, and it is made of plain segments. Else None (never an allowed route)."""
    path = scope.get("path", "")
    raw = scope.get("raw_path")
    if raw is not None:
        try:
            if raw.decode("ascii") != path:
                return None
        except UnicodeDecodeError:
            return None
    if scope.get("root_path") or not _PATH_RE.fullmatch(path) or "/." in path:
        return None
    return path


def _headers_problem(scope: Scope) -> str | None:
    for k, v in scope.get("headers", ()):
        if k.lower() == b"content-encoding" and v.strip().lower() not in (b"", b"identity"):
            return "encoded request bodies are not accepted"
    return None


def body_problem(body: bytes, media_domains: frozenset[str] = frozenset()) -> str | None:
    """Why this JSON request may not reach vLLM, or None. Checked: every message content part (text,
    or an image whose URL is a data: URL or https on an allowed host; no video, audio, embeddings
    or unknown parts) and no per-request multimodal processor settings."""
    try:
        doc = json.loads(body)
    except ValueError:  # vLLM's own parser (json.loads too) would refuse it as well
        return "the body is not JSON"
    if not isinstance(doc, dict):
        return "the body is not a JSON object"
    if doc.get("mm_processor_kwargs") is not None:
        return "mm_processor_kwargs is not accepted"
    messages = doc.get("messages")
    if messages is None:
        return None
    if not isinstance(messages, list):
        return "messages must be a list"
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            problem = _part_problem(part, media_domains)
            if problem:
                return problem
    return None


def _part_problem(part: Any, media_domains: frozenset[str]) -> str | None:
    if isinstance(part, str):
        return None
    if not isinstance(part, dict) or not isinstance(part.get("type"), str):
        return "every content part needs a type"
    kind = part["type"]
    if "video" in kind or "video_url" in part:
        return "video is not accepted"
    if "uuid" in part:
        return "content parts with a uuid are not accepted"
    if kind in TEXT_PARTS:
        return None
    if kind not in IMAGE_PARTS:
        return f"content part type {kind[:40]!r} is not accepted"
    url = part.get("image_url")
    if isinstance(url, dict):
        url = url.get("url")
    if not isinstance(url, str):
        return "image_url needs a url"
    return media_url_problem(url, media_domains)


def media_url_problem(url: str, media_domains: frozenset[str] = frozenset()) -> str | None:
    if _DATA_URL_RE.match(url):
        return None
    if media_domains:
        # One strict shape, so no URL parser (vLLM's aiohttp) can read another host out of it.
        if any(c in url for c in "\\@ \t\r\n%") or not url.isascii():
            return "media URL has characters that are not accepted"
        parts = urlsplit(url)
        if parts.scheme == "https" and parts.port is None and (parts.hostname or "") in media_domains \
                and parts.netloc == parts.hostname:
            return None
        return "media URLs must be data: URLs or https on a host in GATE_MEDIA_DOMAINS"
    return "media URLs must be data: URLs"


def _replay(body: bytes, receive: Receive) -> Receive:
    """The buffered body as one message, then the client's own (its disconnect, which vLLM watches
    to cancel a request)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": text}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})
