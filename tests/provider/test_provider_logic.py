"""Pure logic of the Pod provider: check(), diff(), rendering, poll budget, pickling."""

from __future__ import annotations

import shlex

import dill
import pytest

from runpod_provider.pod import PodProvider
from runpod_provider.readiness import poll_delays
from runpod_provider.spec import PodSpec, is_pod_name_of, new_pod_name

BASE = {
    "name_prefix": "runpod-deploy-dev-olmocr",
    "image": "runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404",
    "gpu_type_ids": ["NVIDIA L40S", "NVIDIA A100 80GB PCIe"],
    "gpu_count": 1,
    "data_center_ids": ["EU-RO-1"],
    "cloud": "SECURE",
    "network_volume_id": "vol1",
    "volume_mount_path": "/workspace",
    "container_disk_gb": 50,
    "ports": ["8000/http", "3000/http", "22/tcp"],
    "env": {"A": "1"},
    "secret_env": {"VLLM_API_KEY": "s3cr3t-value"},
    "start_command": ["bash", "-c", "echo \"$HOME\" 'x'"],
    "running": True,
    "readiness": [{"port": 8000, "path": "/health"}],
    "ready_timeout_s": 1800,
}


def check(news, olds=None):
    return PodProvider().check(olds or {}, {**news, "__provider": "x"})


def test_check_names_the_pod_once_and_keeps_the_name():
    first = check(BASE)
    assert first.failures == []
    name = first.inputs["name"]
    assert is_pod_name_of(BASE["name_prefix"], name)
    again = check(BASE, olds=first.inputs)
    assert again.inputs["name"] == name


@pytest.mark.parametrize("field,value,expect", [
    ("gpu_count", 0, "greater than or equal to 1"),
    ("ports", ["8000"], "'<port>/http' or '<port>/tcp'"),
    ("container_disk_gb", -5, "greater than or equal to 1"),
    ("gpu_type_ids", [], "at least 1 item"),
    ("cloud", "ALL", "'SECURE' or 'COMMUNITY'"),
    ("ready_timeout_s", 0, "greater than or equal to 1"),
    ("running", "maybe", "valid boolean"),
    ("env", {"BAD-KEY": "x"}, "not a valid environment variable name"),
])
def test_check_rejects_bad_inputs_naming_the_property(field, value, expect):
    res = check({**BASE, field: value})
    assert res.failures, f"{field}={value!r} was accepted"
    props = [f.property for f in res.failures]
    assert any(p.startswith(field) for p in props), props
    assert any(expect in f.reason for f in res.failures), [f.reason for f in res.failures]


def test_check_rejects_a_probe_on_a_port_that_is_not_exposed():
    res = check({**BASE, "readiness": [{"port": 9999, "path": "/health"}]})
    assert any("add '9999/http' to ports" in f.reason for f in res.failures)


def test_check_never_echoes_a_secret_value():
    res = check({**BASE, "secret_env": {"bad key": "s3cr3t-value"}})
    assert res.failures
    assert all("s3cr3t-value" not in f.reason for f in res.failures)


def test_check_accepts_unknowns_during_preview():
    from pulumi.runtime import rpc

    res = check({**BASE, "secret_env": {"VLLM_API_KEY": rpc.UNKNOWN}})
    assert res.failures == []


def outs(**changes):
    return {**BASE, "name": "runpod-deploy-dev-olmocr-abc123", "pod_id": "p1", **changes}


@pytest.mark.parametrize("field,value", [
    ("gpu_type_ids", ["NVIDIA GeForce RTX 4090"]),
    ("gpu_count", 2),
    ("data_center_ids", ["US-TX-3"]),
    ("cloud", "COMMUNITY"),
    ("network_volume_id", "vol2"),
    ("volume_mount_path", "/data"),
])
def test_diff_replaces_on_what_v2_cannot_patch(field, value):
    news = {**outs(), field: value}
    res = PodProvider().diff("p1", outs(), news)
    assert res.changes and res.replaces == [field] and res.delete_before_replace


@pytest.mark.parametrize("field,value", [
    ("image", "runpod/pytorch:other"),
    ("env", {"A": "2"}),
    ("secret_env", {"VLLM_API_KEY": "rotated"}),
    ("ports", ["8000/http"]),
    ("start_command", ["bash", "-c", "true"]),
    ("container_disk_gb", 80),
    ("running", False),
    ("ready_timeout_s", 60),
])
def test_diff_updates_in_place_otherwise(field, value):
    res = PodProvider().diff("p1", outs(), {**outs(), field: value})
    assert res.changes and res.replaces == []


def test_diff_sees_no_change_when_nothing_changed():
    res = PodProvider().diff("p1", outs(), {k: v for k, v in outs().items() if k != "pod_id"})
    assert res.changes is False


def test_start_command_becomes_one_string_that_splits_back_to_the_same_argv():
    spec = PodSpec.model_validate({**BASE, "name": "n"})
    assert shlex.split(spec.args) == BASE["start_command"]


def test_a_ten_minute_wait_polls_at_most_30_times():
    elapsed, polls = 0.0, 0
    for d in poll_delays(initial=1.0):
        elapsed += d
        polls += 1
        if elapsed >= 600:
            break
    assert polls <= 30, polls


def test_new_pod_names_are_unique_and_never_match_another_models_prefix():
    names = {new_pod_name("rd-dev-olmocr") for _ in range(200)}
    assert len(names) == 200
    assert not is_pod_name_of("rd-dev-olmocr", "rd-dev-olmocr-2-abc123")
    assert not is_pod_name_of("rd-dev-olmocr", "rd-dev-olmocr-abcdef-xyz123")


def test_the_provider_pickles_by_reference_without_credentials():
    p = PodProvider()
    blob = dill.dumps(p, recurse=True)
    assert b"runpod_provider.pod" in blob  # by reference: the module path, not the bytecode
    clone = dill.loads(blob)
    assert isinstance(clone, PodProvider) and clone._api_key is None

