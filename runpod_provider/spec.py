"""The Pod resource's inputs: one pydantic model. Each field declares, next to its type, what a
change to it does (`Change`); the key lists the provider diffs with are derived from that. The
spec also renders itself into the v2 create and update request bodies. `PodArgs` is the same
input list typed for the program (`Pod(name, PodArgs(...))`), with no validation or defaults of its own.

`check()` validates with `PodSpec` and turns each pydantic error into a CheckFailure that names
the property and the fix. No API call happens here: the engine calls check() on preview too.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import naming
from .wire import CreatePodRequest, GpuRequest, Mounts, NetworkMount, UpdatePodRequest

if TYPE_CHECKING:  # annotations only: the provider's spec needs no Pulumi runtime
    import pulumi

PORT_RE = re.compile(r"^\d{1,5}/(http|tcp)$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Change(StrEnum):
    """What a change to one input does. Every PodSpec field declares exactly one, as Annotated
    metadata: `gpu_count: Annotated[int, Change.REPLACE]`."""

    # Only `createPod` takes it (`updatePod` has no such field), so a change means a new pod.
    REPLACE = "replace"
    # `updatePod` (PATCH /pods/{podId}) takes it; the container restarts with the new values.
    PATCH = "patch"
    # A `podAction` (start/stop) on the same pod.
    ACTION = "action"
    # Provider-side only: no pod field changes.
    LOCAL = "local"


class Probe(BaseModel):
    """An HTTP GET through RunPod's proxy that must answer 200 before the pod counts as ready."""

    model_config = ConfigDict(extra="forbid")
    port: int = Field(ge=1, le=65535, description="an http port listed in `ports`")
    path: str = Field(default="/health", pattern=r"^/")


class PodSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # LOCAL: a new prefix gives a new `name` in check(), and that is what gets patched.
    name_prefix: Annotated[str, Change.LOCAL] = Field(
        min_length=1, max_length=naming.PREFIX_MAX, pattern=naming.PREFIX_PATTERN,
        description="pod names are <name_prefix>-<6 random chars>, unique per resource; the prefix ends with "
                    "the stack state's name token",
    )
    name: Annotated[str, Change.PATCH] = Field(min_length=1, description="the pod's name on RunPod (set by check)")
    image: Annotated[str, Change.PATCH] = Field(min_length=1)
    gpu_type_ids: Annotated[list[str], Change.REPLACE] = Field(
        min_length=1, description="GPU type ids, most preferred first")
    gpu_count: Annotated[int, Change.REPLACE] = Field(default=1, ge=1, le=8)
    data_center_ids: Annotated[list[str], Change.REPLACE] = Field(min_length=1)
    cloud: Annotated[Literal["SECURE", "COMMUNITY"], Change.REPLACE] = "SECURE"
    network_volume_id: Annotated[str | None, Change.REPLACE] = None
    # REPLACE although `updatePod` takes mounts: moving /workspace under a running startup script is
    # a new pod in all but name.
    volume_mount_path: Annotated[str, Change.REPLACE] = Field(default="/workspace", pattern=r"^/")
    min_cuda_version: Annotated[str | None, Change.REPLACE] = Field(default=None, pattern=r"^\d+\.\d+$")
    start_ssh: Annotated[bool, Change.REPLACE] = False
    container_disk_gb: Annotated[int, Change.PATCH] = Field(default=50, ge=1, le=4096)
    ports: Annotated[list[str], Change.PATCH] = Field(default_factory=list)
    env: Annotated[dict[str, str], Change.PATCH] = Field(default_factory=dict)
    secret_env: Annotated[dict[str, str], Change.PATCH] = Field(default_factory=dict)
    start_command: Annotated[list[str], Change.PATCH] = Field(default_factory=list)
    running: Annotated[bool, Change.ACTION] = True
    readiness: Annotated[list[Probe], Change.LOCAL] = Field(default_factory=list)
    ready_timeout_s: Annotated[int, Change.LOCAL] = Field(
        default=1800, ge=1, description="own deadline: dynamic resources ignore customTimeouts")
    ready_stall_s: Annotated[int, Change.LOCAL] = Field(
        default=600, ge=1, description="fail the wait after this long without a new log line or status")
    wake_without_gpu: Annotated[Literal["replace", "fail"], Change.LOCAL] = Field(
        default="replace", description="a stopped pod whose host GPU was rented (start refused, or up with zero "
                                       "GPUs): `replace` it with a new pod through the GPU walk (the old one is "
                                       "deleted once the new one serves), or `fail` saying so")
    max_price_per_hour: Annotated[float | None, Change.LOCAL] = Field(
        default=None, gt=0, description="USD/hour ceiling: GPU types whose catalog price in `cloud` (times "
                                        "`gpu_count`) is above it, or unknown, are not created")

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
    def _cross_field(self) -> PodSpec:
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

    def create_request(self, gpu: str) -> CreatePodRequest:
        """The `createPod` body for one GPU type of `gpu_type_ids` (v2 places one type per create)."""
        mounts = None
        if self.network_volume_id:
            mounts = Mounts(network=[NetworkMount(volumeId=self.network_volume_id, path=self.volume_mount_path)])
        return CreatePodRequest(
            name=self.name,
            image=self.image,
            gpu=GpuRequest(id=gpu, count=self.gpu_count, minCudaVersion=self.min_cuda_version),
            cloud=self.cloud,
            dataCenterIds=self.data_center_ids,
            mounts=mounts,
            disk=self.container_disk_gb,
            env=self.full_env,
            ports=self.ports,
            args=self.args or None,
            startSsh=self.start_ssh or None,
        )

    def update_request(self, changed: Iterable[str] | None = None,
                       foreign_env: dict[str, str] | None = None) -> UpdatePodRequest:
        """The `updatePod` body for the PATCH inputs in `changed` (default: all), each with its full
        desired value. Only what changed is sent: a rename alone must not reset the container.
        `env` goes whole, since a PATCH replaces the pod's entire env map, with `foreign_env` (keys
        RunPod injected, e.g. `startSsh`'s PUBLIC_KEY) carried over: dropping it kills SSH
        (runpod/runpodctl#268)."""
        keys = set(PATCH_KEYS if changed is None else changed)
        env_changed = bool(keys & {"env", "secret_env"})
        return UpdatePodRequest(
            name=self.name if "name" in keys else None,
            image=self.image if "image" in keys else None,
            args=self.args if "start_command" in keys else None,
            env={**(foreign_env or {}), **self.full_env} if env_changed else None,
            ports=self.ports if "ports" in keys else None,
            disk=self.container_disk_gb if "container_disk_gb" in keys else None)


