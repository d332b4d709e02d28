"""Pure logic of the Pod provider: check(), diff(), change kinds, rendering, naming, polling, pickling."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import shlex
import tomllib
from itertools import islice
from pathlib import Path
from typing import Annotated

import dill
import pulumi
import pytest
from pulumi import dynamic

from runpod_provider.client import USER_AGENT
from runpod_provider.naming import is_pod_name_of, is_stack_pod, name_prefix, new_pod_name, stack_prefix
from runpod_provider.pod import OUTPUT_KEYS, Pod, PodProvider
from runpod_provider.polling import Backoff, poll_delays, poll_until
from runpod_provider.readiness import BootMark, NotReady, ReadinessWaiter, boot_is_new
from runpod_provider.spec import (
    ACTION_KEYS,
    CHANGE_KINDS,
    INPUT_KEYS,
    LOCAL_KEYS,
    PATCH_KEYS,
    REPLACE_KEYS,
    Change,
    PodArgs,
    PodSpec,
    Probe,
    change_kinds,
)
from runpod_provider.wire import PodInfo

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



# --- each fact in one place ----------------------------------------------------------------------


def test_every_spec_field_declares_exactly_one_change_kind():
    assert set(CHANGE_KINDS) == set(PodSpec.model_fields)
    assert set(INPUT_KEYS) == set(REPLACE_KEYS) | set(PATCH_KEYS) | set(ACTION_KEYS) | set(LOCAL_KEYS)


def test_a_new_spec_field_without_a_change_kind_is_refused():
    class Grown(PodSpec):
        shm_size_gb: int = 8

    with pytest.raises(TypeError, match=r"Grown.shm_size_gb declares 0 change kinds"):
        change_kinds(Grown)


def test_a_field_with_two_change_kinds_is_refused():
    class Confused(PodSpec):
        shm_size_gb: Annotated[int, Change.PATCH, Change.REPLACE] = 8

    with pytest.raises(TypeError, match=r"Confused.shm_size_gb declares 2 change kinds"):
        change_kinds(Confused)


def test_pod_args_mirror_the_spec_inputs():
    """PodArgs is the program's typed view of PodSpec: the same inputs but `name` (check() sets it),
    in the same order, required where PodSpec requires them, else None (PodSpec's default applies)."""
    args = dataclasses.fields(PodArgs)
    inputs = [k for k in PodSpec.model_fields if k != "name"]
    assert [f.name for f in args] == inputs
    assert ({f.name for f in args if f.default is dataclasses.MISSING}
            == {k for k in inputs if PodSpec.model_fields[k].is_required()})
    assert all(f.default is None for f in args if f.default is not dataclasses.MISSING)


class _Recorder(pulumi.runtime.Mocks):
    def __init__(self):
        self.inputs: dict[str, dict] = {}

    def new_resource(self, args):
        self.inputs[args.name] = {k: v for k, v in args.inputs.items() if k != "__provider"}
        return f"{args.name}-id", args.inputs

    def call(self, args):
        return {}


def test_typed_args_reach_the_engine_as_the_old_dict_did():
    """Stacks created when `Pod` took a dict must see no diff: the engine gets the same properties
    (a None one is not sent; secrets stay secret; probes as dicts)."""
    recorder = _Recorder()

    @pulumi.runtime.test
    def register():
        # As runpod_deploy/model_server.py wrote it: Outputs, secrets, and unset inputs as None.
        # Made here, on the test's event loop (an Output's futures belong to the loop it was made on).
        as_dict = {**BASE, "name_prefix": pulumi.Output.from_input(BASE["name_prefix"]),
                   "secret_env": {"VLLM_API_KEY": pulumi.Output.secret("s3cr3t-value")},
                   "min_cuda_version": None, "max_price_per_hour": None}
        typed = PodArgs(**{k: v for k, v in as_dict.items() if v is not None and k != "readiness"},
                        readiness=[Probe(**p) for p in BASE["readiness"]])
        old = Pod.__new__(Pod)  # the former Pod.__init__, with a dict
        dynamic.Resource.__init__(old, PodProvider(), "old", {"name": None, **as_dict, **dict.fromkeys(OUTPUT_KEYS)})
        return pulumi.Output.all(old.urn, Pod("typed", typed).urn)

    def with_mocks():
        # Pulumi's test runner uses the current event loop; an earlier asyncio.run() leaves none.
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            pulumi.runtime.set_mocks(recorder, preview=False)
            register()
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    contextvars.copy_context().run(with_mocks)  # Pulumi's settings are context variables: the mocks stay here
    assert recorder.inputs["typed"] == recorder.inputs["old"]
    assert "min_cuda_version" not in recorder.inputs["typed"]
    assert recorder.inputs["typed"]["secret_env"]["value"] == BASE["secret_env"]  # still wrapped as a secret


# A different valid value for each field that reaches RunPod.
OTHER = {
    "name": "runpod-deploy-dev-olmocr-zzz999",
    "image": "runpod/pytorch:other",
    "gpu_count": 2,
    "data_center_ids": ["US-TX-3"],
    "cloud": "COMMUNITY",
    "network_volume_id": "vol2",
    "volume_mount_path": "/data",
    "min_cuda_version": "12.8",
    "start_ssh": True,
    "container_disk_gb": 80,
    "ports": ["8000/http", "3000/http"],
    "env": {"A": "2"},
    "secret_env": {"VLLM_API_KEY": "rotated"},
    "start_command": ["bash", "-c", "true"],
}


def spec(**changes):
    return PodSpec.model_validate({**BASE, "name": "runpod-deploy-dev-olmocr-abc123", **changes})


@pytest.mark.parametrize("field", PATCH_KEYS)
def test_every_patch_field_reaches_the_update_body(field):
    assert spec(**{field: OTHER[field]}).update_request().to_body() != spec().update_request().to_body()


@pytest.mark.parametrize("field", [k for k in REPLACE_KEYS if k != "gpu_type_ids"])
def test_every_replace_field_reaches_the_create_body(field):
    gpu = BASE["gpu_type_ids"][0]
    assert spec(**{field: OTHER[field]}).create_request(gpu).to_body() != spec().create_request(gpu).to_body()


def test_create_body_places_the_given_gpu_and_carries_all_env():
    body = spec().create_request("NVIDIA A100 80GB PCIe").to_body()
    assert body["gpu"] == {"id": "NVIDIA A100 80GB PCIe", "count": 1}
    assert body["env"] == {"A": "1", "VLLM_API_KEY": "s3cr3t-value"}
    assert body["mounts"] == {"network": [{"volumeId": "vol1", "path": "/workspace"}]}


def test_pod_names_follow_project_stack_model():
    prefix = name_prefix("runpod-deploy", "Dev", "olmocr")
    assert prefix == "runpod-deploy-dev-olmocr"
    assert prefix.startswith(stack_prefix("runpod-deploy", "dev"))
    name = new_pod_name(prefix)
    assert is_pod_name_of(prefix, name) and is_stack_pod("runpod-deploy", "dev", name)
    assert not is_stack_pod("runpod-deploy", "prod", name)


def test_user_agent_carries_the_version_from_pyproject():
    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    assert USER_AGENT == f"runpod-deploy/{project['version']}"


# --- polling -------------------------------------------------------------------------------------


class FakeTime:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, s):
        self.sleeps.append(s)
        self.now += s


