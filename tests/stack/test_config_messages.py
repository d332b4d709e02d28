"""Config messages that work when followed (issue 14 §2, §6), without the engine: each names the key,
says the real limit, and gives a command that fixes it; none echoes a secret. The engine tests
(tests/engine/test_config.py, test_secrets.py, test_failures.py) run the same checks through the CLI."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from runpod_deploy import config, messages
from runpod_provider import api_errors
from runpod_provider.keys import ApiKeyError, check_api_key, find_api_key
from runpod_provider.provider_errors import RunPodFailed

ROOT = Path(__file__).resolve().parents[2]
DEV = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
SECRET = "rpa_S3CRETS3CRETS3CRET"


def problems(values: dict, *, stack: str = "dev", env: dict | None = None, is_secret=None,
             stack_file: Path | None = None) -> list[str]:
    raw = {**DEV, "runpod:apiKey": SECRET, **values}

    def get(key):
        v = raw.get(key)
        return json.dumps(v) if v is not None and not isinstance(v, str) else v

    with pytest.raises(config.ConfigError) as e:
        config.load(get, "runpod-deploy", stack, env=env or {}, is_secret=is_secret, stack_file=stack_file)
    assert SECRET not in str(e.value)
    return e.value.problems


def models(**olmocr) -> dict:
    m = copy.deepcopy(DEV["runpod-deploy:models"])
    m["olmocr"].update(olmocr)
    return {"runpod-deploy:models": m}


def test_a_missing_nested_key_gets_a_command_with_path():
    m = models()
    del m["runpod-deploy:models"]["olmocr"]["modelId"]
    [p] = problems(m)
    assert p == ("runpod-deploy:models.olmocr.modelId: required; set it with "
                 "`pulumi config set --path 'runpod-deploy:models.olmocr.modelId' <value>`")


def test_a_gpu_id_in_a_path_is_bracketed():
    path = """'runpod-deploy:models.olmocr.gpuProfiles["NVIDIA L40S"].maxModelLen'"""
    assert (messages.set_command(["models", "olmocr", "gpuProfiles", "NVIDIA L40S", "maxModelLen"])
            == f"pulumi config set --path {path} <value>")
    assert messages.set_command(["dataCenter"]) == "pulumi config set runpod-deploy:dataCenter <value>"


@pytest.mark.parametrize("value,quotes", [("true", True), ("yes", False), (1, False)])
def test_without_quotes_only_when_quotes_are_the_problem(value, quotes):
    [p] = problems(models(running=value))
    assert ("without quotes" in p) is quotes, p
    assert "true or false" in p or "without quotes" in p


def test_a_string_for_a_list_and_a_fraction_for_an_integer():
    [p] = problems(models(vllmArgs="--max-num-seqs 64"))
    assert "must be a list" in p and "without quotes" not in p
    [p] = problems(models(gpuCount=1.5))
    assert "must be a whole number (got 1.5)" in p and "without quotes" not in p


def test_a_long_model_name_is_told_the_maximum():
    m = models()
    m["runpod-deploy:models"]["a" * 40] = m["runpod-deploy:models"].pop("olmocr")
    [p] = problems(m)
    assert "is 40 characters; the maximum is 31" in p and "lowercase" not in p


@pytest.mark.parametrize("args,flag,names", [
    (["--api-key", SECRET], "--api-key", "modelSecrets.olmocr.apiKey"),
    (["--port=8001"], "--port", "port 8000"),
    (["--host", "127.0.0.1"], "--host", "0.0.0.0"),
    (["--served_model_name", "x"], "--served-model-name", "servedModelName"),
    (["--max-model-len", "4096"], "--max-model-len", "maxModelLen"),
])
def test_flags_the_program_owns_are_refused_naming_the_setting(args, flag, names):
    [p] = problems(models(vllmArgs=args))
    assert f"`{flag}` is the program's to set" in p and names in p


def test_a_json_flag_whose_value_is_not_json():
    m = models()
    m["runpod-deploy:models"]["olmocr"]["gpuProfiles"]["default"]["extraArgs"] = ["--limit-mm-per-prompt", "{video: 0}"]
    [p] = problems(m)
    assert p.startswith("runpod-deploy:models.olmocr.gpuProfiles.default.extraArgs: `--limit-mm-per-prompt` takes JSON")


@pytest.mark.parametrize("ports,says", [(["70000/tcp"], "outside 1–65535"), (["3000/http"], "Open WebUI"),
                                        (["22/tcp"], "SSH"), (["8888/http", "8888/tcp"], "listed twice")])
def test_extra_ports(ports, says):
    [p] = problems(models(extraPorts=ports))
    assert says in p


@pytest.mark.parametrize("stack,says", [("dev_gpu", "'_'"), ("team.dev", "'.'"), ("s" * 80, "at most 74")])
def test_a_stack_name_that_cannot_form_a_pod_name(stack, says):
    [p] = problems({}, stack=stack)
    assert p.startswith(f"stack name {stack!r}") and says in p and "pulumi stack rename" in p


def test_model_secrets_for_an_unknown_model_or_field():
    [p] = problems({"runpod-deploy:modelSecrets": {"olmoc": {"apiKey": SECRET}}})
    assert p.startswith("runpod-deploy:modelSecrets.olmoc: no model 'olmoc'")
    [p] = problems({"runpod-deploy:modelSecrets": {"olmocr": {"apikey": SECRET}}})
    assert p.startswith("runpod-deploy:modelSecrets.olmocr.apikey: unknown setting") and "apiKey" in p


def test_secrets_set_without_secret_get_the_command_that_stores_them_as_secrets(tmp_path):
    ps = problems({"runpod-deploy:hfToken": "hf_x", "runpod-deploy:modelSecrets": {"olmocr": {"apiKey": SECRET}}},
                  is_secret=lambda key: False)
    assert ps[0].startswith("runpod:apiKey: set without --secret")
    assert '`pulumi config set --secret runpod:apiKey "$(pulumi config get runpod:apiKey)"`' in ps[0]
    assert ps[1].startswith("runpod-deploy:hfToken: set without --secret")
    assert ps[2].startswith("runpod-deploy:modelSecrets.olmocr.apiKey: set without --secret")
    assert "--path 'runpod-deploy:modelSecrets.olmocr.apiKey'" in ps[2]
    # An object with one secret leaf counts as secret as a whole: its plain leaves are read from the file.
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_text(yaml.safe_dump({"config": {"runpod-deploy:modelSecrets": {
        "olmocr": {"apiKey": {"secure": "v1:abc"}, "webuiAdminPassword": "hunter2"}}}}))
    [p] = problems({"runpod-deploy:modelSecrets": {"olmocr": {"apiKey": SECRET, "webuiAdminPassword": "hunter2"}}},
                   stack_file=stack_file)
    assert p.startswith("runpod-deploy:modelSecrets.olmocr.webuiAdminPassword: set without --secret")
    assert "hunter2" not in p


@pytest.mark.parametrize("key,says", [("rpa_ab\ncd", "a line break"), ("rpa_ab cd", "a space or tab"),
                                      ("rpa_ab\u200bcd", "U+200B")])
def test_a_malformed_key_names_its_source_and_never_shows_it(key, says):
    with pytest.raises(ApiKeyError) as e:
        find_api_key(None, {"RUNPOD_API_KEY": key})
    assert says in str(e.value) and "RUNPOD_API_KEY" in str(e.value) and "rpa_ab" not in str(e.value)
    [p] = problems({"runpod:apiKey": key})
    assert "runpod:apiKey (stack config)" in p and says in p and "rpa_ab" not in p
    assert check_api_key(" rpa_abcd\n", "x") == "rpa_abcd"  # surrounding whitespace is harmless


@pytest.mark.parametrize("err,says", [
    (api_errors.RateLimitedError("POST", "/v2/pods", 429, retry_after=3600), "(429, retry after 1 h)"),
    (api_errors.AuthError("DELETE", "/v2/pods/x", 403, detail="access denied"), "refused the API key (403"),
    (api_errors.ConflictError("DELETE", "/v2/pods/x", 409, detail="pod is locked"), "(409: pod is locked)"),
    (api_errors.TransportError("DELETE", "/v2/pods/x", None, detail="ConnectionError: reset"), "could not be reached"),
    (api_errors.ServerError("GET", "/v2/pods/x", 502, detail="bad gateway"), "failed on its side (502"),
])
def test_runpod_failures_are_one_line_with_the_pods_and_the_next_command(err, says):
    msg = str(RunPodFailed(err, "deleting pod x", "pod x is still in the stack's state", "pulumi destroy"))
    assert says in msg and "pod x is still in the stack's state" in msg and msg.endswith("run `pulumi destroy` again")
    assert "\n" not in msg


@pytest.mark.parametrize("key,value,says", [
    # A top-level number or flag set to a word: told what type is expected, not "object or list".
    ("runpod-deploy:readyTimeoutSeconds", "soon",
     "runpod-deploy:readyTimeoutSeconds: must be a whole number (got 'soon')"),
    ("runpod-deploy:maxPricePerHour", "cheap", "runpod-deploy:maxPricePerHour: must be a number (got 'cheap')"),
    ("runpod-deploy:startSsh", "maybe", "runpod-deploy:startSsh: must be true or false (got 'maybe')"),
    # A structure that is not JSON at all still gets the structure message.
    ("runpod-deploy:gpuTypes", "[oops", "runpod-deploy:gpuTypes: not valid JSON/YAML structure"),
])
def test_a_word_where_a_number_or_flag_is_expected_is_told_the_type(key, value, says):
    [p] = problems({key: value})
    assert p.startswith(says), p


def test_a_nested_number_set_to_a_word_is_told_a_number():
    [p] = problems(models(maxPricePerHour="cheap"))
    assert p == "runpod-deploy:models.olmocr.maxPricePerHour: must be a number (got 'cheap')"


def test_models_given_as_a_list_is_told_it_is_a_map_of_model_names():
    [p] = problems({"runpod-deploy:models": [{"modelId": "allenai/olmOCR-2-7B-1025-FP8"}]})
    assert p.startswith("runpod-deploy:models: must be a map of model name → settings"), p
    assert "valid dictionary" not in p


def test_a_model_given_as_a_word_is_told_it_is_a_map_of_settings():
    m = models()
    m["runpod-deploy:models"]["olmocr"] = "allenai/olmOCR-2-7B-1025-FP8"
    [p] = problems(m)
    assert p.startswith("runpod-deploy:models.olmocr: must be a map of settings"), p