@dataclasses.dataclass(kw_only=True)
class PodArgs:
    """The `Pod` resource's inputs as the program writes them: one attribute per `PodSpec` field but
    `name` (check() sets it), in PodSpec's order. PodSpec owns what each means, its validation and its
    default: an optional attribute left None sends nothing, so the provider applies PodSpec's default.
    A test keeps the two field lists (and which are required) equal."""

    name_prefix: pulumi.Input[str]
    image: pulumi.Input[str]
    gpu_type_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    gpu_count: pulumi.Input[int] | None = None
    data_center_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    cloud: pulumi.Input[Literal["SECURE", "COMMUNITY"]] | None = None
    network_volume_id: pulumi.Input[str] | None = None
    volume_mount_path: pulumi.Input[str] | None = None
    min_cuda_version: pulumi.Input[str] | None = None
    start_ssh: pulumi.Input[bool] | None = None
    container_disk_gb: pulumi.Input[int] | None = None
    ports: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None
    env: pulumi.Input[Mapping[str, pulumi.Input[str]]] | None = None
    secret_env: pulumi.Input[Mapping[str, pulumi.Input[str]]] | None = None
    start_command: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None
    running: pulumi.Input[bool] | None = None
    # Plain Probes, not Inputs: the SDK cannot serialize a pydantic object, so props() turns each into its dict.
    readiness: Sequence[Probe] | None = None
    ready_timeout_s: pulumi.Input[int] | None = None
    ready_stall_s: pulumi.Input[int] | None = None
    wake_without_gpu: pulumi.Input[Literal["replace", "fail"]] | None = None
    max_price_per_hour: pulumi.Input[float] | None = None

    def props(self) -> dict[str, Any]:
        """The resource's input bag: every attribute by name, None ones too (the SDK drops a None input,
        so the engine gets the same properties as from a dict that leaves the key out or sets it None).
        Not `dataclasses.asdict`: it deep-copies every value, and an Output cannot be copied."""
        props = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if self.readiness is not None:
            props["readiness"] = [p.model_dump() for p in self.readiness]
        return props


def change_kinds(model: type[BaseModel]) -> dict[str, Change]:
    """Each field's declared Change. Raises TypeError for a field that declares none or several:
    an undeclared field would otherwise be silently left out of diff and never update the pod."""
    kinds: dict[str, Change] = {}
    for name, info in model.model_fields.items():
        declared = [m for m in info.metadata if isinstance(m, Change)]
        if len(declared) != 1:
            raise TypeError(f"{model.__name__}.{name} declares {len(declared)} change kinds; give it exactly "
                            "one, e.g. `Annotated[int, Change.REPLACE]`")
        kinds[name] = declared[0]
    return kinds


CHANGE_KINDS = change_kinds(PodSpec)  # at import: a field without a kind fails every use of the provider
INPUT_KEYS = tuple(CHANGE_KINDS)
REPLACE_KEYS = tuple(k for k, c in CHANGE_KINDS.items() if c is Change.REPLACE)
PATCH_KEYS = tuple(k for k, c in CHANGE_KINDS.items() if c is Change.PATCH)
# A PATCH of any of these resets the container (v1 documented "resets it completely"; unconfirmed
# for v2, so assumed); a rename does not.
RESETTING_KEYS = tuple(k for k in PATCH_KEYS if k != "name")
ACTION_KEYS = tuple(k for k, c in CHANGE_KINDS.items() if c is Change.ACTION)
LOCAL_KEYS = tuple(k for k, c in CHANGE_KINDS.items() if c is Change.LOCAL)


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
