"""HTTP only: a threaded HTTP/1.1 server that turns each request into a `Request`, asks its
`app` function for a `Reply` (None: close the connection without answering) and writes it,
chunked when the reply streams. It knows nothing of RunPod.

Every reply has a Content-Length or is chunked, so connections are kept alive and clients that
poll from many threads reuse them; `close_connections()` ends the ones still open at shutdown.
"""
from __future__ import annotations

import socket
import sys
import threading
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from .messages import Reply, Request, problem


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # pollers open many connections at once

    def __init__(self, address, app: Callable[[Request], Reply | None], verbose: bool = False):
        self.app, self.verbose = app, verbose
        self._connections: set = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "runpod-emulator"
    timeout = 120  # idle keep-alive connections end eventually
    server: Server

    def do_GET(self):
        try:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            req = Request(self.command, url.path, dict(parse_qsl(url.query, keep_blank_values=True)),
                          {k.lower(): v for k, v in self.headers.items()},
                          self.rfile.read(length) if length > 0 else b"")
            reply = self.server.app(req)
            if reply is None:
                self._drop()
            else:
                self._send(reply)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # noqa: BLE001 - an emulator bug: answer 500 so it shows, and print the traceback
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            try:
                self._send(problem(500, "emulator internal error (see its stderr)"))
            except OSError:
                pass

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    def setup(self):
        super().setup()
        # Headers and body are separate writes: without NODELAY, Nagle + delayed ACK add ~40 ms each.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format, *args):
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(self, reply: Reply):
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.stream is not None:
            return self._send_stream(reply)
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
