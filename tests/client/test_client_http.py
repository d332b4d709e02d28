"""Client behaviour over real HTTP against a scripted local server (`fake_api`)."""

import time
from urllib.parse import parse_qs, urlsplit

import pytest

from runpod_provider import api_errors
from runpod_provider.client import RunPodClient
from runpod_provider.keys import find_api_key
from runpod_provider.wire import CreatePodRequest, GpuRequest, UpdatePodRequest

KEY = "rpa_TESTKEY0123456789"


@pytest.fixture
def client(fake_api):
    with RunPodClient(KEY, fake_api.url, timeout=5, backoff_factor=0, adopt_wait_s=0.3) as c:
        yield c


def create_req(name="llm-ab12", **extra):
    return CreatePodRequest(name=name, image="img:1", gpu=GpuRequest(id="NVIDIA L40S"), **extra)


def problem(status, detail="boom", **headers):
    return status, {"title": "T", "status": status, "detail": detail}, headers


# --- headers and configuration -------------------------------------------------------------


def test_every_call_sends_user_agent_bearer_and_json(client, fake_api, live_pod):
    fake_api.route("GET", "/v2/pods/abc", (200, live_pod("abc")))
    client.get_pod("abc")
    seen = fake_api.seen("GET")[0]
    assert seen.headers["User-Agent"].startswith("runpod-deploy/")
    assert seen.headers["Authorization"] == f"Bearer {KEY}"
    assert seen.headers["Content-Type"] == "application/json"
    assert KEY not in seen.path


def test_base_url_comes_from_runpod_api_url(fake_api, monkeypatch, live_pod):
    monkeypatch.setenv("RUNPOD_API_URL", fake_api.url + "/")
    fake_api.route("GET", "/v2/pods/abc", (200, live_pod("abc")))
    with RunPodClient(KEY) as c:
        assert c.base_url == fake_api.url
        assert c.get_pod("abc").id == "abc"


def test_ids_are_sent_as_one_path_segment(client, fake_api):
    with pytest.raises(api_errors.NotFoundError) as info:
        client.get_pod("../account")
    assert fake_api.seen("GET")[0].path == "/v2/pods/..%2Faccount"
    assert info.value.path == "/v2/pods/..%2Faccount"


# --- retries ---------------------------------------------------------------------------------


def test_get_is_retried_on_5xx(client, fake_api, live_pod):
    fake_api.route("GET", "/v2/pods/abc", problem(503), problem(502), (200, live_pod("abc")))
    assert client.get_pod("abc").id == "abc"
    assert len(fake_api.seen("GET")) == 3


def test_get_is_retried_after_a_dropped_connection(client, fake_api, live_pod):
    fake_api.route("GET", "/v2/pods/abc", fake_api.DROP, (200, live_pod("abc")))
    assert client.get_pod("abc").id == "abc"
    assert len(fake_api.seen("GET")) == 2


def test_get_gives_up_after_retry_total(fake_api):
    fake_api.route("GET", "/v2/pods/abc", problem(500, "still broken"))
    with RunPodClient(KEY, fake_api.url, retry_total=2, backoff_factor=0) as c:
        with pytest.raises(api_errors.ServerError, match="still broken"):
            c.get_pod("abc")
    assert len(fake_api.seen("GET")) == 3


def test_patch_and_delete_are_retried(client, fake_api, live_pod):
    fake_api.route("PATCH", "/v2/pods/abc", problem(502), (200, live_pod("abc", name="renamed")))
    fake_api.route("DELETE", "/v2/pods/abc", problem(504), (204,))
    assert client.update_pod("abc", UpdatePodRequest(name="renamed")).name == "renamed"
    assert client.delete_pod("abc") is True
    assert len(fake_api.seen("PATCH")) == 2 and len(fake_api.seen("DELETE")) == 2
    assert fake_api.seen("PATCH")[-1].body == {"name": "renamed"}


def test_delete_of_a_missing_pod_returns_false(client, fake_api):
    assert client.delete_pod("gone") is False


def test_action_5xx_is_not_resent(client, fake_api):
    fake_api.route("POST", "/v2/pods/abc/action", problem(500))
    with pytest.raises(api_errors.ServerError):
        client.stop_pod("abc")
    assert len(fake_api.seen("POST")) == 1
    assert fake_api.seen("POST")[0].body == {"action": "stop"}


