"""What the HTTP layer hands to a route (`Request`) and what a route hands back (`Reply`).

Routes never touch sockets; they return a `Reply` (or raise `ApiError`), and `server.py` writes it.
Errors are RFC 9457 problem details, the spec's `ErrorResponse` (https://www.rfc-editor.org/rfc/rfc9457).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus

PROBLEM_JSON = "application/problem+json"
JSON = "application/json"


@dataclass
class Request:
    method: str
    path: str  # percent-encoded, without the query string
    query: dict  # name -> last value given (unknown names are simply ignored by routes)
    headers: dict  # lower-case name -> value
    body: bytes = b""

    def json(self):
        """The body as JSON; a body that is not JSON is a 400 (the schema checks come after)."""
        try:
            return json.loads(self.body or b"")
        except ValueError as exc:
            raise ApiError(400, f"request body is not valid JSON: {exc}") from None


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict = field(default_factory=dict)
    # A stream replaces the body: the server sends each yielded chunk as it comes (SSE).
    stream: Callable[[], Iterator[bytes]] | None = None


def json_reply(status: int, obj) -> Reply:
    return Reply(status, json.dumps(obj).encode(), JSON)


def no_content() -> Reply:
    return Reply(204)


# Statuses Python does not name but faults may script (Cloudflare's 52x in front of the proxy).
_EXTRA_PHRASES = {520: "Web Server Returned an Unknown Error", 522: "Connection Timed Out",
                  524: "A Timeout Occurred"}


def status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return _EXTRA_PHRASES.get(status, "Error")


def problem(status: int, detail: str, errors=None, headers=None) -> Reply:
    body = {"title": status_phrase(status), "status": status, "detail": detail}
    if errors:
        body["errors"] = list(errors)
    return Reply(status, json.dumps(body).encode(), PROBLEM_JSON, dict(headers or {}))


class ApiError(Exception):
    """Raised by the world or a route to answer with a problem+json error."""

    def __init__(self, status: int, detail: str, errors=None):
        super().__init__(f"{status}: {detail}")
        self.status, self.detail, self.errors = status, detail, errors

    def reply(self) -> Reply:
        return problem(self.status, self.detail, self.errors)


def validation_error(errors) -> ApiError:
    # The spec's example 422 body; `errors` carries the `$`-paths that name each violation.
    return ApiError(422, "Request validation failed.", errors=errors)


def not_found(detail: str = "resource not found") -> ApiError:
    return ApiError(404, detail)