def test_poll_until_returns_the_first_answer():
    t = FakeTime()
    answers = iter([None, None, "pod"])
    got = poll_until(lambda: next(answers), timeout_s=60, delays=Backoff(1, 2).delays(), clock=t.clock, sleep=t.sleep)
    assert got == "pod" and t.sleeps == [1, 2]


def test_poll_until_gives_up_at_the_deadline_after_a_last_look_there():
    t = FakeTime()
    looks = []
    got = poll_until(lambda: looks.append(t.now), timeout_s=10, delays=Backoff(4).delays(),
                     clock=t.clock, sleep=t.sleep)
    assert got is None and looks == [0, 4, 8, 10]


def test_backoff_caps_its_delays():
    assert list(islice(Backoff(1, 2, 5).delays(), 5)) == [1, 2, 4, 5, 5]


def test_poll_scale_scales_start_and_cap(monkeypatch):
    monkeypatch.setenv("RUNPOD_DEPLOY_POLL_S", "0.1")
    delays = list(islice(poll_delays(), 12))
    assert delays[0] == pytest.approx(0.1) and max(delays) == pytest.approx(3.0)


def waiter(pods, probes=(), timeout_s=100):
    t = FakeTime()
    it = iter(pods)

    def get_pod():
        pod = next(it)
        if isinstance(pod, Exception):
            raise pod
        return PodInfo.model_validate(pod)

    return ReadinessWaiter(get_pod=get_pod, read_logs=lambda _last: [], probes=list(probes),
                           timeout_s=timeout_s, say=lambda _: None, schedule=lambda: Backoff(1).delays(),
                           clock=t.clock, sleep=t.sleep)


