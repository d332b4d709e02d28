"""Pydantic models of the RunPod REST v2 wire format.

Requests are strict: unknown fields are refused here, because the API answers any unknown or
leftover v1 key with a 422. `to_body()` drops None, so a field left unset is absent from the JSON.
Responses are tolerant: unknown keys are ignored, "required" keys may be missing or null, and
numbers may arrive as strings (pydantic's lax mode converts "0.86" to 0.86).

Attribute names are the API's own JSON names (camelCase), so a model reads like the payload.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WrapValidator,
    model_validator,
)


class PodStatus(StrEnum):
    """The pod statuses this project acts on. `PodInfo.status` stays a plain string, so a status the
    API adds later does not break parsing; these members compare equal to it."""

    PROVISIONING = "PROVISIONING"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    EXITED = "EXITED"  # stopped: GPU released, disk kept; `podAction` start brings it back
    ERROR = "ERROR"
    TERMINATED = "TERMINATED"


# The status groups the provider acts on, named once.
# A container runs, or is on its way (RunPod shows RUNNING before it really runs: PodInfo.container_up).
UP_STATUSES = frozenset({PodStatus.PROVISIONING, PodStatus.STARTING, PodStatus.RUNNING})
# Stopped: nothing runs, and a `start` action is what brings the container back (EXITED: stopped by
# us, the console, an idle stop or the container exiting; ERROR: the container could not run).
STOPPED_STATUSES = frozenset({PodStatus.EXITED, PodStatus.ERROR})
# Final even right after a start or PATCH (an EXITED then may still be the old container's status).
FINAL_STATUSES = frozenset({PodStatus.ERROR, PodStatus.TERMINATED})
# Nothing runs, and nothing will without an action.
DOWN_STATUSES = STOPPED_STATUSES | {PodStatus.TERMINATED}

Cloud = Literal["SECURE", "COMMUNITY"]
Port = Annotated[str, StringConstraints(pattern=r"^\d+/(http|tcp)$")]
CudaVersion = Annotated[str, StringConstraints(pattern=r"^\d+\.\d+$")]


# --- requests ------------------------------------------------------------------------------------


class _Request(BaseModel):
    # hide_input_in_errors: env values are secrets (env is also left out of reprs).
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    def to_body(self) -> dict[str, Any]:
        """The JSON body to send, with unset (None) fields absent."""
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


class GpuRequest(_Request):
    id: str = Field(min_length=1, description="One GPU type id from /catalog/gpus, e.g. 'NVIDIA L40S'")
    # Quirk: leaving out gpu.count made every create fail with a capacity 400, so it is always sent.
    count: int = Field(default=1, ge=1)
    # The host CUDA floor. (The API's other form, allowedCudaVersions, is not used: a floor says it.)
    minCudaVersion: CudaVersion | None = None


class NetworkMount(_Request):
    volumeId: str = Field(min_length=1)
    path: str = Field(min_length=1, description="Mount path; v2 has no default")


class Mounts(_Request):
    network: list[NetworkMount] | None = Field(default=None, max_length=1)


class CreatePodRequest(_Request):
    """Body of POST /pods. `name` must be unique to this create: create adoption matches on it."""

    name: str = Field(min_length=1)
    image: str = Field(min_length=1)
    gpu: GpuRequest
    cloud: Cloud = "SECURE"
    dataCenterIds: list[str] | None = None
    mounts: Mounts | None = None
    disk: int | None = Field(default=None, ge=1)
    env: dict[str, str] | None = Field(default=None, repr=False)
    ports: list[Port] | None = None
    args: str | None = None
    startSsh: bool | None = None


class UpdatePodRequest(_Request):
    """Body of PATCH /pods/{id}: only the fields set change. `ports=[]` clears the ports."""

    name: str | None = Field(default=None, min_length=1)
    image: str | None = Field(default=None, min_length=1)
    args: str | None = None
    disk: int | None = Field(default=None, ge=1)
    ports: list[Port] | None = None
    # Quirk: PATCH env replaces the whole map (keys not sent are dropped), so send all of it.
    env: dict[str, str] | None = Field(default=None, repr=False)
    # The volume mount is replace-only (runpod_provider/spec.py), so `mounts` is never PATCHed.


class PodActionRequest(_Request):
    action: Literal["start", "stop", "restart", "terminate"]


# --- responses -----------------------------------------------------------------------------------


def _lenient_datetime(value: Any, handler: Any) -> datetime | None:
    try:
        return handler(value)
    except ValidationError:
        return None


LenientDatetime = Annotated[datetime | None, WrapValidator(_lenient_datetime)]


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, hide_input_in_errors=True)

    @model_validator(mode="before")
    @classmethod
    def _null_means_absent(cls, data: Any) -> Any:
        # Quirk: live payloads omit or null keys the spec marks required; fall back to defaults.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


class RuntimePort(_Response):
    private: int | None = None
    public: int | None = None
    type: str | None = None
    ip: str | None = None


class PodRuntime(_Response):
    uptime: int | None = None
    ports: list[RuntimePort] = []


class PodGpu(_Response):
    id: str | None = None
    count: int | None = None
    # Quirk: live pods lacked vcpuCount/memory although the spec requires them.
    vcpuCount: float | None = None
    memory: float | None = None


class PodNetworkMount(_Response):
    volumeId: str | None = None
    path: str | None = None


class PodPersistentMount(_Response):
    size: int | None = None
    path: str | None = None


class PodMounts(_Response):
    network: list[PodNetworkMount] = []
    persistent: PodPersistentMount | None = None


class SshEndpoint(_Response):
    host: str | None = None
    port: int | None = None
    username: str | None = None
    command: str | None = None


class PodSsh(_Response):
    proxy: SshEndpoint | None = None
    direct: SshEndpoint | None = None


class PodInfo(_Response):
    id: str
    name: str = ""
    status: str = ""
    actions: list[str] = []
    image: str = ""
    args: str = ""
    disk: int | None = None
    # None when the answer omits or nulls them (live v2 has omitted fields the spec requires): that
    # means "unknown", never "empty", or every refresh would read the pod's env/ports as cleared.
    ports: list[str] | None = None
    env: dict[str, str] | None = Field(default=None, repr=False)
    registry: str | None = None
    cloud: str | None = None
    dataCenterId: str | None = None
    cudaVersion: str | None = None
    cost: float | None = None
    locked: bool = False
    gpu: PodGpu | None = None
    mounts: PodMounts | None = None
    ssh: PodSsh | None = None
    runtime: PodRuntime | None = None
    createdAt: LenientDatetime = None
    startedAt: LenientDatetime = None

    @property
    def container_up(self) -> bool:
        """RUNNING with a runtime block. Quirk: v2 reports RUNNING with `runtime: null` first, before
        the container exists.

        Only the API's view: the services inside still need their own health checks.
        """
        return self.status == PodStatus.RUNNING and self.runtime is not None

    @property
    def gone(self) -> bool:
        """TERMINATED: deleted (v2 may still show it for a while)."""
        return self.status == PodStatus.TERMINATED

    @property
    def down(self) -> bool:
        """EXITED, ERROR or TERMINATED: nothing runs, and nothing will without an action."""
        return self.status in DOWN_STATUSES


class NetworkVolume(_Response):
    id: str
    name: str = ""
    size: int | None = None
    dataCenter: str | None = None
    type: str | None = None


class GpuPrice(_Response):
    """USD per hour for ONE GPU of the type; multiply by the count."""

    secure: float | None = None
    community: float | None = None
    serverless: float | None = None


class DataCenterStock(_Response):
    id: str
    name: str | None = None
    availability: str | None = None


class GpuType(_Response):
    id: str
    name: str = ""
    manufacturer: str | None = None
    memory: int | None = None
    secure: bool | None = None
    community: bool | None = None
    price: GpuPrice | None = None
    availability: str | None = None
    dataCenters: list[DataCenterStock] | None = None

    def stock_in(self, data_center: str) -> str | None:
        """"NONE" | "LOW" | "MEDIUM" | "HIGH" for that data center; None if stock was not read.

        The API lists only the data centers that offer the GPU in the requested configuration,
        and omits `dataCenters` when it is unavailable everywhere: both mean NONE.
        """
        if self.dataCenters is not None:
            for dc in self.dataCenters:
                if dc.id == data_center:
                    return dc.availability
            return "NONE"
        return "NONE" if self.availability == "NONE" else None

    def hourly_price(self, cloud: str, count: int = 1) -> float | None:
        """Catalog USD/hour for `count` GPUs of this type in `cloud` (`price.secure`/`price.community`
        are per GPU, listGpuTypes); None when the catalog gives none. A pod bills its own `cost`."""
        per_gpu = None if self.price is None else (self.price.secure if cloud == "SECURE" else self.price.community)
        return None if per_gpu is None else round(per_gpu * count, 4)
