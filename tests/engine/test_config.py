"""Config: bad configuration is rejected at `preview`, with a message naming the key and the fix, and the
emulator records no create, update or delete. The README's reliability table lists these cases."""

from __future__ import annotations

import re
import shlex

import pytest

from devkit.cli import CommandError
from tests.engine.harness import deploy, dev_models
from tests.engine.reliability import record, record_rejection


def model_change(**kw):
    models = dev_models()
    models["olmocr"].update(kw)
    return {"models": models}


def profile_change(**kw):
    models = dev_models()
    models["olmocr"]["gpuProfiles"]["default"].update(kw)
    return {"models": models}


def qwen_served_as_olmocr():
    models = dev_models()
    models["qwen3vl"]["servedModelName"] = "olmocr"
    return {"models": models}


def renamed(models_key: str):
    models = dev_models()
    models[models_key] = models.pop("olmocr")
    return {"models": models}


# (case id, config overrides, deploy kwargs, substrings the error must contain: the key, then the fix)
CASES = [
    ("unknown GPU type id", {"gpuTypes": ["NVIDIA L40S 48GB", "NVIDIA A100 80GB PCIe"]}, {},
     ["runpod-deploy:gpuTypes", "'NVIDIA L40S 48GB' is not a RunPod GPU type id"]),
    ("GPU type id in a model override", model_change(gpuTypes=["RTX 4090"]), {},
     ["runpod-deploy:models.olmocr.gpuTypes", "not a RunPod GPU type id"]),
    ("unknown data center", {"dataCenter": "EU-XX-9"}, {},
     ["runpod-deploy:networkVolumeId", "not in dataCenter EU-XX-9"]),
    ("malformed data center", {"dataCenter": "eu-ro-1"}, {},
     ["runpod-deploy:dataCenter", "should match pattern"]),
    ("network volume in another data center", {"networkVolumeId": "usvol0001"}, {},
     ["runpod-deploy:networkVolumeId", "is in US-TX-3", "set dataCenter to US-TX-3"]),
    ("network volume missing", {"networkVolumeId": "novolume42"}, {},
     ["runpod-deploy:networkVolumeId", "no network volume 'novolume42'"]),
    ("negative disk", {"containerDiskGb": -5}, {},
     ["runpod-deploy:containerDiskGb", "greater than or equal to 10"]),
    ("zero disk", {"containerDiskGb": 0}, {},
     ["runpod-deploy:containerDiskGb", "greater than or equal to 10"]),
    ("port without protocol", model_change(extraPorts=["8888"]), {},
     ["runpod-deploy:models.olmocr.extraPorts.0", "should match pattern"]),
    ("two models with one served name", qwen_served_as_olmocr(), {},
     ["runpod-deploy:models", "servedModelName ['olmocr'] is used by more than one model"]),
    ("model name not usable in a pod name", renamed("OLMOCR_7b"), {},
     ["runpod-deploy:models", "must be lowercase letters"]),
    ("model name longer than a pod name allows", renamed("olmocr-" + "x" * 33), {},
     ["runpod-deploy:models", "is 40 characters; the maximum is 31"]),
    ("stack name with characters a pod name cannot hold", {}, {"name": "dev_gpu"},
     ["stack name 'dev_gpu-", "holds '_'", "pulumi stack rename"]),
    ("stack name too long for a pod name", {}, {"name": "s" * 80},
     ["stack name 'sss", "at most 74 fit in a pod name", "pulumi stack rename"]),
    ("--api-key in vllmArgs", model_change(vllmArgs=["--api-key", "my-own-key"]), {},
     ["runpod-deploy:models.olmocr.vllmArgs: `--api-key` is the program's to set", "modelSecrets.olmocr.apiKey"]),
    ("--port in a GPU profile's extraArgs", profile_change(extraArgs=["--port", "8001"]), {},
     ["runpod-deploy:models.olmocr.gpuProfiles.default.extraArgs: `--port` is the program's to set", "port 8000"]),
    ("--host in vllmArgs", model_change(vllmArgs=["--host=127.0.0.1"]), {},
     ["runpod-deploy:models.olmocr.vllmArgs: `--host` is the program's to set", "0.0.0.0"]),
    ("JSON vLLM flag whose value is not JSON", profile_change(extraArgs=["--limit-mm-per-prompt", "{video: 0}"]), {},
     ["runpod-deploy:models.olmocr.gpuProfiles.default.extraArgs: `--limit-mm-per-prompt` takes JSON",
      "double quotes"]),
    ("extra port above 65535", model_change(extraPorts=["70000/tcp"]), {},
     ["runpod-deploy:models.olmocr.extraPorts", "outside 1–65535"]),
    ("extra port the program already uses", model_change(extraPorts=["3000/tcp"]), {},
     ["runpod-deploy:models.olmocr.extraPorts", "already used by the program (Open WebUI)"]),
    ("empty model id", model_change(modelId=""), {},
     ["runpod-deploy:models.olmocr.modelId", "should match pattern"]),
    ("malformed model id", model_change(modelId="olmocr-7b"), {},
     ["runpod-deploy:models.olmocr.modelId", "should match pattern"]),
    ("missing RunPod key", {}, {"set_key": False},
     ["runpod:apiKey: no RunPod API key", "pulumi config set --secret runpod:apiKey"]),
    ("RunPod key refused", {}, {"api_key": "rpa_not_a_key_the_api_knows"},
     ["runpod:apiKey: RunPod refused the key", "pulumi config set --secret runpod:apiKey"]),
    ("missing HF token for a gated model", model_change(needsHfToken=True), {},
     ["runpod-deploy:hfToken", "need a HuggingFace token", "pulumi config set --secret runpod-deploy:hfToken"]),
    ("GPU count 0", model_change(gpuCount=0), {},
     ["runpod-deploy:models.olmocr.gpuCount", "greater than or equal to 1"]),
    ("readiness timeout 0", {"readyTimeoutSeconds": 0}, {},
     ["runpod-deploy:readyTimeoutSeconds", "greater than 0"]),
    ("non-boolean running", model_change(running="yes"), {},
     ["runpod-deploy:models.olmocr.running", "must be true or false (got 'yes')"]),
    ("boolean written in quotes", model_change(running="false"), {},
     ["runpod-deploy:models.olmocr.running", "without quotes"]),
    ("a string where a list goes", model_change(vllmArgs="--max-num-seqs 64"), {},
     ["runpod-deploy:models.olmocr.vllmArgs", "must be a list"]),
    ("a fraction where an integer goes", model_change(gpuCount=1.5), {},
     ["runpod-deploy:models.olmocr.gpuCount", "must be a whole number (got 1.5)"]),
    ("misspelt model setting", model_change(modleId="x/y"), {},
     ["runpod-deploy:models.olmocr.modleId", "unknown setting"]),
    ("empty GPU list", {"gpuTypes": []}, {},
     ["runpod-deploy:gpuTypes", "at least 1 item"]),
    ("GPU listed twice", {"gpuTypes": ["NVIDIA L40S", "NVIDIA L40S"]}, {},
     ["runpod-deploy:gpuTypes", "lists a GPU type twice"]),
    ("unknown cloud", {"cloud": "ALL"}, {},
     ["runpod-deploy:cloud", "'SECURE' or 'COMMUNITY'"]),
    ("GPU profile key that is no GPU id", model_change(gpuProfiles={"L40S": {"maxModelLen": 8192}}), {},
     ["runpod-deploy:models.olmocr.gpuProfiles", "neither 'default' nor a GPU type id"]),
    ("GPU memory fraction above 1", profile_change(gpuMemoryUtilization=1.5), {},
     ["runpod-deploy:models.olmocr.gpuProfiles.default.gpuMemoryUtilization", "less than or equal to 0.99"]),
    ("context length 0", profile_change(maxModelLen=0), {},
     ["runpod-deploy:models.olmocr.gpuProfiles.default.maxModelLen", "greater than or equal to 256"]),
    ("no models", {"models": {}}, {},
     ["runpod-deploy:models", "at least 1 item"]),
    ("relative local dir", model_change(localDir="models/olmocr-7b"), {},
     ["runpod-deploy:models.olmocr.localDir", "should match pattern"]),
    ("empty image", {"image": ""}, {},
     ["runpod-deploy:image", "at least 1 character"]),
    ("price ceiling below every GPU of the stack", {"maxPricePerHour": 0.5}, {},
     ["runpod-deploy:maxPricePerHour", "$0.5/h is below the SECURE price of every GPU type model 'olmocr'",
      "NVIDIA L40S $0.86/h", "NVIDIA GeForce RTX 4090 $0.69/h", "raise it to at least 0.69"]),
    ("price ceiling of one model below its GPUs", model_change(maxPricePerHour=0.6), {},
     ["runpod-deploy:models.olmocr.maxPricePerHour", "below the SECURE price of every GPU type model 'olmocr'"]),
    ("negative price ceiling", {"maxPricePerHour": -1}, {},
     ["runpod-deploy:maxPricePerHour", "greater than 0"]),
    ("idle stop after 0 minutes", model_change(idleStopMinutes=0), {},
     ["runpod-deploy:models.olmocr.idleStopMinutes", "greater than or equal to 1"]),
]


