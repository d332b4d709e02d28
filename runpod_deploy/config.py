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
import re
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from runpod_provider.keys import ApiKeyError, find_api_key
from runpod_provider.naming import PREFIX_MAX
from runpod_provider.provider_errors import MISSING_API_KEY
from startup.agent.protocol import VLLM_PORT, WEBUI_PORT

from . import messages, pod_env, pricing, vllm_flags
from .schema import DEFAULT_GPU_TYPES, MODEL_NAME_MAX, NS, GpuProfile, ModelConfig, StackConfig

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


def _is_structure(field: FieldInfo) -> bool:
    """A map, a list or a settings object (Optional or not), as opposed to a number or a flag."""
    kinds = get_args(field.annotation) if get_origin(field.annotation) in (Union, UnionType) else (field.annotation,)
    return any(get_origin(k) in (dict, list) or k in (dict, list) or (isinstance(k, type) and issubclass(k, BaseModel))
               for k in kinds)


def _json(value: str | None, key: str, field: FieldInfo, problems: list[str]) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as e:
        if not _is_structure(field):  # a word for a number or a flag: the schema says which type it wants
            return value
        problems.append(f"{NS}:{key}: not valid JSON/YAML structure ({e.msg}); set it as an object or list")
        return None


def load(get: Any, project: str, stack: str, env: dict[str, str] | None = None,
         is_secret: Any = None, stack_file: Path | None = None) -> StackConfig:
    """`get(full_key)` returns the raw config string or None (pulumi.Config in the program, a dict in
    tests); `is_secret(full_key)` says whether Pulumi holds that key as a secret, and `stack_file` is
    Pulumi.<stack>.yaml, read to find a secret object's leaves set in clear. The seed's .env keys
    stay as fallbacks: RUNPOD_API_KEY, HF_TOKEN, PREFERRED_DATACENTER, NETWORK_VOLUME_ID."""
    env = os.environ if env is None else env
    # Reported with whatever else is wrong, never alone first.
    early = _secrets_in_clear(get, is_secret or (lambda key: True), stack_file) + _stack_name_problems(project, stack)
    problems: list[str] = []
    raw: dict[str, Any] = {"project": project, "stack": stack}
    try:
        raw["apiKey"] = find_api_key(get("runpod:apiKey"), env)
    except ApiKeyError as e:  # never shown, and not "not set" either
        early.append(str(e))
        raw["apiKey"] = "malformed"
    for name, field in StackConfig.model_fields.items():  # every key of the schema, read the same way
        meta, key = _meta(field), field.alias or name
        if meta.get("config") is False or key in raw:
            continue
        value = get(config_key(name))
        if not value and meta.get("env"):
            value = env.get(meta["env"]) or value
        if value is not None:
            raw[key] = value if _is_text(field) else _json(value, key, field, problems)
    if raw.get("models") is None and not problems:
        problems.append(f"{NS}:models is not set: describe at least one model (see Pulumi.dev.yaml)")
    if problems:
        raise ConfigError(early + problems)
    problems = early
    if not raw["apiKey"]:  # reported with the other problems, not after they are fixed
        problems.append(f"runpod:apiKey: {MISSING_API_KEY}")
    try:
        cfg = StackConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(problems + [messages.explain(err) for err in e.errors()]) from None
    needing = [n for n, m in cfg.models.items() if m.needs_hf_token]
    if needing and not cfg.hf_token:
        problems.append(f"{NS}:hfToken: models {needing} need a HuggingFace token: run "
                        f"`pulumi config set --secret {NS}:hfToken <token>` or export HF_TOKEN")
    for name, m in cfg.models.items():
        problems += vllm_flags.arg_problems(name, m) + _port_problems(name, m)
    unknown = sorted(set(cfg.model_secrets or {}) - set(cfg.models))
    if unknown:
        problems += [f"{NS}:modelSecrets.{u}: no model {u!r} in {NS}:models (models: {', '.join(cfg.models)}); "
                     "fix the model name, or the value would be ignored and a generated one served"
                     for u in unknown]
    for name, m in cfg.models.items():
        # The pod serves the profile named exactly after its GPU, else `default` (no guessing by size).
        uncovered = [g for g in cfg.gpu_types_for(m) if g not in m.gpu_profiles]
        if uncovered and "default" not in m.gpu_profiles:
            where = f"{NS}:models.{name}.gpuTypes" if m.gpu_types else f"{NS}:gpuTypes"
            problems.append(f"{NS}:models.{name}.gpuProfiles: no profile for {uncovered} (listed in {where}) and no "
                            "'default' profile; add a 'default' profile, or one per GPU type")
    problems += pod_env.payload_problems()  # what every pod gets in env STARTUP_B64 has a size budget
    if problems:
        raise ConfigError(problems)
    return cfg