def test_action_429_is_waited_out(client, fake_api, live_pod):
    fake_api.route(
        "POST", "/v2/pods/abc/action", problem(429, **{"Retry-After": "0"}), (200, live_pod("abc", status="EXITED"))
    )
    assert client.stop_pod("abc").status == "EXITED"
    assert len(fake_api.seen("POST")) == 2


# --- create: never blind, adopt by name ------------------------------------------------------


def test_create_5xx_with_no_pod_raises_after_a_single_post(client, fake_api):
    fake_api.route("POST", "/v2/pods", problem(503, "upstream"))
    fake_api.route("GET", "/v2/pods", (200, {"pods": []}))
    with pytest.raises(api_errors.ServerError, match="upstream"):
        client.create_pod(create_req())
    assert len(fake_api.seen("POST")) == 1
    assert len(fake_api.seen("GET")) >= 1  # looked for the pod before giving up


def test_create_5xx_adopts_the_pod_that_was_made(client, fake_api, live_pod):
    fake_api.route("POST", "/v2/pods", problem(500))
    fake_api.route("GET", "/v2/pods", (200, {"pods": [live_pod("other", name="x"), live_pod("mine", name="llm-ab12")]}))
    assert client.create_pod(create_req()).id == "mine"
    assert len(fake_api.seen("POST")) == 1


def test_create_adoption_waits_for_a_lagging_list(fake_api, live_pod):
    fake_api.route("POST", "/v2/pods", fake_api.DROP)
    empty, found = (200, {"pods": []}), (200, {"pods": [live_pod("mine", name="llm-ab12")]})
    fake_api.route("GET", "/v2/pods", empty, empty, found)
    with RunPodClient(KEY, fake_api.url, adopt_wait_s=3) as c:
        assert c.create_pod(create_req()).id == "mine"
    assert len(fake_api.seen("GET")) == 3


def test_create_adoption_keeps_the_oldest_duplicate_and_deletes_the_rest(client, fake_api, live_pod):
    fake_api.route("POST", "/v2/pods", problem(502))
    pods = [
        live_pod("newer", name="llm-ab12", createdAt="2026-11-27T10:00:05Z"),
        live_pod("older", name="llm-ab12", createdAt="2026-11-27T10:00:01Z"),
        live_pod("dead", name="llm-ab12", createdAt="2026-11-27T09:00:00Z", status="TERMINATED"),
    ]
    fake_api.route("GET", "/v2/pods", (200, {"pods": pods}))
    fake_api.route("DELETE", "/v2/pods/newer", (204,))
    assert client.create_pod(create_req()).id == "older"
    assert [r.path for r in fake_api.seen("DELETE")] == ["/v2/pods/newer"]


def test_create_429_is_waited_out_then_sent_again(client, fake_api, live_pod):
    fake_api.route("POST", "/v2/pods", problem(429, **{"Retry-After": "0"}), (201, live_pod("new", name="llm-ab12")))
    assert client.create_pod(create_req()).id == "new"
    assert len(fake_api.seen("POST")) == 2


def test_create_429_with_a_long_retry_after_goes_back_to_the_caller(client, fake_api):
    fake_api.route("POST", "/v2/pods", problem(429, **{"Retry-After": "1800"}))
    with pytest.raises(api_errors.RateLimitedError) as info:
        client.create_pod(create_req())
    assert info.value.retry_after == 1800
    assert len(fake_api.seen("POST")) == 1


def test_create_4xx_is_raised_without_adoption(client, fake_api):
    fake_api.route("POST", "/v2/pods", problem(400, "There are no longer any instances available with the ..."))
    with pytest.raises(api_errors.CapacityError):
        client.create_pod(create_req())
    assert fake_api.seen("GET") == []


def test_error_messages_never_carry_the_key_or_env_values(client, fake_api):
    body = {"title": "Unprocessable Entity", "status": 422, "detail": "Request validation failed.",
            "errors": ["$.env: bad"]}
    fake_api.route("POST", "/v2/pods", (422, body))
    with pytest.raises(api_errors.UnprocessableRequestError) as info:
        client.create_pod(create_req(env={"HF_TOKEN": "hf_SECRETVALUE"}))
    text = str(info.value) + repr(info.value.args)
    assert "$.env: bad" in text
    assert KEY not in text and "hf_SECRETVALUE" not in text


