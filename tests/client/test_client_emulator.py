"""The client against the local RunPod v2 emulator (`emulator` fixture, tests/conftest.py):
real problem+json answers, real faults, real SSE."""

import time

import pytest

from runpod_provider import api_errors
from runpod_provider.client import RunPodClient
from runpod_provider.wire import CreatePodRequest, GpuRequest, Mounts, NetworkMount, UpdatePodRequest

VOLUME = "fuzzvol01eu"  # seeded by the emulator, in EU-RO-1
CREATE = r"/v2/pods$"  # fault path: POST /v2/pods only, not /v2/pods/{id}/...


@pytest.fixture
def client(emulator):
    with RunPodClient(emulator.api_key, emulator.api_url, timeout=5, backoff_factor=0, adopt_wait_s=2) as c:
        yield c


def create_req(name="llm-ab12", gpu="NVIDIA L40S", **extra):
    return CreatePodRequest(
        name=name,
        image="vllm/vllm-openai:v0.11.0",
        gpu=GpuRequest(id=gpu),
        dataCenterIds=["EU-RO-1"],
        mounts=Mounts(network=[NetworkMount(volumeId=VOLUME, path="/workspace")]),
        ports=["8000/http", "22/tcp"],
        env={"HF_HOME": "/workspace/hf"},
        **extra,
    )


def calls(emulator, method, path):
    return [r for r in emulator.requests if r["method"] == method and r["path"] == path]


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


# --- each error class from the emulator's answers ---------------------------------------------


def test_no_stock_in_the_allowed_data_center_is_a_capacity_error(client, emulator):
    emulator.set_stock("EU-RO-1", "NVIDIA L40S", "NONE")
    with pytest.raises(api_errors.CapacityError, match="no longer any instances available"):
        client.create_pod(create_req())
    assert emulator.pods() == []


def test_a_body_the_schema_refuses_is_a_422_naming_the_field(client):
    # Our models refuse count=0 themselves; model_construct skips that to reach the server.
    bad = create_req().model_copy(update={"gpu": GpuRequest.model_construct(id="NVIDIA L40S", count=0)})
    with pytest.raises(api_errors.UnprocessableRequestError) as info:
        client.create_pod(bad)
    assert "$.gpu.count" in str(info.value)
    assert any("$.gpu.count" in e for e in info.value.errors)


def test_a_wrong_key_is_an_auth_error(emulator):
    with RunPodClient("not-the-key", emulator.api_url) as c:
        with pytest.raises(api_errors.AuthError) as info:
            c.list_pods()
    assert info.value.status == 403


def test_a_missing_bearer_token_is_an_auth_error(client, emulator):
    emulator.inject(method="GET", path=r"/v2/pods$", kind="status", status=401, detail="missing bearer token")
    with pytest.raises(api_errors.AuthError) as info:
        client.list_pods()
    assert info.value.status == 401


def test_cloudflare_page_for_a_library_user_agent_names_the_fix(client):
    client._session.headers["User-Agent"] = "Python-urllib/3.11"  # what the quirk is about
    with pytest.raises(api_errors.AuthError, match="User-Agent"):
        client.list_pods()


def test_unknown_pod_is_not_found(client):
    with pytest.raises(api_errors.NotFoundError):
        client.get_pod("nosuchpod00000")


def test_network_volume_is_read_and_an_unknown_one_is_not_found(client):
    vol = client.get_network_volume(VOLUME)
    assert (vol.id, vol.dataCenter, vol.type) == (VOLUME, "EU-RO-1", "STANDARD")
    with pytest.raises(api_errors.NotFoundError):
        client.get_network_volume("nosuchvol")


def test_an_action_not_allowed_now_is_a_conflict(client):
    pod = client.create_pod(create_req())
    assert client.stop_pod(pod.id).status == "EXITED"
    with pytest.raises(api_errors.ConflictError) as info:
        client.stop_pod(pod.id)
    assert info.value.status == 409


