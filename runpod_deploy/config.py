"""Stack configuration: read once, validated by pydantic, before any resource is declared.

The keys, their defaults and meanings are the schema in `schema.py` (docs/config.md is generated
from it); this module reads every key of it the same way, then checks what spans several keys.

Every bad value becomes one line naming the config key and the fix. The values that need the
RunPod API (the GPU type ids, the network volume and its data center) are checked in
`check_against_runpod`, still before any pod exists.
"""

from __future__ import annotations

import json
import os
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import ValidationError
from pydantic.fields import FieldInfo

from runpod_provider.client import find_api_key
from runpod_provider.provider_errors import MISSING_API_KEY

from . import pricing
from .schema import DEFAULT_GPU_TYPES, NS, GpuProfile, ModelConfig, StackConfig

__all__ = ["NS", "DEFAULT_GPU_TYPES", "ConfigError", "GpuProfile", "ModelConfig", "StackConfig", "load",
           "check_against_runpod", "from_pulumi", "config_key"]


class ConfigError(Exception):
    """All config problems at once, one per line, each naming the key and the fix."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack configuration:\n" + "\n".join(f"  - {p}" for p in problems))


def _meta(field: FieldInfo) -> dict[str, Any]:
    return field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}


def config_key(name: str) -> str:
    """`runpod-deploy:vllmVersion`, `runpod:apiKey`: the full key of the StackConfig field `name`."""
    field = StackConfig.model_fields[name]
    return f"{_meta(field).get('namespace', NS)}:{field.alias or name}"


def _is_text(field: FieldInfo) -> bool:
    """Pulumi hands every value over as a string: text fields take it as is, others are JSON."""
    args = get_args(field.annotation) if get_origin(field.annotation) in (Literal, Union, UnionType) else ()
    return field.annotation is str or (bool(args) and all(a is str or a is type(None) or isinstance(a, str)
                                                          for a in args))


def _json(value: str | None, key: str, problems: list[str]) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as e:
        problems.append(f"{NS}:{key}: not valid JSON/YAML structure ({e.msg}); set it as an object or list")
        return None


def load(get: Any, project: str, stack: str, env: dict[str, str] | None = None) -> StackConfig:
    """`get(full_key)` returns the raw config string or None (pulumi.Config in the program, a dict in
    tests). The seed's .env keys stay as fallbacks: RUNPOD_API_KEY, HF_TOKEN, PREFERRED_DATACENTER,
    NETWORK_VOLUME_ID."""
    env = os.environ if env is None else env
    problems: list[str] = []
    raw: dict[str, Any] = {
        "project": project,
        "stack": stack,
        "apiKey": find_api_key(get("runpod:apiKey"), env),
    }
    for name, field in StackConfig.model_fields.items():  # every key of the schema, read the same way
        meta, key = _meta(field), field.alias or name
        if meta.get("config") is False or key in raw:
            continue
        value = get(config_key(name))
        if not value and meta.get("env"):
            value = env.get(meta["env"]) or value
        if value is not None:
            raw[key] = value if _is_text(field) else _json(value, key, problems)
    if raw.get("models") is None and not problems:
        problems.append(f"{NS}:models is not set: describe at least one model (see Pulumi.dev.yaml)")
    if problems:
        raise ConfigError(problems)
    if not raw["apiKey"]:  # reported with the other problems, not after they are fixed
        problems.append(f"runpod:apiKey: {MISSING_API_KEY}")
    try:
        cfg = StackConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(problems + [_explain(err) for err in e.errors()]) from None
    needing = [n for n, m in cfg.models.items() if m.needs_hf_token]
    if needing and not cfg.hf_token:
        problems.append(f"{NS}:hfToken: models {needing} need a HuggingFace token: run "
                        f"`pulumi config set --secret {NS}:hfToken <token>` or export HF_TOKEN")
    for name, m in cfg.models.items():
        # The pod serves the profile named exactly after its GPU, else `default` (no guessing by size).
        uncovered = [g for g in cfg.gpu_types_for(m) if g not in m.gpu_profiles]
        if uncovered and "default" not in m.gpu_profiles:
            where = f"{NS}:models.{name}.gpuTypes" if m.gpu_types else f"{NS}:gpuTypes"
            problems.append(f"{NS}:models.{name}.gpuProfiles: no profile for {uncovered} (listed in {where}) and no "
                            "'default' profile; add a 'default' profile, or one per GPU type")
    if problems:
        raise ConfigError(problems)
    return cfg


def _explain(err: dict[str, Any]) -> str:
    """One pydantic error → `runpod-deploy:models.olmocr.gpuCount: must be ≥ 1 (got 0)`."""
    loc = [str(p) for p in err["loc"]]
    key = ("runpod:apiKey" if loc[:1] == ["apiKey"] else f"{NS}:" + ".".join(loc)) if loc else f"{NS}"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown setting; check its spelling against docs/config.md"
    elif err["type"] == "missing":
        msg = "required; set it with `pulumi config set " + key + " <value>`"
    elif err["type"] in ("bool_type", "int_type", "string_type", "float_type", "list_type", "dict_type"):
        got = f" (got {err.get('input')!r})" if _echoable(key, err.get("input")) else ""
        msg = f"{msg}{got}; write it without quotes in YAML"
    elif _echoable(key, err.get("input")):
        msg = f"{msg} (got {err['input']!r})"
    return f"{key}: {msg}"


def _echoable(key: str, value: Any) -> bool:
    """Echo a bad value only when it is a plain scalar (or a short list of them) under a key that
    cannot hold a secret: a model-level error's input is the whole raw config, key included."""
    if any(s in key.lower() for s in ("key", "token", "password", "secret")):
        return False
    scalar = (str, int, float, bool, type(None))
    if isinstance(value, list):
        return len(value) <= 10 and all(isinstance(v, scalar) for v in value)
    return isinstance(value, scalar)