@pytest.mark.parametrize("config,kwargs,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_config_is_rejected_at_preview_before_any_pod(engine_emulator, tmp_path, monkeypatch, config, kwargs,
                                                          expected, request):
    d = deploy(engine_emulator, tmp_path, monkeypatch, **kwargs)
    d.write_config({**d.config, **config})
    with pytest.raises(CommandError) as e:
        d.preview()
    msg = str(e.value)
    for part in expected:
        assert part in msg, f"{part!r} not in:\n{msg[-2000:]}"
    assert "Traceback" not in msg  # a message, not a crash
    assert engine_emulator.api_key not in msg  # errors never echo the key, even a model-level one
    assert "my-own-key" not in msg  # nor a key given as a vLLM flag
    assert [r for r in engine_emulator.requests if r["method"] in ("POST", "PATCH", "DELETE")] == []
    assert engine_emulator.pods() == []
    record_rejection(request.node.callspec.id, msg, expected, d, engine_emulator)  # docs/reliability.md


def test_the_printed_fix_for_a_missing_nested_key_works_as_printed(engine_emulator, tmp_path, monkeypatch):
    """The message gives a `pulumi config set --path …` command: run it (with the value in place of
    `<value>`), and the next preview passes."""
    models = dev_models()
    model_id = models["olmocr"].pop("modelId")
    d = deploy(engine_emulator, tmp_path, monkeypatch, models=models)
    with pytest.raises(CommandError) as e:
        d.preview()
    [command] = re.findall(r"set it with `(pulumi config set --path '[^`]+' <value>)`", str(e.value))
    assert command == "pulumi config set --path 'runpod-deploy:models.olmocr.modelId' <value>"
    d.pulumi(*shlex.split(command.replace("<value>", model_id))[1:])
    d.preview()
    record_rejection("missing model key (its printed `--path` fix run as printed, then preview passes)",
                     str(e.value), ["runpod-deploy:models.olmocr.modelId"], d, engine_emulator)