def test_start_refused_for_lack_of_gpu_on_the_host_is_a_capacity_error(client, emulator):
    pod = client.create_pod(create_req())
    client.stop_pod(pod.id)
    emulator.inject(kind="no_gpu_on_start")
    with pytest.raises(api_errors.CapacityError, match="not enough free GPUs"):
        client.start_pod(pod.id)
    client.start_pod(pod.id)  # accepted now; the pod reads EXITED until the start takes effect
    deadline = time.monotonic() + 5
    while client.get_pod(pod.id).status == "EXITED":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_insufficient_funds(client, emulator):
    emulator.inject(method="POST", path=CREATE, kind="status", status=402, detail="Insufficient balance")
    with pytest.raises(api_errors.InsufficientFundsError):
        client.create_pod(create_req())


def test_rate_limit_that_outlasts_the_retries_is_raised(emulator):
    emulator.inject(method="GET", path=r"/v2/pods$", kind="status", status=429, retry_after=0, count=None)
    with RunPodClient(emulator.api_key, emulator.api_url, retry_total=2, backoff_factor=0) as c:
        with pytest.raises(api_errors.RateLimitedError) as info:
            c.list_pods()
    assert info.value.retry_after == 0
    assert len(calls(emulator, "GET", "/v2/pods")) == 3


# --- create: adopt, never resend blindly --------------------------------------------------------


def test_create_that_answers_500_after_creating_adopts_the_one_pod(client, emulator):
    emulator.inject(method="POST", path=CREATE, kind="after_effect", status=500)
    pod = client.create_pod(create_req())
    pods = emulator.pods()
    assert len(pods) == 1 and pods[0]["id"] == pod.id and pod.name == "llm-ab12"
    assert len(calls(emulator, "POST", "/v2/pods")) == 1


def test_create_whose_connection_drops_after_creating_adopts(client, emulator):
    emulator.inject(method="POST", path=CREATE, kind="after_effect", drop=True)
    pod = client.create_pod(create_req())
    assert [p["id"] for p in emulator.pods()] == [pod.id]


def test_adoption_waits_out_a_lagging_list(client, emulator):
    emulator.inject(method="POST", path=CREATE, kind="after_effect", status=502)
    emulator.inject(method="POST", path=CREATE, kind="list_lag", seconds=0.8)
    pod = client.create_pod(create_req())
    assert [p["id"] for p in emulator.pods()] == [pod.id]
    assert len(calls(emulator, "GET", "/v2/pods")) > 1


def test_create_500_before_creating_raises_and_makes_nothing(client, emulator):
    emulator.inject(method="POST", path=CREATE, kind="status", status=500)
    with RunPodClient(emulator.api_key, emulator.api_url, adopt_wait_s=0.3) as c:
        with pytest.raises(api_errors.ServerError):
            c.create_pod(create_req())
    assert emulator.pods() == []
    assert len(calls(emulator, "POST", "/v2/pods")) == 1


def test_create_dropped_before_creating_raises_transport_error(emulator):
    emulator.inject(method="POST", path=CREATE, kind="drop")
    with RunPodClient(emulator.api_key, emulator.api_url, adopt_wait_s=0.3) as c:
        with pytest.raises(api_errors.TransportError):
            c.create_pod(create_req())
    assert emulator.pods() == []
    assert len(calls(emulator, "POST", "/v2/pods")) == 1


def test_create_rate_limited_waits_retry_after_then_creates(client, emulator):
    emulator.inject(method="POST", path=CREATE, kind="status", status=429, retry_after=1)
    start = time.monotonic()
    pod = client.create_pod(create_req())
    assert time.monotonic() - start >= 1.0
    assert [p["id"] for p in emulator.pods()] == [pod.id]
    assert [r["status"] for r in calls(emulator, "POST", "/v2/pods")] == [429, 201]


# --- retries of idempotent calls ----------------------------------------------------------------


def test_get_rate_limited_waits_retry_after_and_succeeds(client, emulator):
    pod = client.create_pod(create_req())
    emulator.inject(method="GET", path=f"/v2/pods/{pod.id}$", kind="status", status=429, retry_after=1)
    start = time.monotonic()
    assert client.get_pod(pod.id).id == pod.id
    assert time.monotonic() - start >= 1.0
    assert [r["status"] for r in calls(emulator, "GET", f"/v2/pods/{pod.id}")] == [429, 200]


