"""The pod-scoped key as a live report saw it (runpod_emulator/README.md, "The pod-scoped key"):
refused on every /v2 path, accepted by the GraphQL stand-in's podStop for its own pod."""

from __future__ import annotations

import pytest
import requests

from runpod_emulator import Emulator

UA = {"User-Agent": "runpod-deploy-tests/0"}
STOP = "mutation stopPod($podId: String!) { podStop(input: {podId: $podId}) { id desiredStatus lastStatusChange } }"


def graphql(emulator, body, key=None, *, bearer=True, **kw):
    headers = {**UA, **({"Authorization": f"Bearer {key}"} if key and bearer else {})}
    params = {"api_key": key} if key and not bearer else None
    return requests.post(f"{emulator.base_url}/graphql", json=body, headers=headers, params=params, timeout=5, **kw)


def stop(emulator, pod_id, key, **kw):
    return graphql(emulator, {"query": STOP, "variables": {"podId": pod_id}}, key, **kw)


def test_the_pod_key_is_refused_on_every_v2_path_by_default(emulator, api, new_client, pod_body):
    mine, other = api.create()["id"], api.create(name="other")["id"]
    pod_key = new_client(emulator.container_env(mine)["RUNPOD_API_KEY"])
    for response in (pod_key.get(f"/pods/{mine}"), pod_key.action(mine, "stop"), pod_key.get(f"/pods/{mine}/logs"),
                     pod_key.get(f"/pods/{other}"), pod_key.get("/pods"), pod_key.post("/pods", json=pod_body),
                     pod_key.get("/catalog/gpus")):
        assert (response.status_code, response.json()["detail"]) == (403, "access denied"), response.request.url
    assert api.pod(mine)["status"] != "EXITED"


def test_podstop_with_the_pod_key_stops_its_own_pod_and_only_it(emulator, api):
    mine, other = api.create()["id"], api.create(name="other")["id"]
    api.wait_ready(mine)
    key = emulator.container_env(mine)["RUNPOD_API_KEY"]

    refused = stop(emulator, other, key)  # GraphQL's shape: 200, null data, an errors array
    assert refused.status_code == 200
    assert refused.json() == {"data": {"podStop": None}, "errors": [
        {"message": "a pod-scoped API key may only act on its own pod", "path": ["podStop"]}]}
    assert api.pod(other)["status"] != "EXITED"

    stopped = stop(emulator, mine, key)
    assert stopped.status_code == 200 and "errors" not in stopped.json()
    answer = stopped.json()["data"]["podStop"]
    assert answer["id"] == mine and answer["desiredStatus"] == "EXITED"
    assert answer["lastStatusChange"].startswith("Exited by user: ")
    assert api.pod(mine)["status"] == "EXITED" and api.pod(other)["status"] != "EXITED"
    assert [(c["operation"], c["pod_id"], c["key"], c["ok"]) for c in emulator.graphql.calls()] == [
        ("podStop", other, "pod", False), ("podStop", mine, "pod", True)]
    assert [(r["method"], r["status"]) for r in emulator.requests if r["path"] == "/graphql"] == [
        ("POST", 200), ("POST", 200)]  # in the request log too

    again = stop(emulator, mine, key)  # the world's rule: an EXITED pod cannot stop
    assert again.json()["errors"][0]["message"] == "cannot stop a pod in status EXITED"


def test_the_pod_query_inline_ids_and_the_legacy_key_in_the_query_string(emulator, api):
    mine = api.create()["id"]
    key = emulator.container_env(mine)["RUNPOD_API_KEY"]
    body = {"query": f'query {{ pod(input: {{podId: "{mine}"}}) {{ id desiredStatus }} }}'}
    answer = graphql(emulator, body, key, bearer=False).json()
    assert answer["data"]["pod"]["id"] == mine and set(answer["data"]["pod"]) == {"id", "desiredStatus"}
    assert stop(emulator, mine, emulator.api_key).json()["data"]["podStop"]["desiredStatus"] == "EXITED"  # account key


def test_graphql_refusals_unknown_key_bad_query_and_cloudflare(emulator, api):
    mine = api.create()["id"]
    assert stop(emulator, mine, "rpa_pod_not_a_key").status_code == 401
    assert stop(emulator, mine, None).status_code == 401
    emulator.delete_pod_out_of_band(mine)
    assert stop(emulator, mine, emulator.api_key).json()["errors"][0]["message"] == "pod not found"
    bad = graphql(emulator, {"query": "query { myself { id } }"}, emulator.api_key)
    assert bad.status_code == 400 and "not emulated" in bad.json()["errors"][0]["message"]
    blocked = requests.post(f"{emulator.base_url}/graphql", json={"query": STOP}, timeout=5,
                            headers={"User-Agent": "Python-urllib/3.11"})
    assert blocked.status_code == 403 and b"Error 1010" in blocked.content


def test_a_fault_on_the_graphql_path(emulator, api):
    mine = api.create()["id"]
    emulator.inject(kind="status", status=503, path="/graphql", count=1)
    assert stop(emulator, mine, emulator.container_env(mine)["RUNPOD_API_KEY"]).status_code == 503
    assert emulator.faults.pending() == []


def test_the_old_reading_is_a_setting():
    with pytest.raises(ValueError, match="pod_key_v2"):
        Emulator(pod_key_v2="all")
