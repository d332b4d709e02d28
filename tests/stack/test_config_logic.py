"""Stack config logic (no engine): defaults, the seed's .env fallbacks, and the contract with the
startup script's GPU profile table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import startup
from runpod_deploy import config

ROOT = Path(__file__).resolve().parents[2]
DEV = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]


def getter(values: dict):
    def get(key):
        v = values.get(key)
        return json.dumps(v) if isinstance(v, (dict, list, bool, int)) and not isinstance(v, str) else v
    return get


def load(values: dict, env: dict | None = None):
    return config.load(getter(values), "runpod-deploy", "dev", env=env or {})


def test_the_dev_stack_config_loads_with_the_documented_defaults():
    cfg = load({**DEV, "runpod:apiKey": "k"})
    assert cfg.data_center == "EU-RO-1"
    assert cfg.gpu_types == ["NVIDIA L40S", "NVIDIA A100 80GB PCIe", "NVIDIA GeForce RTX 4090"]
    assert cfg.cloud == "SECURE"
    assert {n: m.served_model_name for n, m in cfg.models.items()} == {"olmocr": "olmocr", "qwen3vl": "qwen3-vl"}
    assert cfg.models["qwen3vl"].model_id == "Qwen/Qwen3-VL-8B-Instruct"
    assert cfg.models["olmocr"].model_id.startswith("allenai/olmOCR-2-7B")


def test_the_seeds_env_keys_are_fallbacks():
    values = {k: v for k, v in DEV.items() if k not in ("runpod-deploy:dataCenter", "runpod-deploy:networkVolumeId")}
    cfg = load(values, env={"RUNPOD_API_KEY": "from-env", "HF_TOKEN": "hf-env",
                            "PREFERRED_DATACENTER": "US-TX-3", "NETWORK_VOLUME_ID": "vol-env"})
    assert (cfg.api_key, cfg.hf_token, cfg.data_center, cfg.network_volume_id) == ("from-env", "hf-env", "US-TX-3", "vol-env")


def test_stack_config_wins_over_env():
    cfg = load({**DEV, "runpod:apiKey": "from-config"}, env={"RUNPOD_API_KEY": "from-env", "PREFERRED_DATACENTER": "US-TX-3"})
    assert cfg.api_key == "from-config" and cfg.data_center == "EU-RO-1"


def test_every_problem_is_reported_at_once():
    models = json.loads(json.dumps(DEV["runpod-deploy:models"]))
    models["olmocr"]["gpuCount"] = 0
    models["qwen3vl"]["modelId"] = "no-org"
    with pytest.raises(config.ConfigError) as e:
        load({**DEV, "runpod-deploy:models": models, "runpod-deploy:cloud": "ALL"})
    keys = [p.split(":", 1)[1].split(":")[0] for p in e.value.problems]
    assert {"models.olmocr.gpuCount", "models.qwen3vl.modelId", "cloud"} <= set(keys), e.value.problems
    assert any(p.startswith("runpod:apiKey") or "runpod:apiKey is not set" in p for p in e.value.problems)


def test_gpu_profiles_from_config_are_what_the_startup_script_accepts():
    cfg = load({**DEV, "runpod:apiKey": "k"})
    for m in cfg.models.values():
        startup.validate_gpu_profiles({g: p.model_dump(exclude_none=True) for g, p in m.gpu_profiles.items()})


def test_the_4090_gets_the_fp8_qwen_checkpoint_and_a_shorter_context():
    cfg = load({**DEV, "runpod:apiKey": "k"})
    p = cfg.models["qwen3vl"].gpu_profiles["NVIDIA GeForce RTX 4090"]
    assert p.model_id == "Qwen/Qwen3-VL-8B-Instruct-FP8"
    assert p.max_model_len < cfg.models["qwen3vl"].gpu_profiles["default"].max_model_len


@pytest.mark.parametrize("change", [
    {"needsHfToken": True},          # model-level check: its pydantic input is the whole config
    {"gpuCount": 0},
    {"running": "yes"},
])
def test_no_config_error_ever_contains_a_secret(change):
    models = json.loads(json.dumps(DEV["runpod-deploy:models"]))
    models["olmocr"].update(change)
    with pytest.raises(config.ConfigError) as e:
        load({**DEV, "runpod-deploy:models": models, "runpod:apiKey": "rpa_SECRET_1"},
             env={"HF_TOKEN": "" if change.get("needsHfToken") else "hf_SECRET_2"})
    assert "rpa_SECRET_1" not in str(e.value) and "hf_SECRET_2" not in str(e.value)
