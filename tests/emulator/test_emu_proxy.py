"""The proxy stand-in: 404 for undeclared ports, 502 until ready, then a tiny vLLM / Open WebUI."""
from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest


def test_proxy_answers_502_until_the_service_is_ready_then_200(api):
    pod_id = api.create()["id"]
    assert api.proxy(pod_id, 8000).status_code == 502
    api.wait_ready(pod_id)  # runtime present is not enough...
    api.wait_proxy(pod_id, 8000, 200)  # ...the service comes up ready_delay later
    assert api.proxy(pod_id, 3000).status_code == 200


def test_proxy_url_is_a_format_template(emulator):
    assert emulator.proxy_url.format(pod_id="abc", port=8000).endswith("/proxy/abc-8000")


def test_port_not_declared_as_http_is_404(api):
    pod_id = api.create()["id"]
    api.wait_proxy(pod_id, 8000, 200)
    assert api.proxy(pod_id, 22).status_code == 404  # declared, but tcp
    assert api.proxy(pod_id, 7860).status_code == 404  # not declared
    assert api.proxy("nosuchpod00000", 8000).status_code == 404


def test_models_needs_the_pods_vllm_api_key(api):
    pod_id = api.create()["id"]
    api.wait_proxy(pod_id, 8000, 200)
    assert api.proxy(pod_id, 8000, "/v1/models").status_code == 401
    assert api.proxy(pod_id, 8000, "/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    response = api.proxy(pod_id, 8000, "/v1/models", headers={"Authorization": "Bearer sk-test"})
    assert response.status_code == 200
    assert response.json()["object"] == "list"
    assert [m["id"] for m in response.json()["data"]] == ["olmocr"]


def test_models_names_model_when_no_served_name_is_set(api, pod_body):
    pod_id = api.create(pod_body, env={"VLLM_API_KEY": "k"})["id"]
    api.wait_proxy(pod_id, 8000, 200)
    response = api.proxy(pod_id, 8000, "/v1/models", headers={"Authorization": "Bearer k"})
    assert response.json()["data"][0]["id"] == "model"


def test_service_that_never_becomes_ready_stays_502(emulator, api):
    pod_id = api.create()["id"]
    emulator.set_service(pod_id, ready=False)
    api.wait_ready(pod_id)
    time.sleep(0.3)  # past ready_delay
    assert api.proxy(pod_id, 8000).status_code == 502
    emulator.set_service(pod_id, ready=True)
    assert api.proxy(pod_id, 8000).status_code == 200


def test_service_default_applies_to_future_pods(emulator, api):
    emulator.set_service(ready=False)
    pod_id = api.create()["id"]
    api.wait_ready(pod_id)
    time.sleep(0.3)
    assert api.proxy(pod_id, 8000).status_code == 502


def test_stopped_pod_answers_502(api):
    pod_id = api.create()["id"]
    api.wait_proxy(pod_id, 8000, 200)
    api.action(pod_id, "stop")
    assert api.proxy(pod_id, 8000).status_code == 502


def test_proxy_also_refuses_urllibs_default_user_agent(emulator, api):
    pod_id = api.create()["id"]
    api.wait_proxy(pod_id, 8000, 200)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(emulator.proxy_url.format(pod_id=pod_id, port=8000) + "/health", timeout=5)
    assert caught.value.code == 403
