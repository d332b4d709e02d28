"""Issue 14: every failure ends with one line that says what RunPod did, what it means for the pods,
and what to run next; secrets set the wrong way are refused; transient faults do not cost a pod;
Ctrl-C leaves nothing billing outside state.

Each table row runs the real `pulumi` CLI on the real program against the emulator and checks: the
output names the cause and the fix, holds no Python traceback and no secret, the pods alive on the
emulator are exactly the stack's, and a teammate's pod on the same account (another stack) got no
request at all. With env RELIABILITY_REPORT each row adds the line it printed to docs/reliability.md.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from devkit.cli import ROOT, CommandError, search_path
from runpod_provider.client import RunPodClient
from runpod_provider.wire import CreatePodRequest, GpuRequest
from tests.engine.harness import deploy, dev_models
from tests.engine.reliability import record

SECTION = "failures"
POD_PATH = r"/v2/pods/[a-z0-9]+$"
TEAMMATE_POD = "runpod-deploy-teammate-olmocr-q7x2k9"  # another stack's pod, same RunPod account


def one_model(**overrides) -> dict:
    m = dev_models()["olmocr"]
    m.update(overrides)
    return {"olmocr": m}


@pytest.fixture
def teammate(engine_emulator) -> str:
    """A pod of another stack on the same account, created before the test: nothing may touch it."""
    emu = engine_emulator
    with RunPodClient(emu.api_key, emu.api_url) as c:
        pod = c.create_pod(CreatePodRequest(name=TEAMMATE_POD, image="runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404",
                                            gpu=GpuRequest(id="NVIDIA L40S", count=1), dataCenterIds=["EU-RO-1"]))
    return pod.id


def state_ids(st) -> set[str]:
    return {r["id"] for r in st.resources()}


def live_ids(emu, teammate: str) -> set[str]:
    return {p["id"] for p in emu.pods()} - {teammate}


def the_line(out: str, marker: str) -> str:
    """The output line holding `marker`, without the CLI's `error: ` prefix."""
    lines = [ln.strip() for ln in out.splitlines() if marker in ln]
    assert lines, f"{marker!r} not in:\n{out[-3000:]}"
    return lines[-1].removeprefix("error: ").removeprefix("- ")


def check(emu, st, out: str, must: list[str], teammate: str, secrets: list[str]) -> str:
    """The row's assertions; returns the line the user reads."""
    for part in must:
        assert part in out, f"{part!r} not in:\n{out[-3000:]}"
    assert "Traceback" not in out, out[-3000:]
    for s in secrets:
        assert s not in out, "a secret was echoed"
    assert live_ids(emu, teammate) == state_ids(st), "pods alive outside state, or state naming gone pods"
    assert teammate in {p["id"] for p in emu.pods()}
    assert not [r for r in emu.requests if teammate in r["path"]], "the teammate's pod was touched"
    return the_line(out, must[0])


def failing(run: Callable[[], object]) -> str:
    with pytest.raises(CommandError) as e:
        run()
    return e.value.stdout + e.value.stderr


