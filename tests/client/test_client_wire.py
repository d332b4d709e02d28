"""Request models are strict and serialize only what was set; response models parse live payloads."""

import pydantic
import pytest

from runpod_provider.wire import (
    FINAL_STATUSES,
    STOPPED_STATUSES,
    UP_STATUSES,
    CreatePodRequest,
    GpuRequest,
    GpuType,
    Mounts,
    NetworkMount,
    NetworkVolume,
    PodActionRequest,
    PodInfo,
    UpdatePodRequest,
)


def minimal_create(**extra):
    return CreatePodRequest(
        name="llm-ab12", image="vllm/vllm-openai:v0.11.0", gpu=GpuRequest(id="NVIDIA L40S"), **extra
    )


# --- requests --------------------------------------------------------------------------------


def test_minimal_create_body_sends_gpu_count_and_nothing_unset():
    assert minimal_create().to_body() == {
        "name": "llm-ab12",
        "image": "vllm/vllm-openai:v0.11.0",
        "gpu": {"id": "NVIDIA L40S", "count": 1},
        "cloud": "SECURE",
    }


def test_full_create_body_uses_the_v2_json_names():
    req = minimal_create(
        dataCenterIds=["EU-RO-1"],
        mounts=Mounts(network=[NetworkMount(volumeId="grvtso8ftn", path="/workspace")]),
        disk=40,
        env={"HF_HOME": "/workspace/hf"},
        ports=["8000/http", "22/tcp"],
        args="--model x",
        startSsh=True,
    )
    body = req.to_body()
    assert body["dataCenterIds"] == ["EU-RO-1"]
    assert body["mounts"] == {"network": [{"volumeId": "grvtso8ftn", "path": "/workspace"}]}
    assert body["startSsh"] is True
    assert set(body) == {
        "name", "image", "gpu", "cloud", "dataCenterIds", "mounts", "disk", "env", "ports", "args", "startSsh"
    }


def test_a_body_parses_back_into_the_same_request():
    req = minimal_create(dataCenterIds=["EU-RO-1"], env={"A": "1"})
    assert CreatePodRequest.model_validate(req.to_body()) == req


@pytest.mark.parametrize("v1_key", ["imageName", "gpuTypeIds", "dockerStartCmd", "dataCenterId", "cloudType"])
def test_create_refuses_leftover_v1_keys(v1_key):
    with pytest.raises(pydantic.ValidationError, match=v1_key):
        minimal_create(**{v1_key: "x"})


def test_nested_request_models_refuse_unknown_keys_too():
    with pytest.raises(pydantic.ValidationError):
        GpuRequest(id="NVIDIA L40S", gpuCount=1)
    with pytest.raises(pydantic.ValidationError):
        NetworkMount(volumeId="v", path="/w", size=10)


@pytest.mark.parametrize("port", ["8000", "8000/udp", "http/8000", "8000/HTTP"])
def test_ports_must_be_port_slash_http_or_tcp(port):
    with pytest.raises(pydantic.ValidationError):
        minimal_create(ports=[port])


def test_the_gpu_request_carries_the_cuda_floor_and_always_a_count():
    assert GpuRequest(id="g", minCudaVersion="12.8").to_body() == {"id": "g", "count": 1, "minCudaVersion": "12.8"}


def test_only_one_network_mount_is_allowed():
    mount = NetworkMount(volumeId="v", path="/w")
    with pytest.raises(pydantic.ValidationError):
        Mounts(network=[mount, mount])


def test_update_body_holds_only_what_was_set_and_empty_ports_clear():
    assert UpdatePodRequest().to_body() == {}
    assert UpdatePodRequest(ports=[], env={"A": "1"}).to_body() == {"ports": [], "env": {"A": "1"}}
    with pytest.raises(pydantic.ValidationError):
        UpdatePodRequest(gpu={"id": "g"})  # not patchable: a replacement, not an update


def test_action_must_be_one_of_the_four():
    assert PodActionRequest(action="stop").to_body() == {"action": "stop"}
    with pytest.raises(pydantic.ValidationError):
        PodActionRequest(action="reset")  # gone in v2


def test_request_errors_and_reprs_never_show_env_values():
    with pytest.raises(pydantic.ValidationError) as info:
        minimal_create(env={"HF_TOKEN": "hf_secret123", "N": 5})
    assert "hf_secret123" not in str(info.value)
    assert "hf_secret123" not in repr(minimal_create(env={"HF_TOKEN": "hf_secret123"}))


# --- responses -------------------------------------------------------------------------------