def test_readiness_waits_past_running_without_a_container():
    pods = [{"id": "p", "status": "STARTING"}, {"id": "p", "status": "RUNNING"},
            {"id": "p", "status": "RUNNING", "runtime": {"ports": []}}]
    w = waiter(pods)
    assert w.wait().container_up and w.polls == 3


def test_readiness_stops_when_the_pod_goes_down():
    w = waiter([{"id": "p", "status": "STARTING"}, {"id": "p", "status": "EXITED"}])
    with pytest.raises(NotReady, match="went to EXITED") as info:
        w.wait()
    assert info.value.status == "EXITED"


def test_readiness_timeout_says_what_it_still_waits_for():
    w = waiter([{"id": "p", "status": "RUNNING"}] * 10, timeout_s=3)
    with pytest.raises(NotReady, match="RUNNING with a runtime"):
        w.wait()


def test_readiness_rides_out_rate_limits_and_server_errors():
    """RunPod refusing a status poll (after the client's own retries) says nothing about the pod."""
    from runpod_provider import api_errors

    refused = [api_errors.RateLimitedError("GET", "/v2/pods/p", 429, retry_after=1),
               api_errors.ServerError("GET", "/v2/pods/p", 503),
               api_errors.TransportError("GET", "/v2/pods/p", None, detail="reset")] * 5
    up = {"id": "p", "status": "RUNNING", "runtime": {"ports": []}}
    w = waiter([{"id": "p", "status": "STARTING"}, *refused, up])
    said = []
    w.say = said.append
    assert w.wait().container_up and w.polls == 17
    # Each run of rate-limit refusals is said once (here each is one poll long: 5 runs).
    assert said == ["RunPod's rate limit (per account, every call counts) refused a status read "
                    "(retry after 1s): still waiting"] * 5


def test_readiness_that_never_gets_an_answer_says_so_at_its_deadline():
    from runpod_provider import api_errors

    w = waiter([api_errors.RateLimitedError("GET", "/v2/pods/p", 429)] * 10, timeout_s=3)
    with pytest.raises(NotReady, match="still waiting for an answer from RunPod"):
        w.wait()


def test_a_missing_pod_still_ends_the_wait():
    from runpod_provider import api_errors

    w = waiter([{"id": "p", "status": "STARTING"}, api_errors.NotFoundError("GET", "/v2/pods/p", 404)])
    with pytest.raises(api_errors.NotFoundError):
        w.wait()
# --- issue 13: a new boot after a start/PATCH, progress instead of total time -------------------
OLD_START = "2026-12-01T10:00:00Z"


def mark_of(pod: dict, at: float = 0.0, log_ids=()) -> BootMark:
    return BootMark(pod["status"], PodInfo.model_validate(pod).startedAt, at, frozenset(log_ids),
                    log_ids[-1] if log_ids else None)


def test_a_new_boot_is_proven_by_the_status_walk_startedat_or_a_short_uptime():
    before = {"id": "p", "status": "RUNNING", "startedAt": OLD_START, "runtime": {"uptime": 500}}
    mark = mark_of(before, at=0.0)
    same = PodInfo.model_validate({**before, "runtime": {"uptime": 510}})
    assert not boot_is_new(same, mark, now=10.0)  # the old container, still up
    assert not boot_is_new(PodInfo.model_validate({**before, "status": "EXITED", "runtime": None}), mark, now=10.0)
    assert boot_is_new(PodInfo.model_validate({**before, "status": "STARTING", "runtime": None}), mark, now=10.0)
    assert boot_is_new(PodInfo.model_validate({**before, "startedAt": "2026-12-01T10:09:00Z"}), mark, now=10.0)
    assert boot_is_new(PodInfo.model_validate({**before, "runtime": {"uptime": 3}}), mark, now=10.0)
    assert not boot_is_new(PodInfo.model_validate({**before, "runtime": {"uptime": 10}}), mark, now=10.0)  # rounding
    assert boot_is_new(same, None, now=0.0)  # no start/PATCH: nothing to prove


