"""HTTP plumbing: one threaded server for the API (`/v2`), the proxy (`/proxy`) and the admin
controls (`/_emulator`). Each request goes through, in order:

    Cloudflare User-Agent check -> scripted fault -> bearer auth -> route -> (after-effect fault)

The check and faults come first because on the live service they sit in front of the API.
Responses use HTTP/1.1 keep-alive (every reply has a Content-Length or is chunked), so clients
that poll from many threads reuse connections; `stop()` closes every connection it holds.
"""
from __future__ import annotations

import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from .faults import REQUEST_KINDS, Fault
from .messages import Reply, Request, problem

if TYPE_CHECKING:
    from .emulator import Emulator

# What Cloudflare shows Python urllib's default User-Agent (api digest §1): error 1010, as HTML.
_CLOUDFLARE_1010 = (b"<!DOCTYPE html><html><head><title>Access denied | api.runpod.io used Cloudflare to "
                    b"restrict access</title></head><body><h1>Error 1010</h1><p>Access denied</p><p>The "
                    b"owner of this website has banned your access based on your browser's signature."
                    b"</p></body></html>")

# RateLimit headers on authenticated answers (api digest §14). Not enforced: the quotas are the
# emulator's own numbers; use a 429 fault to exercise a client's back-off.
_WINDOWS = (("minute", 60, 1000), ("hour", 3600, 30000), ("day", 86400, 500000))
RATELIMIT_POLICY = ", ".join(f'"{name}";q={quota};w={secs}' for name, secs, quota in _WINDOWS)


class Recorder:
    """The log of `/v2` calls (for assertions) and the rate-limit window counters."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries: list[dict] = []
        self._counts: dict[str, tuple[int, int]] = {}

    def begin(self, req: Request) -> dict:
        entry = {"method": req.method, "path": req.path, "query": dict(req.query), "status": None,
                 "ts": time.time()}
        with self._lock:
            self._entries.append(entry)
            for name, secs, _ in _WINDOWS:
                window, count = self._counts.get(name, (-1, 0))
                index = int(entry["ts"] // secs)
                self._counts[name] = (index, count + 1 if index == window else 1)
        return entry

    def finish(self, entry: dict, status):
        with self._lock:
            entry["status"] = status

    def entries(self) -> list[dict]:
        with self._lock:
            return [dict(e, query=dict(e["query"])) for e in self._entries]

    def clear(self):
        with self._lock:
            self._entries.clear()

    def ratelimit_header(self) -> str:
        now = time.time()
        parts = []
        with self._lock:
            for name, secs, quota in _WINDOWS:
                window, count = self._counts.get(name, (-1, 0))
                used = count if window == int(now // secs) else 0
                parts.append(f'"{name}";r={max(0, quota - used)};t={int(secs - now % secs)}')
        return ", ".join(parts)


def fault_reply(fault: Fault) -> Reply:
    headers = {"Retry-After": str(fault.retry_after)} if fault.status == 429 else {}
    detail = fault.detail or ("rate limit exceeded for the minute window" if fault.status == 429
                              else "emulated failure")
    return problem(fault.status, detail, headers=headers)


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # pollers open many connections at once

    def __init__(self, address, emulator: "Emulator"):
        self.emulator = emulator
        self._connections: set = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, Handler)

    def process_request_thread(self, request, client_address):
        with self._connections_lock:
            self._connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)

    def close_connections(self):
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "runpod-emulator"
    timeout = 120  # idle keep-alive connections end eventually
    server: EmulatorHTTPServer

    def do_GET(self):
        self._dispatch()

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    def setup(self):
        super().setup()
        # Headers and body are separate writes: without NODELAY, Nagle + delayed ACK add ~40 ms each.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format, *args):
        if self.server.emulator.verbose:
            super().log_message(format, *args)

    # ----- the request flow ----------------------------------------------------------------------

    def _dispatch(self):
        emu = self.server.emulator
        try:
            req = self._read_request()
            if req.path == "/_emulator" or req.path.startswith("/_emulator/"):
                return self._send(emu.control.handle(req))
            is_api = req.path == "/v2" or req.path.startswith("/v2/")
            is_proxy = req.path.startswith("/proxy/")
            if not (is_api or is_proxy):
                return self._send(problem(404, "resource not found"))
            entry = emu.recorder.begin(req) if is_api else None
            reply = self._serve(req, is_api, is_proxy)
            if entry is not None:
                emu.recorder.finish(entry, reply.status if reply else None)
            if reply is None:
                return self._drop()
            self._send(reply)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # an emulator bug: answer 500 so it shows, and print the traceback
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            try:
                self._send(problem(500, "emulator internal error (see its stderr)"))
            except OSError:
                pass

    def _serve(self, req: Request, is_api: bool, is_proxy: bool):
        """The reply for an API or proxy request, or None to drop the connection."""
        emu = self.server.emulator
        agent = req.headers.get("user-agent", "")
        if emu.check_user_agent and (not agent or agent.startswith("Python-urllib")):
            return Reply(403, _CLOUDFLARE_1010, "text/html; charset=UTF-8")
        fault = emu.faults.take(REQUEST_KINDS, req.method, req.path)
        if fault and fault.kind == "drop":
            return None
        if fault and fault.kind == "status":
            return self._with_ratelimit(fault_reply(fault)) if is_api else fault_reply(fault)
        if fault and fault.kind == "delay":
            emu.stop_event.wait(fault.seconds)
        reply = emu.proxy.handle(req) if is_proxy else self._authenticated(req)
        if fault and fault.kind == "after_effect":  # the work is done; the client never learns it
            if fault.drop:
                return None
            return self._with_ratelimit(fault_reply(fault))
        return reply

    def _authenticated(self, req: Request) -> Reply:
        emu = self.server.emulator
        scheme, _, key = req.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return problem(401, "missing bearer token")  # the spec's 401 carries no RateLimit headers
        if key.strip() not in emu.api_keys:
            return self._with_ratelimit(problem(403, "access denied"))
        return self._with_ratelimit(emu.api.handle(req))

    def _with_ratelimit(self, reply: Reply) -> Reply:
        reply.headers.setdefault("RateLimit", self.server.emulator.recorder.ratelimit_header())
        reply.headers.setdefault("RateLimit-Policy", RATELIMIT_POLICY)
        return reply

    # ----- wire ----------------------------------------------------------------------------------

    def _read_request(self) -> Request:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        return Request(self.command, url.path, dict(parse_qsl(url.query, keep_blank_values=True)), headers, body)

    def _send(self, reply: Reply):
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.stream is not None:
            self._send_stream(reply)
            return
        if reply.status != 204:
            if reply.content_type:
                self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if reply.status != 204 and reply.body:
            self.wfile.write(reply.body)

    def _send_stream(self, reply: Reply):
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        chunks = reply.stream()
        try:
            for chunk in chunks:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client went away (or the emulator stopped): end the stream quietly
            self.close_connection = True
        finally:
            chunks.close()

    def _drop(self):
        """Close the connection without a byte of response (the body was already read)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
