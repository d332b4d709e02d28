"""Bearer auth, the Cloudflare User-Agent check and RateLimit headers."""
from __future__ import annotations

import http.client
import urllib.error
import urllib.request

import pytest
import requests


def test_missing_bearer_token_is_401(emulator):
    response = requests.get(emulator.api_url + "/pods", timeout=5)
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json() == {"title": "Unauthorized", "status": 401, "detail": "missing bearer token"}
    assert "RateLimit" not in response.headers


def test_non_bearer_scheme_is_401(emulator):
    response = requests.get(emulator.api_url + "/pods", headers={"Authorization": "Basic dGVzdA=="}, timeout=5)
    assert response.status_code == 401


def test_unknown_key_is_403(emulator):
    response = requests.get(emulator.api_url + "/pods", headers={"Authorization": "Bearer nope"}, timeout=5)
    assert response.status_code == 403
    assert response.json()["detail"] == "access denied"


@pytest.mark.emulator(api_keys=("first", "second"))
def test_every_configured_key_is_accepted(emulator):
    for key in ("first", "second"):
        response = requests.get(emulator.api_url + "/pods", headers={"Authorization": f"Bearer {key}"}, timeout=5)
        assert response.status_code == 200


def test_python_requests_default_user_agent_passes(emulator):
    response = requests.get(emulator.api_url + "/pods", headers={"Authorization": f"Bearer {emulator.api_key}"},
                            timeout=5)
    assert response.request.headers["User-Agent"].startswith("python-requests/")
    assert response.status_code == 200


def test_urllib_default_user_agent_gets_cloudflare_1010(emulator):
    request = urllib.request.Request(emulator.api_url + "/pods",
                                     headers={"Authorization": f"Bearer {emulator.api_key}"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 403
    assert b"1010" in caught.value.read()


def test_missing_user_agent_gets_cloudflare_1010(emulator):
    # http.client sends no User-Agent unless told to (requests/urllib3 always add one).
    connection = http.client.HTTPConnection(emulator.host, emulator.port, timeout=5)
    connection.request("GET", "/v2/pods", headers={"Authorization": f"Bearer {emulator.api_key}"})
    response = connection.getresponse()
    assert response.status == 403
    assert response.getheader("Content-Type").startswith("text/html")
    connection.close()


@pytest.mark.emulator(check_user_agent=False)
def test_user_agent_check_can_be_switched_off(emulator):
    request = urllib.request.Request(emulator.api_url + "/pods",
                                     headers={"Authorization": f"Bearer {emulator.api_key}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def test_authenticated_answers_carry_ratelimit_headers(api):
    response = api.get("/pods")
    assert '"minute";r=' in response.headers["RateLimit"]
    assert '"minute";q=' in response.headers["RateLimit-Policy"]


# --- the identity RunPod injects into every pod --------------------------------------------------

@pytest.mark.emulator(pod_key_v2="own-pod")  # the earlier reading; the live default: tests/emulator/test_emu_graphql.py
def test_a_pod_sees_its_id_and_a_pod_scoped_key_that_only_acts_on_its_own_pod(emulator, api, new_client,
                                                                                pod_body):
    mine, other = api.create()["id"], api.create(name="other")["id"]
    env = emulator.container_env(mine)
    assert env["RUNPOD_POD_ID"] == mine and env["SERVED_MODEL_NAME"] == "olmocr"
    assert env["RUNPOD_DC_ID"] == "EU-RO-1" and env["RUNPOD_VOLUME_ID"] == "fuzzvol01eu"
    key = env["RUNPOD_API_KEY"]
    assert key not in emulator.api_keys and key != emulator.container_env(other)["RUNPOD_API_KEY"]
    assert "RUNPOD_API_KEY" not in api.pod(mine)["env"]  # GET echoes the pod's own env only

    pod_key = new_client(key)
    assert pod_key.get(f"/pods/{mine}").status_code == 200
    for response in (pod_key.get(f"/pods/{other}"), pod_key.action(other, "stop"), pod_key.get("/pods"),
                     pod_key.delete(f"/pods/{other}"), pod_key.post("/pods", json=pod_body),
                     pod_key.get("/catalog/gpus")):
        assert response.status_code == 403, response.request.url
        assert response.json()["detail"] == "a pod-scoped API key may only act on its own pod"
    assert api.pod(other)["status"] != "EXITED"

    api.wait_ready(mine)
    stopped = pod_key.action(mine, "stop")
    assert stopped.status_code == 200 and stopped.json()["status"] == "EXITED"
    assert api.pod(mine)["status"] == "EXITED" and api.pod(mine)["actions"] == ["start", "terminate"]

    api.delete(f"/pods/{mine}")
    assert pod_key.get(f"/pods/{mine}").json()["detail"] == "access denied"  # the key died with its pod


def test_container_env_over_the_admin_interface(emulator, api):
    from runpod_emulator.admin import AdminClient

    pod_id = api.create()["id"]
    assert AdminClient(emulator.admin_url).container_env(pod_id) == emulator.container_env(pod_id)
    with pytest.raises(KeyError):
        AdminClient(emulator.admin_url).container_env("nosuchpod")
