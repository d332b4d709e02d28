"""GET /v2/pods/{id}/logs: Server-Sent Events with the startup script's phases."""
from __future__ import annotations

import re
import threading

import pytest

PHASES = ["prepare", "install-vllm", "install-webui", "download-model", "start-vllm", "start-webui", "ready"]


def _phases(events):
    lines = [e["data"]["line"] for e in events if "data" in e]
    return [m[1] for line in lines if (m := re.fullmatch(r"runpod-deploy phase=(\S+)", line))]


def _stream(api, pod_id, **params):
    return api.get(f"/pods/{pod_id}/logs", params=params, stream=True, timeout=5)


def test_logs_stream_the_startup_phases_in_order(api, sse):
    pod_id = api.create()["id"]
    api.wait_proxy(pod_id, 8000, 200)
    with _stream(api, pod_id) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["X-Accel-Buffering"] == "no"
        events = sse(response, until=lambda e: e.get("data", {}).get("line", "").endswith("phase=ready"))
    assert _phases(events) == PHASES
    for event in events:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/\d{12}", event["id"])
        assert set(event["data"]) == {"ts", "source", "line"}
        assert event["id"].startswith(event["data"]["ts"])


def test_stream_stays_open_and_delivers_live_lines(api, sse):
    pod_id = api.create()["id"]
    with _stream(api, pod_id, tail=0) as response:  # connect at once: everything arrives live
        events = sse(response, until=lambda e: e.get("data", {}).get("line", "").endswith("phase=ready"))
    assert _phases(events) == PHASES


def test_tail_limits_the_backfill(api, sse):
    pod_id = api.create()["id"]
    api.wait_proxy(pod_id, 8000, 200)
    with _stream(api, pod_id, tail=2) as response:
        events = sse(response, until=lambda e: True)  # the first event is enough
    assert events[0]["data"]["line"] == "runpod-deploy phase=start-webui"


def test_source_filter_keeps_one_source(api, sse):
    pod_id = api.create()["id"]
    api.wait_proxy(pod_id, 8000, 200)
    with _stream(api, pod_id, source="system") as response:
        events = sse(response, until=lambda e: e["data"]["line"] == "Starting container")
    assert {e["data"]["source"] for e in events} == {"system"}


def test_last_event_id_resumes_after_that_event(api, sse):
    pod_id = api.create()["id"]
    api.wait_proxy(pod_id, 8000, 200)
    with _stream(api, pod_id) as response:
        first = sse(response, until=lambda e: e["data"]["line"].endswith("phase=prepare"))
    resume = api.get(f"/pods/{pod_id}/logs", headers={"Last-Event-ID": first[-1]["id"]}, stream=True, timeout=5)
    with resume:
        [event] = sse(resume, until=lambda e: True)
    assert event["data"]["line"] == "runpod-deploy phase=install-vllm"


def test_quiet_stream_sends_keepalive_comments(api, sse):
    pod_id = api.create()["id"]
    api.wait_proxy(pod_id, 8000, 200)
    with _stream(api, pod_id, tail=0) as response:
        events = sse(response, until=lambda e: "comment" in e, keep_comments=True, timeout=3)
    assert events and events[-1]["comment"] == "keepalive"


def test_stream_ends_when_the_pod_is_deleted(emulator, api, sse):
    pod_id = api.create()["id"]
    with _stream(api, pod_id, tail=0) as response:
        threading.Timer(0.3, emulator.delete_pod_out_of_band, args=(pod_id,)).start()
        events = sse(response, timeout=5)  # returns when the server ends the stream
    assert events  # it printed something before it went


def test_service_that_never_gets_ready_logs_a_crash_loop(emulator, api, sse):
    emulator.set_service(ready=False)
    pod_id = api.create()["id"]
    with _stream(api, pod_id, tail=0) as response:
        events = sse(response, until=lambda e: "exited with code" in e.get("data", {}).get("line", ""))
    assert "ready" not in _phases(events)
    assert events[-1]["data"]["line"] == "vllm exited with code 1, restarting in 5s"


def test_open_streams_do_not_block_other_requests(api, new_client):
    pod_id = api.create()["id"]
    streams = [new_client().get(f"/pods/{pod_id}/logs", stream=True, timeout=5) for _ in range(8)]
    try:
        assert api.get(f"/pods/{pod_id}", timeout=2).status_code == 200
    finally:
        for stream in streams:
            stream.close()


def test_logs_of_an_unknown_pod_are_404(api):
    assert api.get("/pods/nosuchpod00000/logs").status_code == 404


@pytest.mark.parametrize("params", [{"tail": "-1"}, {"tail": "5001"}, {"source": "kernel"}, {"since": "yesterday"}])
def test_bad_log_parameters_are_422(api, params):
    pod_id = api.create()["id"]
    assert api.get(f"/pods/{pod_id}/logs", params=params).status_code == 422


def test_a_stopped_pod_keeps_its_log_and_says_it_stopped(api, sse):
    pod_id = api.create()["id"]
    api.wait_proxy(pod_id, 8000, 200)
    api.action(pod_id, "stop")  # nobody read the log before the stop
    with _stream(api, pod_id) as response:
        events = sse(response, until=lambda e: e["data"]["line"] == "Stopping container")
    assert _phases(events) == PHASES
    assert events[-1]["data"]["source"] == "system"
