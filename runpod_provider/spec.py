"""The Pod resource's inputs: one pydantic model, and the single declaration of which inputs
replace the pod and which update it in place.

`check()` validates with `PodSpec` and turns each pydantic error into a CheckFailure that names
the property and the fix. No API call happens here: the engine calls check() on preview too.
"""

from __future__ import annotations

import re
import secrets
import shlex
import string
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# --- replace vs update, declared once -----------------------------------------------------------
# RunPod v2 cannot PATCH these (gpu, cloud, dataCenterIds, the network mount's volume), so a change
# means a new pod. `volume_mount_path` could be patched, but moving /workspace under a running
# startup script is a new pod in all but name.
REPLACE_KEYS = (
    "gpu_type_ids",
    "gpu_count",
    "data_center_ids",
    "cloud",
    "network_volume_id",
    "volume_mount_path",
    "min_cuda_version",
    "start_ssh",
)
# PATCH /pods/{id} takes these; the container restarts with the new values.
PATCH_KEYS = ("name", "image", "env", "secret_env", "ports", "start_command", "container_disk_gb")
# Changes that touch no pod field: `running` is a stop/start action, the rest is provider-side.
ACTION_KEYS = ("running",)
LOCAL_KEYS = ("readiness", "ready_timeout_s")
INPUT_KEYS = REPLACE_KEYS + PATCH_KEYS + ACTION_KEYS + LOCAL_KEYS + ("name_prefix",)

PORT_RE = re.compile(r"^\d{1,5}/(http|tcp)$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NAME_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
NAME_SUFFIX_LEN = 6


class Probe(BaseModel):
    """An HTTP GET through RunPod's proxy that must answer 200 before the pod counts as ready."""

    model_config = ConfigDict(extra="forbid")
    port: int = Field(ge=1, le=65535, description="an http port listed in `ports`")
    path: str = Field(default="/health", pattern=r"^/")


class PodSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name_prefix: str = Field(
        min_length=1, max_length=120, pattern=r"^[a-z0-9][a-z0-9-]*$",
        description="pod names are <name_prefix>-<6 random chars>, unique per resource",
    )
    name: str = Field(min_length=1, description="the pod's name on RunPod (set by check)")
    image: str = Field(min_length=1)
    gpu_type_ids: list[str] = Field(min_length=1, description="GPU type ids, most preferred first")
    gpu_count: int = Field(default=1, ge=1, le=8)
    data_center_ids: list[str] = Field(min_length=1)
    cloud: Literal["SECURE", "COMMUNITY"] = "SECURE"
    network_volume_id: str | None = None
    volume_mount_path: str = Field(default="/workspace", pattern=r"^/")
    min_cuda_version: str | None = Field(default=None, pattern=r"^\d+\.\d+$")
    start_ssh: bool = False
    container_disk_gb: int = Field(default=50, ge=1, le=4096)
    ports: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    secret_env: dict[str, str] = Field(default_factory=dict)
    start_command: list[str] = Field(default_factory=list)
    running: bool = True
    readiness: list[Probe] = Field(default_factory=list)
    ready_timeout_s: int = Field(default=1800, ge=1, description="own deadline: dynamic resources ignore customTimeouts")

    @field_validator("gpu_type_ids", "data_center_ids")
    @classmethod
    def _no_blank_or_duplicate(cls, v: list[str]) -> list[str]:
        if any(not s.strip() for s in v):
            raise ValueError("entries must be non-empty ids")
        if len(set(v)) != len(v):
            raise ValueError("entries must not repeat")
        return v

    @field_validator("ports")
    @classmethod
    def _ports(cls, v: list[str]) -> list[str]:
        for p in v:
            if not PORT_RE.match(p):
                raise ValueError(f"{p!r} is not '<port>/http' or '<port>/tcp' (e.g. '8000/http')")
        return v

    @field_validator("env", "secret_env")
    @classmethod
    def _env_keys(cls, v: dict[str, str]) -> dict[str, str]:
        for k in v:
            if not ENV_KEY_RE.match(k):
                raise ValueError(f"{k!r} is not a valid environment variable name")
        return v

    @model_validator(mode="after")
    def _cross_field(self) -> "PodSpec":
        both = set(self.env) & set(self.secret_env)
        if both:
            raise ValueError(f"env and secret_env both set {sorted(both)}; keep each key in one of them")
        http = {int(p.split("/")[0]) for p in self.ports if p.endswith("/http")}
        for probe in self.readiness:
            if probe.port not in http:
                raise ValueError(
                    f"readiness probe port {probe.port} is not exposed: add '{probe.port}/http' to ports"
                )
        return self

    # --- rendering to the API --------------------------------------------------------------------
    @property
    def args(self) -> str:
        """v2 takes the start command as ONE string; shlex.join keeps every argv element intact
        (a naive ' '.join breaks `bash -c '<script>'`)."""
        return shlex.join(self.start_command)

    @property
    def full_env(self) -> dict[str, str]:
        """PATCH replaces the pod's whole env map, so every update sends plain and secret env."""
        return {**self.env, **self.secret_env}


def new_pod_name(prefix: str) -> str:
    return f"{prefix}-" + "".join(secrets.choice(NAME_SUFFIX_ALPHABET) for _ in range(NAME_SUFFIX_LEN))


def is_pod_name_of(prefix: str, pod_name: str) -> bool:
    """True for names this resource's creates produce (used to find pods an interrupted create
    left behind). Anchored, so model `olmocr` never matches `olmocr-2`'s pods."""
    return re.fullmatch(re.escape(prefix) + r"-[a-z0-9]{%d}" % NAME_SUFFIX_LEN, pod_name) is not None


def describe_errors(err: ValidationError | ValueError) -> list[tuple[str, str]]:
    """(property, reason-with-fix) pairs for CheckFailure."""
    if not isinstance(err, ValidationError):
        return [("", str(err))]
    out = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(inputs)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = f"unknown input; the Pod accepts: {', '.join(sorted(PodSpec.model_fields))}"
        elif e["type"] == "missing":
            msg = "required input is missing"
        # Echo the bad value to help the user, except where it may be a secret.
        if e["type"] not in ("missing", "extra_forbidden") and not loc.startswith("secret_env"):
            msg = f"{msg} (got {e.get('input')!r})"
        out.append((loc, msg))
    return out
