"""Problem+json (and non-JSON) error bodies become the right exception with a useful message."""

import json

import pytest

from runpod_provider import api_errors as e

CAPACITY = (
    "There are no longer any instances available with the requested specifications. "
    "Please refresh and try again."
)


def problem(status, detail, title=None, **extra):
    body = {"status": status, "detail": detail, **extra}
    if title:
        body["title"] = title
    return json.dumps(body)


def make(status, body, **kw):
    return e.error_from_response("POST", "/v2/pods", status, body, **kw)


@pytest.mark.parametrize(
    "status, detail, cls",
    [
        (400, CAPACITY, e.CapacityError),
        (400, "There are not enough free GPUs on the host machine to start this pod.", e.CapacityError),
        (400, "request could not be processed", e.BadRequestError),
        (401, "missing bearer token", e.AuthError),
        (402, "Insufficient balance", e.InsufficientFundsError),
        (403, "access denied", e.ForbiddenError),
        (404, "pod not found", e.NotFoundError),
        (409, "action not allowed", e.ConflictError),
        (422, "Request validation failed.", e.UnprocessableRequestError),
        (429, "rate limit exceeded for the minute window", e.RateLimitedError),
        (500, "boom", e.ServerError),
        (503, "unavailable", e.ServerError),
        (405, "The requested method is not allowed for this path.", e.RunPodError),
    ],
)
def test_status_and_detail_pick_the_exception_class(status, detail, cls):
    err = make(status, problem(status, detail, title="T"))
    assert type(err) is cls
    assert isinstance(err, e.RunPodError)
    assert (err.status, err.detail, err.title) == (status, detail, "T")


def test_message_names_method_path_status_and_detail():
    err = make(400, problem(400, CAPACITY, title="Bad Request"))
    assert str(err) == f"POST /v2/pods -> 400: {CAPACITY}"


def test_validation_message_lists_the_servers_errors():
    body = problem(
        422,
        "Request validation failed.",
        title="Unprocessable Entity",
        errors=["$: additional properties 'dataCenterId' not allowed", "$: missing property 'dataCenter'"],
    )
    err = make(422, body)
    assert err.errors == [
        "$: additional properties 'dataCenterId' not allowed",
        "$: missing property 'dataCenter'",
    ]
    assert "additional properties 'dataCenterId' not allowed" in str(err)
    assert "missing property 'dataCenter'" in str(err)


def test_capacity_400_without_title_is_still_capacity():
    # The 400 quoted by RunPod's migration notes had no `title`.
    err = make(400, json.dumps({"status": 400, "detail": CAPACITY}))
    assert isinstance(err, e.CapacityError)
    assert err.title is None


def test_rate_limit_keeps_retry_after_seconds():
    err = make(429, problem(429, "rate limit exceeded"), retry_after="7")
    assert isinstance(err, e.RateLimitedError)
    assert err.retry_after == 7.0
    assert make(429, problem(429, "x")).retry_after is None
    assert make(429, problem(429, "x"), retry_after="soon").retry_after is None


def test_cloudflare_html_403_suggests_the_user_agent():
    page = (
        "<!DOCTYPE html><html><head><title>Access denied | api.runpod.io used Cloudflare to restrict"
        " access</title></head><body>Error 1010 ... Cloudflare Ray ID: 8a1b</body></html>"
    )
    err = make(403, page, content_type="text/html; charset=UTF-8")
    assert isinstance(err, e.AuthError)
    assert "User-Agent" in str(err)
    assert "<html" not in str(err)


def test_other_html_pages_are_reduced_to_their_title():
    page = "<html><head><title>502 Bad Gateway</title></head><body>" + "x" * 5000 + "</body></html>"
    err = make(502, page, content_type="text/html")
    assert isinstance(err, e.ServerError)
    assert "502 Bad Gateway" in str(err)
    assert len(str(err)) < 300


def test_v1_error_body_points_at_the_base_url():
    err = make(400, json.dumps({"error": "gpuTypeIds is required"}))
    assert isinstance(err, e.BadRequestError)
    assert "gpuTypeIds is required" in str(err)
    assert "v2" in str(err)


def test_empty_or_plain_text_bodies_do_not_break_parsing():
    assert str(make(500, "")) == "POST /v2/pods -> 500: no detail"
    assert "upstream hiccup" in str(make(503, "upstream hiccup"))


def test_transport_error_has_no_status():
    err = e.TransportError("POST", "/v2/pods", None, detail="ReadTimeout: read timed out")
    assert err.status is None
    assert str(err) == "POST /v2/pods: ReadTimeout: read timed out"