def waiter_after(pods, mark, logs=(), **kw):
    t = FakeTime()
    it, batches = iter(pods), iter(logs)
    return ReadinessWaiter(get_pod=lambda: PodInfo.model_validate(next(it)),
                           read_logs=lambda _last: next(batches, []), probes=[], timeout_s=kw.pop("timeout_s", 100),
                           say=lambda _: None, schedule=lambda: Backoff(1).delays(), clock=t.clock, sleep=t.sleep,
                           after=mark, **kw)


def test_after_a_start_exited_is_not_final_until_a_new_boot_shows():
    stopped = {"id": "p", "status": "EXITED", "startedAt": OLD_START}
    pods = [stopped, stopped, {**stopped, "status": "STARTING"},
            {**stopped, "status": "RUNNING", "startedAt": "2026-12-01T11:00:00Z", "runtime": {"uptime": 1}}]
    w = waiter_after(pods, mark_of(stopped))
    assert w.wait().container_up and w.polls == 4


def test_after_a_start_a_pod_that_never_leaves_exited_fails_after_the_grace():
    stopped = {"id": "p", "status": "EXITED", "startedAt": OLD_START}
    w = waiter_after([stopped] * 20, mark_of(stopped), boot_grace_s=5)
    with pytest.raises(NotReady, match="did not restart"):
        w.wait()


def test_the_startups_failed_line_ends_the_wait_with_its_error():
    up = {"id": "p", "status": "RUNNING", "runtime": {"ports": []}}
    logs = [[("1", "runpod-deploy phase=prepare"), ("2", "runpod-deploy error=vLLM install failed")],
            [("3", "runpod-deploy phase=failed")]]
    w = waiter_after([up] * 5, None, logs=logs)
    w.probes = [Probe(port=8000)]
    w._probe_ok = lambda *_: False
    with pytest.raises(NotReady, match="vLLM install failed"):
        w.wait()


def test_no_new_line_for_the_stall_time_fails_but_progress_keeps_the_wait_going():
    up = {"id": "p", "status": "RUNNING", "runtime": {"ports": []}}
    lines = [[(str(i), f"runpod-deploy: download {i}%")] for i in range(1, 30)]
    w = waiter_after([up] * 40, None, logs=lines, stall_s=3, timeout_s=1000)
    w.probes, w._probe_ok = [Probe(port=8000)], (lambda *_: False)
    with pytest.raises(NotReady, match="no progress for"):
        w.wait()
    assert w.polls >= 30  # 29 polls with a new line each went on past the 3 s stall time


# --- issue 20: sparse reads, repeated log ids, the pod's own boot id, slow pulls, zero GPUs -----------
def test_an_image_echoed_in_its_full_form_is_the_same_image():
    from runpod_provider.pod import same_image

    assert same_image("docker.io/runpod/pytorch:1.0", "runpod/pytorch:1.0")
    assert same_image("docker.io/library/ubuntu:latest", "ubuntu")
    assert same_image("index.docker.io/library/ubuntu:22.04", "ubuntu:22.04")
    assert not same_image("runpod/pytorch:1.0", "runpod/pytorch:1.1")
    assert not same_image("ghcr.io/x/y:1", "x/y:1")


def test_a_pod_answer_without_env_or_ports_means_unknown_not_empty():
    pod = PodInfo.model_validate({"id": "p", "env": None})
    assert pod.env is None and pod.ports is None


