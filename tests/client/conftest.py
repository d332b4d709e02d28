"""`fake_api`: a scripted local HTTP server, for client behaviour the emulator cannot script
(exact headers, HTML bodies, odd payloads, an SSE stream with chosen timing)."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Reply:
    status: int = 200
    body: object = None  # dict/list -> JSON; str -> sent as is
    headers: dict = field(default_factory=dict)  # may override Content-Type
    drop: bool = False  # close the connection without answering
    sse: list[str] | None = None  # data lines sent at once, then the stream idles until closed


@dataclass
class Seen:
    method: str
    path: str
    headers: dict
    body: object


class FakeApi:
    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern, list[Reply]]] = []
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}/v2"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    DROP = Reply(drop=True)

    def route(self, method: str, path: str, *replies: Reply | tuple) -> None:
        """Answer `method path` (regex, full match, query string ignored) with `replies` in order,
        the last one repeating. A reply is `(status, body[, headers])` or `DROP`."""
        replies = [r if isinstance(r, Reply) else Reply(*r) for r in replies]
        self._routes.append((method, re.compile(path), replies))

    def route_sse(self, path: str, events: list[str]) -> None:
        """GET `path` streams `events` as SSE `data:` lines, then idles without ever ending."""
        self._routes.append(("GET", re.compile(path), [Reply(sse=list(events))]))

    def seen(self, method: str | None = None) -> list[Seen]:
        return [r for r in self.requests if method is None or r.method == method]

    def close(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def _reply_for(self, method: str, path: str) -> Reply:
        with self._lock:
            for m, pattern, replies in self._routes:
                if m == method and pattern.fullmatch(path):
                    return replies.pop(0) if len(replies) > 1 else replies[0]
        return Reply(404, {"title": "Not Found", "status": 404, "detail": "no such route"})

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                path = self.path.split("?", 1)[0]
                api.requests.append(Seen(self.command, self.path, dict(self.headers), body))
                reply = api._reply_for(self.command, path)
                if reply.drop:
                    self.close_connection = True
                    return
                if reply.sse is not None:
                    return self._stream(reply)
                if isinstance(reply.body, (dict, list)):
                    data, ctype = json.dumps(reply.body).encode(), "application/json"
                    if reply.status >= 400:
                        ctype = "application/problem+json"
                elif isinstance(reply.body, str):
                    data, ctype = reply.body.encode(), "text/plain"
                else:
                    data, ctype = b"", None
                headers = {"Content-Type": ctype, **reply.headers} if ctype else dict(reply.headers)
                self.send_response(reply.status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, reply: Reply):
                # Like RunPod: no Content-Length, the stream stays open until the client leaves.
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                self.close_connection = True
                try:
                    for i, data in enumerate(reply.sse):
                        self.wfile.write(f"id: 2026-06-01T12:02:03Z/{i:012d}\ndata: {data}\n\n".encode())
                        self.wfile.flush()
                    while not api._stopping.is_set():
                        time.sleep(0.05)
                        self.wfile.write(b": keep-alive\n\n")
                        self.wfile.flush()
                except OSError:
                    pass

            do_GET = do_POST = do_PATCH = do_DELETE = _handle  # noqa: N815 - http.server dispatches on these names

        return Handler


@pytest.fixture
def fake_api():
    api = FakeApi()
    yield api
    api.close()


@pytest.fixture
def live_pod():
    """Factory of pod payloads shaped like live v2 ones."""
    return pod_json


def pod_json(pod_id: str = "5xpma5eg46tqjq", name: str = "p", **extra) -> dict:
    """A pod as live v2 `getPod` returned it (the response quirks in runpod_provider/wire.py): gpu
    without vcpuCount/memory, runtime null."""
    pod = {
        "id": pod_id,
        "name": name,
        "status": "RUNNING",
        "actions": ["stop", "restart", "terminate"],
        "image": "runpod/pytorch:1.0.7-cu1281-torch291-ubuntu2204",
        "args": "",
        "disk": 30,
        "ports": ["22/tcp"],
        "env": {},
        "registry": None,
        "cloud": "SECURE",
        "dataCenterId": "EU-RO-1",
        "gpu": {"count": 1, "id": "NVIDIA L40S"},
        "cost": 0.86,
        "runtime": None,
        "createdAt": "2026-08-20T06:16:19.436Z",
        "startedAt": None,
    }
    pod.update(extra)
    return pod
