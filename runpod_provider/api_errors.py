"""The RunPod API's HTTP errors: one exception family for REST v2, built from RFC 9457 problem
bodies. (What the provider itself reports to the user lives in `provider_errors.py`.)

`error_from_response` is the only place an HTTP error becomes an exception. Messages carry the
method, path, status and the server's detail/errors, never headers or request bodies (those can
hold the API key or env secrets).
"""

from __future__ import annotations

import json
import re

# RunPod has no machine-readable capacity code: the 400's detail text is the only signal.
_CAPACITY_MARKERS = (
    "There are no longer any instances available",
    # Start of a stopped pod whose host GPU was rented meanwhile (v1/GraphQL wording).
    "There are not enough free GPUs on the host machine",
)
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class RunPodError(Exception):
    """Any failure talking to RunPod. `status` is None when no response arrived."""

    def __init__(
        self,
        method: str,
        path: str,
        status: int | None,
        title: str | None = None,
        detail: str | None = None,
        errors: list[str] | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = list(errors or [])
        super().__init__(self._message())

    def _message(self) -> str:
        head = f"{self.method} {self.path}"
        if self.status is not None:
            head += f" -> {self.status}"
        text = self.detail or self.title or "no detail"
        if self.errors:
            text += " [" + "; ".join(self.errors) + "]"
        return f"{head}: {text}"


class CapacityError(RunPodError):
    """400 "no instances available": try the next (GPU, data center) candidate."""


class BadRequestError(RunPodError):
    """Any other 400: a cross-field rule of the request was broken."""


class InsufficientFundsError(RunPodError):
    """402: the account is out of balance; no candidate will succeed."""


class AuthError(RunPodError):
    """401/403: bad key, key without access, or Cloudflare refusing the client."""


class ForbiddenError(AuthError):
    """403 from the API itself (not Cloudflare): the key lacks access. On a create, "Your account
    cannot access the requested pool": createPod says skip that candidate and keep going."""


class NotFoundError(RunPodError):
    """404: unknown id, or one the key cannot see."""


class ConflictError(RunPodError):
    """409: action not allowed in the current status (or a cluster pod)."""


class UnprocessableRequestError(RunPodError):
    """422: the body broke the schema; `errors` lists the offending `$`-paths. Never retry."""


class RateLimitedError(RunPodError):
    """429: per-user rate limit. `retry_after` is the server's wait in seconds, if given."""

    def __init__(self, *args, retry_after: float | None = None, **kwargs) -> None:
        self.retry_after = retry_after
        super().__init__(*args, **kwargs)


class ServerError(RunPodError):
    """5xx: transient upstream failure. For a create, the pod may exist anyway."""


class TransportError(RunPodError):
    """No usable response (timeout, connection reset): the outcome is unknown."""


def error_from_response(
    method: str,
    path: str,
    status: int,
    body: str,
    *,
    content_type: str = "",
    retry_after: str | None = None,
) -> RunPodError:
    """Map one HTTP error response to the matching exception (returned, not raised)."""
    title, detail, errors = _parse_problem(body, content_type)
    cloudflare = status == 403 and _is_cloudflare_page(body, content_type)
    if cloudflare:
        # Quirk: Cloudflare 403/1010 when the User-Agent is missing or a library default.
        detail = (
            "Cloudflare refused the request (likely error 1010); "
            "send an explicit User-Agent such as runpod-deploy/<version>"
        )
    kwargs = dict(method=method, path=path, status=status, title=title, detail=detail, errors=errors)
    if status == 403 and not cloudflare:
        return ForbiddenError(**kwargs)
    if status == 400:
        capacity = any(marker in (detail or "") for marker in _CAPACITY_MARKERS)
        return (CapacityError if capacity else BadRequestError)(**kwargs)
    if status == 429:
        return RateLimitedError(**kwargs, retry_after=_seconds(retry_after))
    if status >= 500:
        return ServerError(**kwargs)
    cls = {
        401: AuthError,
        402: InsufficientFundsError,
        403: AuthError,
        404: NotFoundError,
        409: ConflictError,
        422: UnprocessableRequestError,
    }.get(status, RunPodError)
    return cls(**kwargs)


def _parse_problem(body: str, content_type: str) -> tuple[str | None, str | None, list[str]]:
    """(title, detail, errors) from a problem+json body; tolerant of anything else."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        errors = data.get("errors")
        errors = [str(e) for e in errors] if isinstance(errors, list) else []
        detail = data.get("detail")
        if detail is None and "error" in data:
            # Quirk: a `{"error": ...}` body is v1's shape, so the base URL points at v1.
            detail = f"{data['error']} (v1-style error body: is the base URL the v2 API?)"
        title = data.get("title")
        return (
            str(title) if title is not None else None,
            str(detail) if detail is not None else None,
            errors,
        )
    if "html" in content_type.lower() or body.lstrip().startswith("<"):
        match = _HTML_TITLE.search(body)
        page = match.group(1).strip() if match else "HTML page"
        return None, f"non-JSON response: {page[:200]}", []
    return None, (body.strip()[:200] or None), []


def _is_cloudflare_page(body: str, content_type: str) -> bool:
    looks_html = "html" in content_type.lower() or body.lstrip().startswith("<")
    lowered = body.lower()
    return looks_html and ("cloudflare" in lowered or "error 1010" in lowered)


def _seconds(header: str | None) -> float | None:
    """Retry-After as seconds (RunPod sends an integer); None when absent or unparseable."""
    try:
        return max(0.0, float(header)) if header is not None else None
    except ValueError:
        return None