# --- ports ------------------------------------------------------------------
PROGRAM_PORTS = {VLLM_PORT: "vLLM", WEBUI_PORT: "Open WebUI", 22: "SSH"}


def _port_problems(name: str, model: ModelConfig) -> list[str]:
    key, problems, seen = f"{NS}:models.{name}.extraPorts", [], set()
    for port in model.extra_ports:
        number = int(port.split("/")[0])
        if not 1 <= number <= 65535:
            problems.append(f"{key}: port {number} is outside 1–65535 (got {port!r})")
        elif number in PROGRAM_PORTS:
            problems.append(f"{key}: port {number} is already used by the program ({PROGRAM_PORTS[number]}); "
                            "pick another port")
        elif number in seen:
            problems.append(f"{key}: port {number} is listed twice; list each port once")
        seen.add(number)
    return problems


# --- secrets set without --secret ---------------------------------------------------------------
def _secret_keys() -> list[str]:
    """The full keys the schema marks secret: runpod:apiKey, runpod-deploy:hfToken, …:modelSecrets."""
    return [config_key(n) for n, f in StackConfig.model_fields.items() if _meta(f).get("secret")]


def _restore_as_secret(key: str, path: bool = False) -> str:
    """The command that stores the value already set under `key` as a secret, without showing it."""
    flag, quoted = ("--path ", f"'{key}'") if path else ("", key)
    return f'pulumi config set --secret {flag}{quoted} "$(pulumi config get {flag}{quoted})"'


def _secrets_in_clear(get: Any, is_secret: Any, stack_file: Path | None) -> list[str]:
    """A secret key set without --secret is plain in Pulumi.<stack>.yaml and, since the engine hands
    the whole stack config to the provider, in the state and its backups too: refuse it, before
    anything is written. Pulumi tells the program which keys hold secrets
    (`pulumi.runtime.is_config_secret`); an object holding one secret leaf counts as secret as a
    whole, so its leaves are read from the stack file."""
    problems = []
    for key in _secret_keys():
        if get(key) is None:
            continue
        if not is_secret(key):
            leaves = _leaves(_json_or_none(get(key)))
            if leaves:  # an object (modelSecrets): each leaf is set on its own, with --path
                problems += [f"{key}.{p}: {_IN_CLEAR}; store it as a secret: "
                             f"`{_restore_as_secret(f'{key}.{p}', path=True)}`" for p in leaves]
            else:
                problems.append(f"{key}: {_IN_CLEAR}; store it as a secret: `{_restore_as_secret(key)}`")
        elif stack_file is not None:
            problems += [f"{key}.{p}: {_IN_CLEAR}; store it as a secret: "
                         f"`{_restore_as_secret(f'{key}.{p}', path=True)}`"
                         for p in _plain_leaves(stack_file, key)]
    return problems


_IN_CLEAR = ("set without --secret, so it is stored in clear in the stack's config file (and would be in the "
             "state too)")


def _json_or_none(value: str | None) -> Any:
    try:
        return json.loads(value) if value else None
    except ValueError:
        return None


def _leaves(value: Any, path: str = "") -> list[str]:
    """Dotted paths of an object's scalar leaves (`olmocr.apiKey`); [] for a scalar."""
    if not isinstance(value, dict):
        return [path] if path else []
    return [leaf for k, v in value.items() for leaf in _leaves(v, f"{path}.{k}" if path else str(k))]