def test_get_5xx_is_retried(client, emulator):
    pod = client.create_pod(create_req())
    emulator.inject(method="GET", path=f"/v2/pods/{pod.id}$", kind="status", status=503, count=2)
    assert client.get_pod(pod.id).id == pod.id
    assert [r["status"] for r in calls(emulator, "GET", f"/v2/pods/{pod.id}")] == [503, 503, 200]


def test_delete_5xx_is_retried(client, emulator):
    pod = client.create_pod(create_req())
    emulator.inject(method="DELETE", path=f"/v2/pods/{pod.id}$", kind="status", status=502)
    assert client.delete_pod(pod.id) is True
    assert emulator.pods() == []


def test_delete_that_failed_after_deleting_reports_already_gone(client, emulator):
    pod = client.create_pod(create_req())
    emulator.inject(method="DELETE", path=f"/v2/pods/{pod.id}$", kind="after_effect", status=500)
    assert client.delete_pod(pod.id) is False  # the retry found it gone
    assert emulator.pods() == []


def test_delete_of_a_pod_removed_out_of_band_returns_false(client, emulator):
    pod = client.create_pod(create_req())
    emulator.delete_pod_out_of_band(pod.id)
    assert client.delete_pod(pod.id) is False


# --- reading --------------------------------------------------------------------------------------


def test_pod_reaches_running_with_a_runtime(client):
    pod = client.create_pod(create_req())
    assert pod.status == "PROVISIONING" and not pod.container_up
    assert wait_for(lambda: client.get_pod(pod.id).container_up)
    ready = client.get_pod(pod.id)
    assert ready.gpu.id == "NVIDIA L40S" and ready.dataCenterId == "EU-RO-1"
    assert ready.mounts.network[0].volumeId == VOLUME


def test_update_replaces_env_and_returns_the_pod(client):
    pod = client.create_pod(create_req())
    updated = client.update_pod(pod.id, UpdatePodRequest(env={"ONLY": "this"}, ports=["8000/http"]))
    assert updated.env == {"ONLY": "this"} and updated.ports == ["8000/http"]


@pytest.mark.emulator(paginate=2)
def test_list_follows_pagination(client, emulator):
    made = {client.create_pod(create_req(name=f"p{i}")).id for i in range(5)}
    assert {p.id for p in client.list_pods()} == made
    lists = calls(emulator, "GET", "/v2/pods")
    assert len(lists) == 3
    assert "cursor" not in lists[0]["query"] and all("cursor" in r["query"] for r in lists[1:])


def test_logs_are_read_until_the_deadline(client, emulator):
    pod = client.create_pod(create_req())
    assert wait_for(lambda: client.get_pod(pod.id).container_up)
    start = time.monotonic()
    lines = client.pod_logs(pod.id, tail=100, deadline_s=1.0)
    assert time.monotonic() - start < 2.0
    assert "runpod-deploy phase=prepare" in lines
    assert any(line.startswith("runpod-deploy phase=") for line in lines)


def test_gpu_stock_per_data_center(client, emulator):
    emulator.set_stock("EU-RO-1", "NVIDIA L40S", "LOW")
    emulator.set_stock("EU-RO-1", "NVIDIA GeForce RTX 4090", "NONE")
    in_ro = {g.id: g for g in client.gpu_types(data_center="EU-RO-1")}
    assert in_ro["NVIDIA L40S"].stock_in("EU-RO-1") == "LOW"
    assert in_ro["NVIDIA A100 80GB PCIe"].stock_in("EU-RO-1") == "HIGH"
    assert "NVIDIA GeForce RTX 4090" not in in_ro
    everywhere = {g.id: g for g in client.gpu_types()}
    assert everywhere["NVIDIA GeForce RTX 4090"].stock_in("EU-RO-1") == "NONE"
    assert everywhere["NVIDIA GeForce RTX 4090"].stock_in("US-TX-3") == "HIGH"
    query = [r["query"] for r in emulator.requests if r["path"] == "/v2/catalog/gpus"][0]
    assert query == {"include": "AVAILABILITY", "product": "POD", "count": "1", "cloud": "SECURE"}