def check_against_runpod(cfg: StackConfig, client: Any) -> dict[str, pricing.ModelPrice]:
    """The checks that need the API, before any pod is created: every GPU type id exists in the
    catalog, the network volume exists in the configured data center, and each model's price
    ceiling leaves it a GPU type. Returns the catalog prices per model (pricing.plan)."""
    from runpod_provider import api_errors as errors

    problems: list[str] = []
    try:
        catalog = client.gpu_types(cloud=cfg.cloud)
        known = {g.id for g in catalog}
    except errors.AuthError as e:
        raise ConfigError([f"runpod:apiKey: RunPod refused the key ({e.status}); set a valid key with "
                           "`pulumi config set --secret runpod:apiKey <key>`"]) from None
    wanted = {(f"{NS}:gpuTypes", g) for g in cfg.gpu_types}
    for name, m in cfg.models.items():
        wanted |= {(f"{NS}:models.{name}.gpuTypes", g) for g in (m.gpu_types or [])}
        wanted |= {(f"{NS}:models.{name}.gpuProfiles", g) for g in m.gpu_profiles if g != "default"}
    for key, gpu in sorted(wanted):
        if gpu not in known:
            close = [k for k in sorted(known) if gpu.lower().split()[-1] in k.lower()][:3]
            hint = f"; did you mean {close}?" if close else ""
            problems.append(f"{key}: {gpu!r} is not a RunPod GPU type id (ids are exact, e.g. 'NVIDIA L40S'){hint}")
    try:
        vol = client.get_network_volume(cfg.network_volume_id)
        if vol.dataCenter != cfg.data_center:
            problems.append(f"{NS}:networkVolumeId: volume {cfg.network_volume_id} is in {vol.dataCenter}, not in "
                            f"dataCenter {cfg.data_center}; pods mount only volumes of their own data center, "
                            f"so set dataCenter to {vol.dataCenter} or use a volume in {cfg.data_center}")
    except errors.NotFoundError:
        problems.append(f"{NS}:networkVolumeId: no network volume {cfg.network_volume_id!r} in this RunPod account; "
                        "list yours in the console (Storage) and set the id")
    prices = pricing.plan(cfg, catalog)
    problems += pricing.problems(prices, cfg)
    if problems:
        raise ConfigError(problems)
    return prices


def from_pulumi() -> tuple[StackConfig, dict[str, pricing.ModelPrice]]:
    """Load and check the stack's config inside a Pulumi program; also the catalog prices per model.
    Problems stop the program with pulumi.RunError (a message, no traceback) before any resource is
    declared. The stack's worst-case $/h is logged (preview shows it)."""
    import pulumi

    from runpod_provider.client import RunPodClient

    def get(full_key: str) -> str | None:
        ns, key = full_key.split(":", 1)
        return pulumi.Config(ns).get(key)

    try:
        cfg = load(get, pulumi.get_project(), pulumi.get_stack())
        client = RunPodClient(cfg.api_key)
        try:
            prices = check_against_runpod(cfg, client)
        finally:
            client.close()
    except ConfigError as e:
        raise pulumi.RunError(str(e)) from None
    pulumi.log.info(pricing.summary(prices))
    return cfg, prices
