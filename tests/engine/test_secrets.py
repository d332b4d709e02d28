"""Secrets: the RunPod key, the HF token and the endpoint keys are Pulumi secrets, never in plain text
in state, the stack file or any output; set the wrong way (without --secret, malformed, misplaced),
they are refused at preview with the command that fixes them. Through the plain `pulumi` CLI against
the emulator. What reaches which process on the pod: tests/startup/."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from devkit.cli import ROOT, search_path
from tests.engine.harness import check, deploy, failing, live_ids, one_model, state_ids
from tests.engine.reliability import leaked, record

USER_KEY = "my-own-key-123-of-the-user"


def test_no_secret_in_state_or_cli_output(engine_emulator, tmp_path, monkeypatch):
    """With the team's two models, an HF token, and one model's vLLM key set by the user (it replaces
    the generated one)."""
    hf_token = "hf_" + "x7" * 17
    d = deploy(engine_emulator, tmp_path, monkeypatch, hf_token=hf_token)
    d.set_config("runpod-deploy:modelSecrets.olmocr.apiKey", USER_KEY, secret=True, path=True)
    up = d.up()
    assert up.outputs["olmocr_api_key"].value == USER_KEY
    pods = {p["id"]: p for p in engine_emulator.pods()}
    assert pods[up.outputs["olmocr_pod_id"].value]["env"]["VLLM_API_KEY"] == USER_KEY
    refresh = d.refresh()
    pod = pods[up.outputs["qwen3vl_pod_id"].value]  # the generated ones
    secrets = {
        "user-set vLLM key": USER_KEY,
        "RunPod key": engine_emulator.api_key,
        "HF token": hf_token,
        "vLLM key": pod["env"]["VLLM_API_KEY"],
        "admin password": pod["env"]["WEBUI_ADMIN_PASSWORD"],
        "WebUI secret key": pod["env"]["WEBUI_SECRET_KEY"],
    }
    assert pod["env"]["HF_TOKEN"] == hf_token  # the pod needs it: the one place it may appear
    state = d.state_text()
    texts = {"state": state, "up output": up.stdout + up.stderr, "refresh output": refresh.stdout + refresh.stderr,
             "stack file": (d.work_dir / f"Pulumi.{d.name}.yaml").read_text()}
    # Absent in clear, yet stored: decrypting the state (--show-secrets) does find them.
    decrypted = json.dumps(d.export(show_secrets=True)["deployment"])
    assert secrets["vLLM key"] in decrypted and secrets["RunPod key"] in decrypted
    destroy = d.destroy()
    texts["destroy output"] = destroy.stdout + destroy.stderr
    for what, secret in secrets.items():
        for where, text in texts.items():
            assert secret not in text, f"{what} in plain text in the {where}"
    # ...and the state does hold them, encrypted: the secret outputs are there, as ciphertext.
    assert '"4dabf18193072939515e22adb298388d"' in state
    assert engine_emulator.pods() == [] and d.resources() == []
    record("secrets", "the team's stack with an HF token and a user-set vLLM key: up, refresh, destroy",
           "no secret in plain text in the state, the stack file or any command's output; the state holds them "
           "encrypted; the user's key replaced the generated one", leaked(d, engine_emulator))


# --- secrets set the wrong way are refused ------------------------------------------------------------------
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