def background_up(st) -> subprocess.Popen:
    """`pulumi up` as devkit runs it, but not waited for (to act while it runs)."""
    env = {**os.environ, **st.project.env}
    env["PATH"] = search_path(env.get("PATH", ""))
    return subprocess.Popen(["pulumi", "up", "--yes", "--skip-preview", "--color", "never", "--stack", st.name],
                            cwd=st.work_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_until_polled(emu, proc) -> str:
    """The id of the pod the running `up` created, once its readiness wait is polling it."""
    deadline = time.monotonic() + 300
    while True:
        polled = [r["path"].rsplit("/", 1)[1] for r in emu.requests
                  if r["method"] == "GET" and re.fullmatch(POD_PATH, r["path"])]
        ours = [p for p in polled if p in {x["id"] for x in emu.pods()}] or polled
        if ours:
            return ours[0]
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "the create never started"
        time.sleep(0.2)


# --- §1: one clear line, never a traceback ---------------------------------------------------------
@dataclass
class Case:
    name: str
    act: Callable  # (emu, st) -> the output of the failing command
    must: list[str]  # the cause first (its line is the one recorded), then the fix
    deployed: bool = False  # `up` first (for destroy-time faults)
    fix: Callable | None = None  # (emu, st) -> None: follow the printed fix; it must work
    destroy_args: tuple = ()  # how the printed fix says to run `destroy` again


def unreachable(emu, st):
    st.project.env["RUNPOD_API_URL"] = "http://127.0.0.1:9/v2"  # the discard port: nothing listens
    return failing(st.preview)


def volume_403(emu, st):
    emu.inject(kind="status", status=403, method="GET", path="/v2/network-volumes", count=None,
               detail="this key has no access to network volumes")
    return failing(st.preview)


def catalog(status):
    def act(emu, st):
        emu.inject(kind="status", status=status, method="GET", path="/v2/catalog", count=None)
        return failing(st.preview)
    return act


def create_429_hour(emu, st):
    emu.inject(kind="status", status=429, retry_after=3600, method="POST", path="/v2/pods$")
    return failing(st.up)


def key_revoked(emu, st):
    emu.api_keys = ("rpa_" + "0" * 32,)  # the key in the stack's config is revoked
    return failing(st.destroy)


def set_new_key(emu, st):
    st.set_config("runpod:apiKey", emu.api_keys[0], secret=True)


def deleted_while_waiting(emu, st):
    emu.set_service(ready=False)
    proc = background_up(st)
    pod_id = wait_until_polled(emu, proc)
    emu.delete_pod_out_of_band(pod_id)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode != 0
    return out


def delete_fault(**fault):
    def act(emu, st):
        emu.inject(method="DELETE", path="/v2/pods/", count=None, **fault)
        return failing(st.destroy)
    return act


def clear_faults(emu, st):
    emu.faults.clear()


CASES = [
    Case("RunPod unreachable at preview", unreachable,
         ["RunPod could not be reached", "no pod was created", "check the network connection", "pulumi preview"]),
    Case("403 on the network-volume lookup (a key without volume access)", volume_403,
         ["runpod-deploy:networkVolumeId: RunPod refused", "403", "no pod was created",
          "pulumi config set --secret runpod:apiKey"]),
    Case("GPU catalog answers 429 to every retry at preview", catalog(429),
         ["RunPod rate-limited the request (429", "no pod was created", "pulumi preview"]),
    Case("GPU catalog answers 500 to every retry at preview", catalog(500),
         ["RunPod failed on its side (500", "no pod was created", "pulumi preview"]),
    Case("create answered 429 with Retry-After: 3600 (an hour window)", create_429_hour,
         ["RunPod rate-limited the request (429, retry after 1 h)", "no pod was created", "wait 1 h",
          "pulumi up"]),
    Case("RunPod key revoked before `destroy`", key_revoked,
         ["RunPod refused the API key (403", "still in the stack's state", "pulumi config set --secret runpod:apiKey",
          "`pulumi destroy --run-program --refresh=false`"], deployed=True, fix=set_new_key,
         destroy_args=("--run-program", "--refresh=false")),
    Case("pod deleted in the console while `up` waits for it", deleted_while_waiting,
         ["disappeared while `pulumi up` waited", "nothing of it is in state or billing", "run `pulumi up`"]),
    Case("DELETE answered 409 (locked pod) during `destroy`", delete_fault(kind="status", status=409,
                                                                             detail="pod is locked"),
         ["RunPod refused the action (409: pod is locked)", "still in the stack's state", "pulumi destroy"],
         deployed=True, fix=clear_faults),
    Case("DELETE unreachable (connection dropped) during `destroy`", delete_fault(kind="drop"),
         ["RunPod could not be reached", "still in the stack's state", "pulumi destroy"],
         deployed=True, fix=clear_faults),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_failure_says_what_happened_and_what_to_do(engine_emulator, tmp_path, monkeypatch, teammate, case):
    emu = engine_emulator
    st = deploy(emu, tmp_path, monkeypatch, models=one_model(), extra={"readyTimeoutSeconds": 600})
    if case.deployed:
        st.up()
        assert len(state_ids(st)) == 1
    out = case.act(emu, st)
    line = check(emu, st, out, case.must, teammate, [emu.api_key])
    if case.fix:  # the printed fix works as printed
        case.fix(emu, st)
        st.destroy(*case.destroy_args)
        assert state_ids(st) == set() and live_ids(emu, teammate) == set()
    record(SECTION, case.name, f"one line: {line}", len(live_ids(emu, teammate) - state_ids(st)))


# --- §5: Ctrl-C ------------------------------------------------------------------------------------
def test_ctrl_c_during_a_create_deletes_the_pod_before_the_prompt_returns(engine_emulator, tmp_path, monkeypatch,
                                                                          teammate):
    emu = engine_emulator
    emu.set_service(ready=False)  # the create is surely mid-wait when interrupted
    st = deploy(emu, tmp_path, monkeypatch, models={m: dev_models()[m] for m in ("olmocr", "qwen3vl")},
                extra={"readyTimeoutSeconds": 900})
    proc = background_up(st)
    wait_until_polled(emu, proc)
    while len(live_ids(emu, teammate)) < 2:  # both creates under way
        time.sleep(0.1)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends the CLI (plugins run in their own process groups)
    out, _ = proc.communicate(timeout=300)
    took = time.monotonic() - started
    assert proc.returncode != 0
    # When the prompt returns, nothing bills outside state: both pods were deleted, none is in state.
    assert live_ids(emu, teammate) == set() and state_ids(st) == set()
    line = check(emu, st, out, ["interrupted (Ctrl-C)", "was deleted", "run `pulumi up`"], teammate, [emu.api_key])
    assert "interrupted: deleting pod" in out and "make pods" in out  # said while it cleans up
    record(SECTION, "Ctrl-C (SIGINT to `pulumi up`) while two pods are being created",
           f"the waits stop at once, both pods are deleted before the CLI exits ({took:.0f} s); one line per pod: "
           f"{line}", len(live_ids(emu, teammate) - state_ids(st)))


# --- §4: transient faults are not the pod's fault ---------------------------------------------------
def test_rate_limits_during_the_readiness_wait_are_ridden_out(engine_emulator, tmp_path, monkeypatch, teammate):
    emu = engine_emulator
    st = deploy(emu, tmp_path, monkeypatch, models=one_model())
    emu.inject(kind="status", status=429, retry_after=1, method="GET", path=POD_PATH, count=24)
    emu.inject(kind="status", status=503, method="GET", path=POD_PATH, count=6)
    up = st.up()
    assert emu.faults.pending() == []
    [pod] = [p for p in emu.pods() if p["id"] != teammate]
    assert up.outputs["olmocr_pod_id"].value == pod["id"] and pod["status"] == "RUNNING"
    assert [r for r in emu.requests if r["method"] == "DELETE"] == []
    check(emu, st, up.stdout, ["ready after"], teammate, [emu.api_key])
    record(SECTION, "24 x 429 and 6 x 503 on the pod reads of the readiness wait",
           "`up` succeeded with the same pod: RunPod's refusals are 'not yet', within the wait's own deadline; "
           "no pod deleted", len(live_ids(emu, teammate) - state_ids(st)))


def test_a_start_answered_500_after_it_took_effect_goes_on(engine_emulator, tmp_path, monkeypatch, teammate):
    emu = engine_emulator
    st = deploy(emu, tmp_path, monkeypatch, models=one_model(running=False))
    st.up()
    [pod_id] = state_ids(st)
    st.write_config({**st.config, "models": one_model(running=True)})
    emu.inject(kind="after_effect", status=500, method="POST", path=f"/v2/pods/{pod_id}/action")
    up = st.up()
    assert emu.faults.pending() == []
    [pod] = [p for p in emu.pods() if p["id"] != teammate]
    assert pod["id"] == pod_id and pod["status"] == "RUNNING"
    [r] = st.resources()
    assert r["outputs"]["running"] is True
    assert "answered 500, but the pod is" in up.stdout
    check(emu, st, up.stdout, ["answered 500, but the pod is"], teammate, [emu.api_key])
    record(SECTION, "start of a stopped pod answered 500 after it took effect",
           "`up` read the pod, saw it starting, and waited for it: same pod, running, in state (no 'replace the "
           "pod')", len(live_ids(emu, teammate) - state_ids(st)))


# --- §2: secrets set the wrong way ------------------------------------------------------------------
HF_TOKEN = "hf_" + "q" * 34
MODEL_KEY = "my-own-vllm-key-9f8e7d6c"


@dataclass
class SecretCase:
    name: str
    set_up: Callable  # (emu, st) -> None: sets the config the wrong way
    must: list[str]
    fixable: bool = False  # the message's backquoted command(s) fix it as printed
    env: dict | None = None


def plain(key, value, path=False):
    return lambda emu, st: st.set_config(key, value(emu) if callable(value) else value, secret=False, path=path)


def both_model_secrets_one_plain(emu, st):
    st.set_config("runpod-deploy:modelSecrets.olmocr.apiKey", MODEL_KEY, secret=True, path=True)
    st.set_config("runpod-deploy:modelSecrets.olmocr.webuiAdminPassword", "hunter2-hunter2", secret=False, path=True)


def secret_at(key):
    return lambda emu, st: st.set_config(key, MODEL_KEY, secret=True, path=True)


def key_with(char):
    return lambda emu, st: st.set_config("runpod:apiKey", emu.api_key[:12] + char + emu.api_key[12:], secret=True)


SECRET_CASES = [
    SecretCase("RunPod key set without --secret", plain("runpod:apiKey", lambda emu: emu.api_key),
               ["runpod:apiKey: set without --secret",
                '`pulumi config set --secret runpod:apiKey "$(pulumi config get runpod:apiKey)"`'], fixable=True),
    SecretCase("HF token set without --secret", plain("runpod-deploy:hfToken", HF_TOKEN),
               ["runpod-deploy:hfToken: set without --secret", "pulumi config set --secret runpod-deploy:hfToken"],
               fixable=True),
    SecretCase("a model's vLLM key set without --secret",
               plain("runpod-deploy:modelSecrets.olmocr.apiKey", MODEL_KEY, path=True),
               ["runpod-deploy:modelSecrets.olmocr.apiKey: set without --secret",
                "pulumi config set --secret --path 'runpod-deploy:modelSecrets.olmocr.apiKey'"], fixable=True),
    SecretCase("one model secret with --secret, the other without", both_model_secrets_one_plain,
               ["runpod-deploy:modelSecrets.olmocr.webuiAdminPassword: set without --secret"], fixable=True),
    SecretCase("RunPod key with a line break inside (config)", key_with("\n"),
               ["the RunPod API key in runpod:apiKey (stack config) contains a line break",
                "pulumi config set --secret runpod:apiKey <key>"]),
    SecretCase("RunPod key with an invisible character (env RUNPOD_API_KEY)", lambda emu, st: None,
               ["the RunPod API key in RUNPOD_API_KEY (environment) contains an invisible or non-ASCII character",
                "export RUNPOD_API_KEY=<key>"], env={"RUNPOD_API_KEY": "zero-width"}),
    SecretCase("modelSecrets for a model that does not exist", secret_at("runpod-deploy:modelSecrets.olmoc.apiKey"),
               ["runpod-deploy:modelSecrets.olmoc: no model 'olmoc'", "fix the model name"]),
    SecretCase("unknown field under modelSecrets", secret_at("runpod-deploy:modelSecrets.olmocr.apikey"),
               ["runpod-deploy:modelSecrets.olmocr.apikey: unknown setting", "apiKey and webuiAdminPassword"]),
]


@pytest.mark.parametrize("case", SECRET_CASES, ids=[c.name for c in SECRET_CASES])
def test_secrets_set_the_wrong_way_are_refused_at_preview(engine_emulator, tmp_path, monkeypatch, teammate, case):
    emu = engine_emulator
    env = None
    if case.env:  # the key from the environment, with a zero-width space inside
        env = {"RUNPOD_API_KEY": emu.api_key[:12] + "\u200b" + emu.api_key[12:]}
    st = deploy(emu, tmp_path, monkeypatch, models=one_model(), set_key=env is None, env=env)
    case.set_up(emu, st)
    before = len(emu.requests)
    out = failing(st.preview)
    secrets = [emu.api_key, HF_TOKEN, MODEL_KEY, "hunter2-hunter2"]
    line = check(emu, st, out, case.must, teammate, secrets)
    assert [r for r in emu.requests[before:] if r["method"] in ("POST", "PATCH", "DELETE")] == []
    if case.fixable:  # run the printed commands as printed (in the project, on the selected stack)
        for command in re.findall(r"`(pulumi config set --secret [^`]+)`", out):
            env = {**os.environ, **st.project.env, "PATH": search_path()}
            subprocess.run(["bash", "-c", command], cwd=st.work_dir, env=env, check=True, capture_output=True)
        st.preview()
        assert not any(s in st.config_file.read_text() for s in secrets)
    record("secrets", case.name, f"refused at `preview`, nothing created: {line}",
           len(live_ids(emu, teammate) - state_ids(st)))


def test_make_pods_with_a_malformed_key_names_the_source_and_hides_the_key(engine_emulator, tmp_path):
    emu = engine_emulator
    bad = emu.api_key[:12] + "\n" + emu.api_key[12:]
    env = {**os.environ, "RUNPOD_API_KEY": bad, "RUNPOD_API_URL": emu.api_url, "PATH": search_path()}
    res = subprocess.run([sys.executable, "-m", "runpod_deploy.run", "pods", "--stack", "nosuchstack",
                          "--work-dir", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "Traceback" not in out
    assert emu.api_key[:12] not in out and emu.api_key[12:] not in out
    assert "RUNPOD_API_KEY (environment) contains a line break" in out
