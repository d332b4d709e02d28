"""Stack config logic (no engine): defaults, the seed's .env fallbacks, GPU profiles laid over
`default`, and the schema as the one place for keys, defaults and the docs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from runpod_deploy import config, config_doc, pod_env
from runpod_deploy.schema import GpuProfile, StackConfig

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
    assert (cfg.api_key, cfg.hf_token, cfg.data_center, cfg.network_volume_id) == (
        "from-env", "hf-env", "US-TX-3", "vol-env")


def test_stack_config_wins_over_env():
    cfg = load({**DEV, "runpod:apiKey": "from-config"},
               env={"RUNPOD_API_KEY": "from-env", "PREFERRED_DATACENTER": "US-TX-3"})
    assert cfg.api_key == "from-config" and cfg.data_center == "EU-RO-1"


def test_every_problem_is_reported_at_once():
    models = json.loads(json.dumps(DEV["runpod-deploy:models"]))
    models["olmocr"]["gpuCount"] = 0
    models["qwen3vl"]["modelId"] = "no-org"
    with pytest.raises(config.ConfigError) as e:
        load({**DEV, "runpod-deploy:models": models, "runpod-deploy:cloud": "ALL"})
    keys = [p.split(":", 1)[1].split(":")[0] for p in e.value.problems]
    assert {"models.olmocr.gpuCount", "models.qwen3vl.modelId", "cloud"} <= set(keys), e.value.problems
    assert any(p.startswith("runpod:apiKey") or "no RunPod API key" in p for p in e.value.problems)


def with_profiles(profiles: dict, **model_settings) -> dict:
    models = json.loads(json.dumps(DEV["runpod-deploy:models"]))
    models["qwen3vl"].update(gpuProfiles=profiles, **model_settings)
    return {**DEV, "runpod-deploy:models": models, "runpod:apiKey": "k"}


def test_a_profile_inheriting_from_default_renders_the_merged_values():
    cfg = load(with_profiles({
        "default": {"maxModelLen": 32768, "gpuMemoryUtilization": 0.85, "extraArgs": ["--async-scheduling"]},
        "NVIDIA GeForce RTX 4090": {"modelId": "Qwen/Qwen3-VL-8B-Instruct-FP8", "maxModelLen": 16384},
        "NVIDIA L40S": {"revision": "r2"},
    }, revision="r1"))
    rendered = json.loads(pod_env.startup_env("qwen3vl", cfg.models["qwen3vl"], cfg)["GPU_PROFILES_JSON"])
    assert rendered == {
        "default": {"modelId": "Qwen/Qwen3-VL-8B-Instruct", "revision": "r1", "maxModelLen": 32768,
                    "gpuMemoryUtilization": 0.85, "extraArgs": ["--async-scheduling"]},
        # own checkpoint and length; the rest from default; the model's revision is not its checkpoint's
        "NVIDIA GeForce RTX 4090": {"modelId": "Qwen/Qwen3-VL-8B-Instruct-FP8", "maxModelLen": 16384,
                                    "gpuMemoryUtilization": 0.85, "extraArgs": ["--async-scheduling"]},
        "NVIDIA L40S": {"modelId": "Qwen/Qwen3-VL-8B-Instruct", "revision": "r2", "maxModelLen": 32768,
                        "gpuMemoryUtilization": 0.85, "extraArgs": ["--async-scheduling"]},
    }


def test_the_schema_default_applies_when_no_profile_sets_a_field():
    cfg = load(with_profiles({"default": {"maxModelLen": 8192}}))
    (p,) = cfg.models["qwen3vl"].resolved_profiles().values()
    assert p.gpu_memory_utilization == GpuProfile.model_fields["gpu_memory_utilization"].default == 0.9
    assert p.extra_args == []


@pytest.mark.parametrize(("profiles", "model_settings", "key", "fix"), [
    ({"NVIDIA L40S": {"gpuMemoryUtilization": 0.9}, "default": {"extraArgs": []}}, {},
     "runpod-deploy:models.qwen3vl.gpuProfiles",
     "profile 'NVIDIA L40S' has no maxModelLen, and no 'default' profile gives one; set maxModelLen in either"),
    ({"NVIDIA L40S": {"maxModelLen": 8192}}, {},
     "runpod-deploy:models.qwen3vl.gpuProfiles",
     "no profile for ['NVIDIA A100 80GB PCIe', 'NVIDIA GeForce RTX 4090'] (listed in runpod-deploy:gpuTypes) and no "
     "'default' profile; add a 'default' profile, or one per GPU type"),
    ({"NVIDIA L40S": {"maxModelLen": 8192}}, {"gpuTypes": ["NVIDIA L40S", "NVIDIA A40"]},
     "runpod-deploy:models.qwen3vl.gpuProfiles", "(listed in runpod-deploy:models.qwen3vl.gpuTypes)"),
    ({"default": {"maxModelLen": 8192, "memoryGb": 24}}, {},
     "runpod-deploy:models.qwen3vl.gpuProfiles.default.memoryGb",
     "unknown setting; check its spelling against docs/config.md"),
    ({"default": {"maxModelLen": 8192, "revision": ""}}, {},
     "runpod-deploy:models.qwen3vl.gpuProfiles.default.revision", "at least 1 character"),
])
def test_profile_errors_name_the_key_and_the_fix(profiles, model_settings, key, fix):
    with pytest.raises(config.ConfigError) as e:
        load(with_profiles(profiles, **model_settings))
    assert any(p.startswith(key + ":") and fix in p for p in e.value.problems), e.value.problems


def test_a_model_whose_gpus_all_have_profiles_needs_no_default():
    gpus = ["NVIDIA L40S", "NVIDIA A100 80GB PCIe", "NVIDIA GeForce RTX 4090"]
    cfg = load(with_profiles({g: {"maxModelLen": 8192} for g in gpus}))
    assert list(cfg.models["qwen3vl"].resolved_profiles()) == gpus


def test_the_loader_reads_every_key_of_the_schema():
    # Adding a config key = adding one schema field: the loader asks for every field's key.
    asked = []
    values = {**DEV, "runpod:apiKey": "k"}

    def get(key):
        asked.append(key)
        return getter(values)(key)

    config.load(get, "runpod-deploy", "dev", env={})
    keys = {config.config_key(n) for n, f in StackConfig.model_fields.items()
            if (f.json_schema_extra or {}).get("config") is not False}
    assert keys == set(asked)


def test_every_key_is_set_the_way_pulumi_hands_it_over():
    # Pulumi passes every value as a string; non-text keys are JSON (ints, booleans, lists, objects).
    cfg = load({**DEV, "runpod:apiKey": "k", "runpod-deploy:containerDiskGb": "80", "runpod-deploy:startSsh": "false",
                "runpod-deploy:cloud": "COMMUNITY", "runpod-deploy:minCudaVersion": "12.9",
                "runpod-deploy:gpuTypes": '["NVIDIA L40S"]', "runpod-deploy:vllmVersion": "0.11.0"})
    assert (cfg.container_disk_gb, cfg.start_ssh, cfg.cloud, cfg.min_cuda_version, cfg.gpu_types, cfg.vllm_version) == (
        80, False, "COMMUNITY", "12.9", ["NVIDIA L40S"], "0.11.0")


def test_docs_config_md_is_generated_from_the_schema():
    assert config_doc.DOC.read_text() == config_doc.render(), "run `python -m runpod_deploy.config_doc`"
    for name, field in StackConfig.model_fields.items():
        if (field.json_schema_extra or {}).get("config") is not False:
            assert field.description, f"{name} has no description"


def test_pulumi_yaml_declares_no_second_copy_of_the_schema():
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    declared = project.get("config") or {}
    aliases = {f.alias or n for n, f in StackConfig.model_fields.items()}
    for key, decl in declared.items():
        assert key in aliases, f"Pulumi.yaml declares {key}, which the schema does not know"
        assert not (isinstance(decl, dict) and "default" in decl), f"Pulumi.yaml gives {key} a default (see schema.py)"


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


def test_price_ceiling_and_worst_case_from_the_catalog():
    """Catalog prices are per GPU in the stack's cloud; a pod's price is that times gpuCount."""
    from runpod_deploy import pricing
    from runpod_provider.wire import GpuType

    catalog = [GpuType.model_validate({"id": "NVIDIA L40S", "price": {"secure": 0.86, "community": 0.79}}),
               GpuType.model_validate({"id": "NVIDIA A100 80GB PCIe", "price": {"secure": 1.39, "community": 1.19}}),
               GpuType.model_validate({"id": "NVIDIA GeForce RTX 4090", "price": {"secure": 0.69}})]
    models = json.loads(json.dumps(DEV["runpod-deploy:models"]))
    models["olmocr"]["gpuCount"] = 2
    models["qwen3vl"]["maxPricePerHour"] = 5  # the model's own ceiling wins over the stack's
    cfg = load({**DEV, "runpod:apiKey": "k", "runpod-deploy:models": models, "runpod-deploy:cloud": "COMMUNITY",
                "runpod-deploy:maxPricePerHour": "2.0"})
    prices = pricing.plan(cfg, catalog)
    # olmocr, 2 GPUs on COMMUNITY: L40S 1.58, A100 2.38 (above 2.0), 4090 unknown there (not allowed).
    assert prices["olmocr"].prices == {"NVIDIA L40S": 1.58, "NVIDIA A100 80GB PCIe": 2.38,
                                       "NVIDIA GeForce RTX 4090": None}
    assert prices["olmocr"].allowed == ["NVIDIA L40S"] and prices["olmocr"].worst == (1.58, "NVIDIA L40S")
    assert prices["qwen3vl"].ceiling == 5 and prices["qwen3vl"].worst == (1.19, "NVIDIA A100 80GB PCIe")
    assert pricing.worst_case(prices) == 2.77 and pricing.problems(prices, cfg) == []

    cfg = load({**DEV, "runpod:apiKey": "k", "runpod-deploy:maxPricePerHour": "0.5"})
    olmocr, qwen = pricing.problems(pricing.plan(cfg, catalog), cfg)
    assert "model 'qwen3vl'" in qwen
    assert olmocr.startswith("runpod-deploy:maxPricePerHour: $0.5/h is below the SECURE price of every GPU type "
                             "model 'olmocr' may use (NVIDIA L40S $0.86/h, NVIDIA A100 80GB PCIe $1.39/h, "
                             "NVIDIA GeForce RTX 4090 $0.69/h); raise it to at least 0.69")


def test_idle_stop_minutes_reaches_the_pod_env_only_when_set():
    models = json.loads(json.dumps(DEV["runpod-deploy:models"]))
    models["olmocr"]["idleStopMinutes"] = 45
    cfg = load({**DEV, "runpod:apiKey": "k", "runpod-deploy:models": models})
    assert pod_env.startup_env("olmocr", cfg.models["olmocr"], cfg)["IDLE_STOP_MINUTES"] == "45"
    assert "IDLE_STOP_MINUTES" not in pod_env.startup_env("qwen3vl", cfg.models["qwen3vl"], cfg)
