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

from . import pod_env, pricing
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
        raise ConfigError(problems + [_explain(err) for err in e.errors()]) from None
    needing = [n for n, m in cfg.models.items() if m.needs_hf_token]
    if needing and not cfg.hf_token:
        problems.append(f"{NS}:hfToken: models {needing} need a HuggingFace token: run "
                        f"`pulumi config set --secret {NS}:hfToken <token>` or export HF_TOKEN")
    for name, m in cfg.models.items():
        problems += _vllm_arg_problems(name, m) + _port_problems(name, m)
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


# --- vLLM arguments and ports ------------------------------------------------------------------
# Flags the program sets on `vllm serve` (startup/agent/profile.py) or passes as env: given again in
# vllmArgs/extraArgs they would be silently overridden or, worse, override the program's (the
# probes and URLs then point at nothing, or the API key output is no longer the one enforced).
OWNED_FLAGS = {
    "--api-key": "to choose the key, set it as modelSecrets.{model}.apiKey: `pulumi config set --secret --path "
                 "'runpod-deploy:modelSecrets.{model}.apiKey' <key>` (it is the {model}_api_key output)",
    "--port": "vLLM serves on port 8000, where the readiness probes and the {model}_api_url output point; "
              "extraPorts exposes other ports",
    "--host": "vLLM listens on 0.0.0.0, where RunPod's proxy reaches it",
    "--served-model-name": "set models.{model}.servedModelName instead",
    "--model": "set models.{model}.modelId (or a profile's modelId) instead",
    "--revision": "set models.{model}.revision (or a profile's revision) instead",
    "--max-model-len": "set maxModelLen in the model's gpuProfiles instead",
    "--gpu-memory-utilization": "set gpuMemoryUtilization in the model's gpuProfiles instead",
}
# vLLM 0.11.2 parses these with json.loads (dict-typed engine args, vllm/engine/arg_utils.py): a
# value that is not JSON stops vLLM at start, after the pod has been billing through the install.
JSON_FLAGS = frozenset({
    "--limit-mm-per-prompt", "--mm-processor-kwargs", "--media-io-kwargs", "--hf-overrides",
    "--override-generation-config", "--speculative-config", "--kv-transfer-config", "--kv-events-config",
    "--compilation-config", "--additional-config", "--override-pooler-config", "--pooler-config",
    "--model-loader-extra-config", "--structured-outputs-config", "--default-chat-template-kwargs",
})
PROGRAM_PORTS = {VLLM_PORT: "vLLM", WEBUI_PORT: "Open WebUI", 22: "SSH"}


def _flags(args: list[str]) -> list[tuple[str, str | None]]:
    """(flag, its value or None) for each `--flag value` / `--flag=value`; vLLM reads `_` as `-`."""
    out = []
    for i, arg in enumerate(args):
        if not arg.startswith("--"):
            continue
        flag, eq, value = arg.partition("=")
        if not eq:
            nxt = args[i + 1] if i + 1 < len(args) else None
            value = nxt if nxt is not None and not nxt.startswith("--") else None
        out.append((flag.replace("_", "-"), value))
    return out


def _vllm_arg_problems(name: str, model: ModelConfig) -> list[str]:
    lists = [(f"{NS}:models.{name}.vllmArgs", model.vllm_args)]
    lists += [(f"{NS}:models.{name}.gpuProfiles.{gpu}.extraArgs", p.extra_args)
              for gpu, p in model.gpu_profiles.items()]
    problems = []
    for key, args in lists:
        for flag, value in _flags(args):
            if flag in OWNED_FLAGS:  # never echo the value: --api-key carries a secret
                problems.append(f"{key}: `{flag}` is the program's to set; remove it ("
                                + OWNED_FLAGS[flag].format(model=name) + ")")
            elif flag in JSON_FLAGS and value is not None:
                try:
                    json.loads(value)
                except ValueError as e:
                    problems.append(f"{key}: `{flag}` takes JSON (vLLM parses it with json.loads), but {value[:80]!r} "
                                    f"is not JSON ({e}); write it like '{{\"video\": 0}}' (double quotes inside)")
    return problems


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


def _explain(err: dict[str, Any]) -> str:
    """One pydantic error → `runpod-deploy:models.olmocr.gpuCount: must be ≥ 1 (got 0)`."""
    loc = [str(p) for p in err["loc"]]
    key = ("runpod:apiKey" if loc[:1] == ["apiKey"] else f"{NS}:" + ".".join(loc)) if loc else f"{NS}"
    msg, kind, value = err["msg"].removeprefix("Value error, "), err["type"], err.get("input")
    got = f" (got {value!r})" if _echoable(key, value) else ""
    if kind == "extra_forbidden":
        msg = ("unknown setting; modelSecrets.<model> takes apiKey and webuiAdminPassword"
               if loc[:1] == ["modelSecrets"] else "unknown setting; check its spelling against docs/config.md")
    elif kind == "missing":
        msg = f"required; set it with `{_set_command(loc)}`"
    elif isinstance(value, str) and kind in _QUOTABLE and _quoted(value, kind):
        msg = f"{msg}{got}; write it without quotes in YAML"  # e.g. running: "true"
    elif kind == "list_type":
        msg = f"must be a list{got}, e.g. [\"--max-num-seqs\", \"64\"] or one `- item` per line in YAML"
    elif kind in ("int_type", "int_from_float", "int_parsing"):
        msg = f"must be a whole number{got}"
    elif kind in ("float_type", "float_parsing"):
        msg = f"must be a number{got}"
    elif kind in ("dict_type", "model_type") and loc == ["models"]:
        msg = ("must be a map of model name → settings, e.g. `models: {olmocr: {modelId: …}}` "
               "(one key per model, as in Pulumi.dev.yaml), not a list")
    elif kind == "model_type":
        msg = "must be a map of settings (key: value), as in Pulumi.dev.yaml; see docs/config.md for the keys"
    elif kind == "dict_type":
        msg = "must be a map (key: value), as in Pulumi.dev.yaml"
    elif kind == "bool_type":
        msg = f"must be true or false{got}"
    else:
        msg += got
    return f"{key}: {msg}"


_QUOTABLE = {"bool_type": bool, "int_type": int, "float_type": float, "list_type": list, "dict_type": dict}


def _quoted(text: str, kind: str) -> bool:
    """True when `text` is a value of the wanted type written in quotes (YAML then reads a string)."""
    try:
        value = json.loads(text)
    except ValueError:
        return False
    wanted = _QUOTABLE[kind]
    return isinstance(value, wanted) and not (wanted is int and isinstance(value, bool))


def _set_command(loc: list[str]) -> str:
    """`pulumi config set` for one key; nested keys need --path (Pulumi's path syntax:
    `models.olmocr.gpuProfiles["NVIDIA L40S"].maxModelLen`)."""
    if loc == ["apiKey"]:
        return "pulumi config set --secret runpod:apiKey <key>"
    if len(loc) == 1:
        return f"pulumi config set {NS}:{loc[0]} <value>"
    path = loc[0] + "".join(f"[{p}]" if p.isdigit() else f".{p}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", p)
                            else f'["{p}"]' for p in loc[1:])
    return f"pulumi config set --path '{NS}:{path}' <value>"


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