def test_pod_parses_the_live_payload_with_quirks(live_pod):
    # Live `getPod` quirks: gpu without vcpuCount/memory, runtime null, numbers as strings, extra
    # and missing keys.
    payload = live_pod(cost="0.86", disk="30", newField={"x": 1}, runtime=None)
    del payload["registry"], payload["actions"]
    pod = PodInfo.model_validate(payload)
    assert pod.cost == 0.86 and pod.disk == 30
    assert pod.gpu.id == "NVIDIA L40S" and pod.gpu.count == 1 and pod.gpu.memory is None
    assert pod.runtime is None and pod.mounts is None and pod.actions == []
    assert pod.createdAt.year == 2026 and pod.startedAt is None


def test_running_without_runtime_is_not_up(live_pod):
    assert not PodInfo.model_validate(live_pod(status="RUNNING", runtime=None)).container_up
    assert not PodInfo.model_validate(live_pod(status="STARTING", runtime={})).container_up
    assert PodInfo.model_validate(live_pod(status="RUNNING", runtime={"ports": []})).container_up


def test_runtime_ports_parse_including_the_internal_http_entry(live_pod):
    runtime = {
        "uptime": 12,
        "ports": [
            {"ip": "100.65.14.155", "private": 19123, "public": 60821, "type": "http"},
            {"ip": "213.173.104.74", "private": 22, "public": "35558", "type": "tcp"},
            {"ip": None, "private": 8000, "public": None, "type": "http"},
        ],
    }
    ports = PodInfo.model_validate(live_pod(runtime=runtime)).runtime.ports
    assert [(p.private, p.public, p.type) for p in ports] == [
        (19123, 60821, "http"),
        (22, 35558, "tcp"),
        (8000, None, "http"),
    ]


def test_pod_parses_the_spec_list_example_with_mounts_and_ssh(live_pod):
    pod = PodInfo.model_validate(
        live_pod(
            mounts={"network": [{"path": "/workspace", "volumeId": "grvtso8ftn"}]},
            gpu={"id": "NVIDIA GeForce RTX 4090", "count": 1, "vcpuCount": 16, "memory": 64},
            ssh={
                "proxy": {"host": "ssh.runpod.io", "port": 22, "username": "u", "command": "ssh u@ssh.runpod.io"},
                "direct": None,
            },
            globalNetworking={"enabled": False},
        )
    )
    assert pod.mounts.network[0].volumeId == "grvtso8ftn"
    assert pod.gpu.vcpuCount == 16.0
    assert pod.ssh.proxy.host == "ssh.runpod.io" and pod.ssh.direct is None


def test_pod_repr_hides_env(live_pod):
    assert "s3cret" not in repr(PodInfo.model_validate(live_pod(env={"TOKEN": "s3cret"})))


def test_network_volume_parses_the_recorded_list_item():
    vol = NetworkVolume.model_validate(
        {"dataCenter": "EU-RO-1", "id": "grvtso8ftn", "name": "image-toolbox-models", "size": 50, "type": "STANDARD"}
    )
    assert (vol.id, vol.dataCenter, vol.size) == ("grvtso8ftn", "EU-RO-1", 50)


def test_gpu_stock_per_data_center():
    gpu = GpuType.model_validate(
        {
            "id": "NVIDIA L40S",
            "name": "L40S",
            "memory": "48",
            "price": {"secure": "0.86", "community": 0.79},
            "availability": "LOW",
            "dataCenters": [{"id": "EU-RO-1", "name": "Romania", "availability": "LOW"}],
        }
    )
    assert gpu.memory == 48 and gpu.price.secure == 0.86
    assert gpu.stock_in("EU-RO-1") == "LOW"
    assert gpu.stock_in("US-TX-3") == "NONE"  # not listed: not offered in that configuration


def test_gpu_stock_when_unavailable_everywhere_or_not_requested():
    # dataCenters is omitted when the configuration is unavailable everywhere.
    assert GpuType.model_validate({"id": "g", "availability": "NONE"}).stock_in("EU-RO-1") == "NONE"
    # Without include=AVAILABILITY there is no stock information at all.
    assert GpuType.model_validate({"id": "g"}).stock_in("EU-RO-1") is None


@pytest.mark.parametrize("status,up,stopped,final,gone,down", [
    ("PROVISIONING", True, False, False, False, False),
    ("RUNNING", True, False, False, False, False),
    ("EXITED", False, True, False, False, True),
    ("ERROR", False, True, True, False, True),
    ("TERMINATED", False, False, True, True, True),
    ("SOMETHING_NEW", False, False, False, False, False),  # an unknown status still parses
])
def test_pod_status_groups(live_pod, status, up, stopped, final, gone, down):
    pod = PodInfo.model_validate(live_pod(status=status))
    groups = (pod.status in UP_STATUSES, pod.status in STOPPED_STATUSES, pod.status in FINAL_STATUSES)
    assert (*groups, pod.gone, pod.down) == (up, stopped, final, gone, down)