def _plain_leaves(stack_file: Path, key: str) -> list[str]:
    """Leaves of `key` written in clear in the stack file (a secure leaf is `{secure: v1:…}`)."""
    try:
        doc = yaml.safe_load(stack_file.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []

    def walk(value: Any, path: str) -> list[str]:
        if isinstance(value, dict) and set(value) == {"secure"}:
            return []
        if isinstance(value, dict):
            return [p for k, v in value.items() for p in walk(v, f"{path}.{k}" if path else str(k))]
        return [path] if path else []

    return walk((doc.get("config") or {}).get(key), "")


# --- names that must fit in a pod name ------------------------------------------------------------
def _stack_name_problems(project: str, stack: str) -> list[str]:
    """Pod names are `<project>-<stack>-<model>-<6 chars>` of lowercase letters, digits and '-'
    (runpod_provider/naming.py); Pulumi allows more in a stack name (`_`, `.`)."""
    bad = sorted(set(re.sub(r"[A-Za-z0-9-]", "", stack)))
    if bad:
        return [f"stack name {stack!r}: holds {' '.join(repr(c) for c in bad)}, but pod names take only letters, "
                "digits and '-'; use a stack named with those: `pulumi stack rename <new-name>` (or "
                "`pulumi stack init <new-name>`)"]
    room = PREFIX_MAX - len(f"{project}--") - MODEL_NAME_MAX
    if len(stack) > room:
        return [f"stack name {stack!r} is {len(stack)} characters; at most {room} fit in a pod name "
                f"(`{project}-<stack>-<model>`, {PREFIX_MAX} characters with a model name of up to "
                f"{MODEL_NAME_MAX}); use a shorter one: `pulumi stack rename <new-name>`"]
    return []


def check_against_runpod(cfg: StackConfig, client: Any) -> dict[str, pricing.ModelPrice]:
    """The checks that need the API, before any pod is created: every GPU type id exists in the
    catalog, the network volume exists in the configured data center, and each model's price
    ceiling leaves it a GPU type. Returns the catalog prices per model (pricing.plan). RunPod refusing
    or not answering becomes one line too, saying that nothing was created."""
    from runpod_provider import api_errors

    problems: list[str] = []
    try:
        catalog = client.gpu_types(cloud=cfg.cloud)
        known = {g.id for g in catalog}
    except api_errors.AuthError as e:
        raise ConfigError([f"runpod:apiKey: RunPod refused the key ({e.status}); no pod was created; set a valid "
                           "key with `pulumi config set --secret runpod:apiKey <key>`"]) from None
    except api_errors.RunPodError as e:
        raise RunPodUnanswered(e, "reading the GPU catalog") from None
    wanted = {(f"{NS}:gpuTypes", g) for g in cfg.gpu_types}
    for name, m in cfg.models.items():
        wanted |= {(f"{NS}:models.{name}.gpuTypes", g) for g in (m.gpu_types or [])}
        wanted |= {(f"{NS}:models.{name}.gpuProfiles", g) for g in m.gpu_profiles if g != "default"}
    for key, gpu in sorted(wanted):
        if gpu not in known:
            close = [k for k in sorted(known) if gpu.lower().split()[-1] in k.lower()][:3]
            hint = f"; did you mean {close}?" if close else ""
            problems.append(f"{key}: {gpu!r} is not a RunPod GPU type id (ids are exact, e.g. 'NVIDIA L40S'){hint}")
    volume = f"{NS}:networkVolumeId"
    try:
        vol = client.get_network_volume(cfg.network_volume_id)
        if vol.dataCenter != cfg.data_center:
            problems.append(f"{volume}: volume {cfg.network_volume_id} is in {vol.dataCenter}, not in "
                            f"dataCenter {cfg.data_center}; pods mount only volumes of their own data center, "
                            f"so set dataCenter to {vol.dataCenter} or use a volume in {cfg.data_center}")
    except api_errors.NotFoundError:
        problems.append(f"{volume}: no network volume {cfg.network_volume_id!r} in this RunPod account; "
                        "list yours in the console (Storage) and set the id")
    except api_errors.AuthError as e:
        # The catalog answered, so the key is valid: it lacks the permission to read volumes.
        problems.append(f"{volume}: RunPod refused to show network volume {cfg.network_volume_id} to this key "
                        f"({e.status}: {e.detail or e.title}); no pod was created; use a key that may read network "
                        "volumes (RunPod console, Settings, API Keys) and set it with "
                        "`pulumi config set --secret runpod:apiKey <key>`")
    except api_errors.RunPodError as e:
        raise RunPodUnanswered(e, f"looking up network volume {cfg.network_volume_id}") from None
    prices = pricing.plan(cfg, catalog)
    problems += pricing.problems(prices, cfg)
    if problems:
        raise ConfigError(problems)
    return prices


class RunPodUnanswered(Exception):
    """RunPod refused or did not answer a check at preview (after the client's retries): one line."""

    def __init__(self, err: Exception, doing: str) -> None:
        from runpod_provider.provider_errors import what_runpod_did

        did, fix = what_runpod_did(err)
        super().__init__(f"{did} while {doing}; no pod was created or changed; {fix}, then run "
                         "`pulumi preview` (or `pulumi up`) again")


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
        cfg = load(get, pulumi.get_project(), pulumi.get_stack(), is_secret=pulumi.runtime.is_config_secret,
                   stack_file=Path(f"Pulumi.{pulumi.get_stack()}.yaml"))
        with RunPodClient(cfg.api_key) as client:
            prices = check_against_runpod(cfg, client)
    except (ConfigError, RunPodUnanswered) as e:
        raise pulumi.RunError(str(e)) from None
    pulumi.log.info(pricing.summary(prices))
    return cfg, prices