def test_two_lines_sharing_a_one_second_id_both_count_and_a_resent_second_is_dropped():
    up = {"id": "p", "status": "RUNNING", "runtime": {"ports": []}}
    sec = "2026-12-06T20:00:01Z"
    logs = [[(sec, "runpod-deploy phase=install-vllm"), (sec, "runpod-deploy error=vLLM install failed"),
             (sec, "runpod-deploy phase=failed")]]
    w = waiter_after([up] * 5, None, logs=logs)
    w.probes, w._probe_ok = [Probe(port=8000)], (lambda *_: False)
    with pytest.raises(NotReady, match="vLLM install failed"):
        w.wait()
    assert w.polls == 1
    # The same second sent again (a resume from a one-second id) is no progress.
    lines = [[(sec, "a"), (sec, "a")], [(sec, "a"), (sec, "a")], [(sec, "a"), (sec, "a")], [], [], [], [], []]
    w = waiter_after([up] * 20, None, logs=lines, stall_s=3)
    w.probes, w._probe_ok = [Probe(port=8000)], (lambda *_: False)
    with pytest.raises(NotReady, match="no progress"):
        w.wait()
    assert w.polls <= 6


def test_a_new_boot_id_in_the_log_proves_the_new_boot_when_runpods_fields_do_not():
    """An opaque reset: RUNNING throughout, startedAt unchanged, uptime still the old one's."""
    before = {"id": "p", "status": "RUNNING", "startedAt": OLD_START, "runtime": {"uptime": 500, "ports": []}}
    mark = BootMark.before(PodInfo.model_validate(before), [("1", "runpod-deploy boot=aaaa"), ("2", "x")],
                           clock=lambda: 0.0)
    assert mark.boot_id == "aaaa"
    pods = [{**before, "runtime": None}] * 3 + [{**before, "runtime": {"uptime": 510, "ports": []}}] * 3
    logs = [[("1", "runpod-deploy boot=aaaa"), ("2", "x")], [("3", "runpod-deploy boot=bbbb")]]
    w = waiter_after(pods, mark, logs=logs)
    assert w.wait().container_up and w.polls == 4  # boot id at poll 2; runtime back at poll 4
    # Without the new boot id, the same pod never proves a new boot.
    w = waiter_after([{**before, "runtime": {"uptime": 510, "ports": []}}] * 20, mark, boot_grace_s=5)
    with pytest.raises(NotReady, match="did not restart"):
        w.wait()


def test_the_old_containers_failed_line_before_the_new_boot_does_not_end_the_wait():
    before = {"id": "p", "status": "RUNNING", "startedAt": OLD_START, "runtime": {"uptime": 500, "ports": []}}
    mark = BootMark.before(PodInfo.model_validate(before), [("1", "runpod-deploy boot=aaaa")], clock=lambda: 0.0)
    logs = [[("2", "runpod-deploy error=old"), ("3", "runpod-deploy phase=failed")],
            [("4", "runpod-deploy boot=cccc")]]
    w = waiter_after([{**before, "runtime": None}] * 3 + [{**before, "runtime": {"uptime": 1, "ports": []}}],
                     mark, logs=logs)
    assert w.wait().container_up


def test_system_lines_during_provisioning_are_progress():
    prov = {"id": "p", "status": "PROVISIONING"}
    up = {"id": "p", "status": "RUNNING", "runtime": {"ports": []}}
    pulls = [[(str(i), f"Pulling fs layer {i}")] for i in range(1, 12)]
    w = waiter_after([prov] * 11 + [up], None, logs=pulls, stall_s=3, timeout_s=1000)
    assert w.wait().container_up and w.polls == 12


def test_a_start_that_comes_up_without_its_gpu_is_told_apart():
    from runpod_provider.readiness import ZeroGpus

    zero = {"id": "p", "status": "RUNNING", "gpu": {"id": "NVIDIA L40S", "count": 0}}
    w = waiter_after([zero] * 3, None, gpus=1)
    with pytest.raises(ZeroGpus) as e:
        w.wait()
    assert e.value.count == 0


def test_a_provider_side_input_new_since_the_state_was_written_is_no_change_at_its_default():
    olds = {"name_prefix": "a", "image": "x", "running": True, "status": "RUNNING"}
    news = {"name_prefix": "a", "image": "x", "running": True, "wake_without_gpu": "replace"}
    assert not PodProvider().diff("i", olds, news).changes
    assert PodProvider().diff("i", olds, {**news, "wake_without_gpu": "fail"}).changes
    assert PodProvider().diff("i", {**olds, "status": "ERROR"}, news).replaces == ["status"]