def test_transport_error_on_create_without_pod(fake_api):
    fake_api.route("POST", "/v2/pods", fake_api.DROP)
    fake_api.route("GET", "/v2/pods", (200, {"pods": []}))
    with RunPodClient(KEY, fake_api.url, adopt_wait_s=0) as c:
        with pytest.raises(api_errors.TransportError) as info:
            c.create_pod(create_req())
    assert info.value.status is None and info.value.path == "/v2/pods"


# --- reading ---------------------------------------------------------------------------------


def test_list_follows_cursor_pagination(client, fake_api, live_pod):
    fake_api.route(
        "GET",
        "/v2/pods",
        (200, {"pods": [live_pod("a")], "pagination": {"nextCursor": "c1", "hasNextPage": True}}),
        (200, {"pods": [live_pod("b")], "pagination": {"nextCursor": None, "hasNextPage": False}}),
    )
    assert [p.id for p in client.list_pods()] == ["a", "b"]
    assert [urlsplit(r.path).query for r in fake_api.seen("GET")] == ["", "cursor=c1"]


def test_list_without_pagination_is_one_page(client, fake_api, live_pod):
    fake_api.route("GET", "/v2/pods", (200, {"pods": [live_pod("a")]}))
    assert [p.id for p in client.list_pods()] == ["a"]


def test_cloudflare_html_403_says_to_fix_the_user_agent(client, fake_api):
    page = "<html><head><title>Attention Required! | Cloudflare</title></head><body>Error 1010</body></html>"
    fake_api.route("GET", "/v2/pods/abc", (403, page, {"Content-Type": "text/html"}))
    with pytest.raises(api_errors.AuthError, match="User-Agent"):
        client.get_pod("abc")


def test_non_json_success_is_a_runpod_error(client, fake_api):
    fake_api.route("GET", "/v2/pods/abc", (200, "<html>maintenance</html>", {"Content-Type": "text/html"}))
    with pytest.raises(api_errors.RunPodError, match="not a JSON object"):
        client.get_pod("abc")


def test_gpu_types_asks_for_pod_availability(client, fake_api):
    gpus = [
        {"id": "NVIDIA L40S", "dataCenters": [{"id": "EU-RO-1", "availability": "HIGH"}], "availability": "HIGH"},
        {"id": "NVIDIA GeForce RTX 4090", "dataCenters": [{"id": "US-TX-3", "availability": "LOW"}]},
    ]
    fake_api.route("GET", "/v2/catalog/gpus", (200, {"gpus": gpus}))
    result = client.gpu_types(data_center="EU-RO-1", gpu_count=2)
    assert [g.id for g in result] == ["NVIDIA L40S"]
    query = parse_qs(urlsplit(fake_api.seen("GET")[0].path).query)
    assert query == {"include": ["AVAILABILITY"], "product": ["POD"], "count": ["2"], "cloud": ["SECURE"]}


def test_logs_return_lines_by_the_deadline_from_an_endless_stream(client, fake_api):
    events = [
        '{"ts":"2026-06-01T12:02:03Z","source":"container","line":"Model loaded."}',
        '{"ts":"2026-06-01T12:02:04Z","source":"system","line":"pulling image"}',
        "not json",
    ]
    fake_api.route_sse("/v2/pods/abc/logs", events)
    start = time.monotonic()
    lines = client.pod_logs("abc", tail=10, deadline_s=0.5)
    assert time.monotonic() - start < 1.5
    assert lines == ["Model loaded.", "pulling image", "not json"]
    request = fake_api.seen("GET")[0]
    assert parse_qs(urlsplit(request.path).query) == {"tail": ["10"]}
    assert request.headers["Accept"] == "text/event-stream"


def test_logs_of_an_unknown_pod_raise_not_found(client, fake_api):
    with pytest.raises(api_errors.NotFoundError):
        client.pod_logs("nope", deadline_s=0.5)


def test_the_key_comes_from_config_then_the_environment():
    assert find_api_key("rpa_config", {"RUNPOD_API_KEY": "rpa_env"}) == "rpa_config"
    assert find_api_key(None, {"RUNPOD_API_KEY": "rpa_env\n"}) == "rpa_env"
    assert find_api_key("", {}) is None
