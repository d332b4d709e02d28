"""Stack configuration: read once, validated by pydantic, before any resource is declared.

Every bad value becomes one line naming the config key and the fix. The values that need the
RunPod API (the GPU type ids, the network volume and its data center) are checked in
`check_against_runpod`, still before any pod exists.
"""

from __future__ import annotations

import json
import os
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, field_validator

NS = "runpod-deploy"
DEFAULT_GPU_TYPES = ["NVIDIA L40S", "NVIDIA A100 80GB PCIe", "NVIDIA GeForce RTX 4090"]
DEFAULT_IMAGE = "runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404"
MODEL_ID_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$"
PORT_RE = r"^\d{1,5}/(http|tcp)$"


class ConfigError(Exception):
    """All config problems at once, one per line, each naming the key and the fix."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class GpuProfile(Strict):
    """vLLM settings for one GPU type; the startup script picks the one for the GPU it got."""

    model_id: str | None = Field(None, alias="modelId", pattern=MODEL_ID_RE, description="checkpoint for this GPU, e.g. an FP8 variant")
    max_model_len: StrictInt = Field(alias="maxModelLen", ge=256)
    gpu_memory_utilization: float = Field(0.90, alias="gpuMemoryUtilization", gt=0, le=0.99)
    extra_args: list[str] = Field(default_factory=list, alias="extraArgs")


class ModelConfig(Strict):
    model_id: str = Field(alias="modelId", pattern=MODEL_ID_RE, description="HuggingFace repo id, e.g. Qwen/Qwen3-VL-8B-Instruct")
    served_model_name: str = Field(alias="servedModelName", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    revision: str | None = None
    local_dir: str | None = Field(None, alias="localDir", pattern=r"^/", description="a complete old --local-dir copy to serve from")
    gpu_profiles: dict[str, GpuProfile] = Field(alias="gpuProfiles", min_length=1)
    vllm_args: list[str] = Field(default_factory=list, alias="vllmArgs")
    running: StrictBool = True
    needs_hf_token: StrictBool = Field(False, alias="needsHfToken", description="gated or private repo")
    gpu_types: list[str] | None = Field(None, alias="gpuTypes", min_length=1, description="overrides the stack's gpuTypes")
    gpu_count: StrictInt = Field(1, alias="gpuCount", ge=1, le=8)
    container_disk_gb: StrictInt | None = Field(None, alias="containerDiskGb", ge=10, le=4096)
    extra_ports: list[Annotated[str, Field(pattern=PORT_RE)]] = Field(default_factory=list, alias="extraPorts")

    @field_validator("gpu_profiles")
    @classmethod
    def _profiles_need_default_or_ids(cls, v: dict[str, GpuProfile]) -> dict[str, GpuProfile]:
        for key in v:
            if key != "default" and not key.startswith(("NVIDIA ", "AMD ")):
                raise ValueError(f"key {key!r} is neither 'default' nor a GPU type id such as 'NVIDIA L40S'")
        return v


class StackConfig(Strict):
    project: str
    stack: str
    data_center: str = Field(alias="dataCenter", pattern=r"^[A-Z]{2}-[A-Z]{2,4}-\d+$")
    network_volume_id: str = Field(alias="networkVolumeId", min_length=1)
    gpu_types: list[str] = Field(alias="gpuTypes", min_length=1)
    cloud: Literal["SECURE", "COMMUNITY"] = "SECURE"
    image: str = Field(DEFAULT_IMAGE, min_length=1)
    container_disk_gb: StrictInt = Field(50, alias="containerDiskGb", ge=10, le=4096)
    ready_timeout_seconds: StrictInt = Field(1800, alias="readyTimeoutSeconds", gt=0, le=24 * 3600)
    min_cuda_version: str | None = Field("12.8", alias="minCudaVersion", pattern=r"^\d+\.\d+$")
    vllm_version: str = Field("0.11.2", alias="vllmVersion", pattern=r"^\d+\.\d+(\.\d+)?$")
    openwebui_version: str = Field("0.7.2", alias="openwebuiVersion", pattern=r"^\d+\.\d+(\.\d+)?$")
    webui_admin_email: str = Field("admin@fuzzion.local", alias="webuiAdminEmail", pattern=r"^[^@\s]+@[^@\s]+$")
    start_ssh: StrictBool = Field(True, alias="startSsh")
    models: dict[str, ModelConfig] = Field(min_length=1)
    # Secrets (plaintext here, in the program process only; they reach resources as Outputs).
    api_key: str | None = Field(None, alias="apiKey", exclude=True, repr=False)
    hf_token: str | None = Field(None, alias="hfToken", exclude=True, repr=False)

    @field_validator("gpu_types")
    @classmethod
    def _gpu_types(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("lists a GPU type twice")
        return v

    @field_validator("models")
    @classmethod
    def _model_names(cls, v: dict[str, ModelConfig]) -> dict[str, ModelConfig]:
        for name in v:
            if not re.fullmatch(r"[a-z][a-z0-9-]{0,30}", name):
                raise ValueError(f"model name {name!r} must be lowercase letters, digits and '-', "
                                 "starting with a letter (it becomes part of the pod name)")
        served = [m.served_model_name for m in v.values()]
        dupes = sorted({s for s in served if served.count(s) > 1})
        if dupes:
            raise ValueError(f"servedModelName {dupes} is used by more than one model; give each model its own")
        return v

    def gpu_types_for(self, model: ModelConfig) -> list[str]:
        return model.gpu_types or self.gpu_types


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
        "dataCenter": get(f"{NS}:dataCenter") or env.get("PREFERRED_DATACENTER") or "EU-RO-1",
        "networkVolumeId": get(f"{NS}:networkVolumeId") or env.get("NETWORK_VOLUME_ID"),
        "gpuTypes": DEFAULT_GPU_TYPES if get(f"{NS}:gpuTypes") is None else _json(get(f"{NS}:gpuTypes"), "gpuTypes", problems),
        "models": _json(get(f"{NS}:models"), "models", problems),
        "apiKey": get("runpod:apiKey") or env.get("RUNPOD_API_KEY"),
        "hfToken": get(f"{NS}:hfToken") or env.get("HF_TOKEN"),
    }
    for key, conv in (("cloud", str), ("image", str), ("containerDiskGb", int), ("readyTimeoutSeconds", int),
                      ("minCudaVersion", str), ("vllmVersion", str), ("openwebuiVersion", str),
                      ("webuiAdminEmail", str), ("startSsh", bool)):
        value = get(f"{NS}:{key}")
        if value is not None:
            raw[key] = _json(value, key, problems) if conv in (int, float, bool) else value
    if raw["models"] is None and not problems:
        problems.append(f"{NS}:models is not set: describe at least one model (see Pulumi.dev.yaml)")
    if problems:
        raise ConfigError(problems)
    if not raw["apiKey"]:  # reported with the other problems, not after they are fixed
        problems.append("runpod:apiKey is not set: run `pulumi config set --secret runpod:apiKey <key>` "
                        "or export RUNPOD_API_KEY")
    try:
        cfg = StackConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(problems + [_explain(err) for err in e.errors()]) from None
    needing = [n for n, m in cfg.models.items() if m.needs_hf_token]
    if needing and not cfg.hf_token:
        problems.append(f"{NS}:hfToken: models {needing} need a HuggingFace token: run "
                        f"`pulumi config set --secret {NS}:hfToken <token>` or export HF_TOKEN")
    if problems:
        raise ConfigError(problems)
    return cfg


def _explain(err: dict[str, Any]) -> str:
    """One pydantic error → `runpod-deploy:models.olmocr.gpuCount: must be ≥ 1 (got 0)`."""
    loc = [str(p) for p in err["loc"]]
    key = ("runpod:apiKey" if loc[:1] == ["apiKey"] else f"{NS}:" + ".".join(loc)) if loc else f"{NS}"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown setting; check its spelling against the README's config table"
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


def check_against_runpod(cfg: StackConfig, client: Any) -> None:
    """The checks that need the API, before any pod is created: every GPU type id exists in the
    catalog, and the network volume exists in the configured data center."""
    from runpod_provider import api_errors as errors

    problems: list[str] = []
    try:
        known = {g.id for g in client.gpu_types(cloud=cfg.cloud)}
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
    if problems:
        raise ConfigError(problems)


def from_pulumi() -> StackConfig:
    """Load and check the stack's config inside a Pulumi program. Problems stop the program with
    pulumi.RunError (a message, no traceback) before any resource is declared."""
    import pulumi

    from runpod_provider.client import RunPodClient

    def get(full_key: str) -> str | None:
        ns, key = full_key.split(":", 1)
        return pulumi.Config(ns).get(key)

    try:
        cfg = load(get, pulumi.get_project(), pulumi.get_stack())
        client = RunPodClient(cfg.api_key)
        try:
            check_against_runpod(cfg, client)
        finally:
            client.close()
    except ConfigError as e:
        raise pulumi.RunError(str(e)) from None
    return cfg