def test_the_table_has_at_least_twenty_cases():
    assert len(CASES) >= 20


def test_the_seeds_env_keys_stand_in_for_unset_config(engine_emulator, tmp_path, monkeypatch):
    d = deploy(engine_emulator, tmp_path, monkeypatch, set_key=False)
    d.write_config({"models": dev_models()})  # no dataCenter, no networkVolumeId, no key in the stack
    for k, v in {"RUNPOD_API_KEY": engine_emulator.api_key, "NETWORK_VOLUME_ID": "fuzzvol01eu",
                 "PREFERRED_DATACENTER": "EU-RO-1"}.items():
        monkeypatch.setenv(k, v)
    preview = d.preview()
    assert preview.changes.get("create", 0) >= 2
    # and a wrong PREFERRED_DATACENTER is really read: the volume check now refuses it
    monkeypatch.setenv("PREFERRED_DATACENTER", "US-TX-3")
    with pytest.raises(CommandError) as e:
        d.preview()
    assert "not in dataCenter US-TX-3" in str(e.value)
    record("config", "config unset in the stack, the seed's env keys set (RUNPOD_API_KEY, NETWORK_VOLUME_ID, "
           "PREFERRED_DATACENTER)", "`preview` used them (a wrong PREFERRED_DATACENTER is refused by the volume "
           "check, naming it)", 0)
