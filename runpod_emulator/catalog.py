"""The emulator's fixed world: GPU types, data centers, seeded network volumes, default stock.

Prices are USD/hour for one GPU on SECURE / COMMUNITY cloud: plausible round numbers chosen for
the emulator, not quotes. A pod's `cost` is the price for its cloud times `gpu.count` (the spec's
`Pod.cost`, runpod/docs api-reference-v2 createPod).
"""
from __future__ import annotations

from dataclasses import dataclass

AVAILABILITY_LEVELS = ("NONE", "LOW", "MEDIUM", "HIGH")


@dataclass(frozen=True)
class GpuSpec:
    id: str
    name: str  # a display name, not an id: `gpu.id` takes `id` (GpuType in the spec)
    pool: str | None
    manufacturer: str
    memory: int  # VRAM GB
    secure_price: float
    community_price: float
    max_count: int
    # Host resources per GPU: fill the Pod's gpu.vcpuCount/memory and the minRamPerGpu filters.
    vcpu_per_gpu: int
    ram_per_gpu: int
    community: bool = True

    def price(self, cloud: str) -> float:
        return self.secure_price if cloud == "SECURE" else self.community_price

    def as_api(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "pool": self.pool,
            "manufacturer": self.manufacturer,
            "memory": self.memory,
            "secure": True,
            "community": self.community,
            "price": {"secure": self.secure_price, "community": self.community_price},
            "maxCount": {"secure": self.max_count, "community": self.max_count if self.community else 0},
        }


GPUS = [
    # The three GPUs the project prefers, in its order (Pulumi.dev.yaml).
    GpuSpec("NVIDIA L40S", "L40S", "ADA_48_PRO", "NVIDIA", 48, 0.86, 0.79, 8, 16, 62),
    GpuSpec("NVIDIA A100 80GB PCIe", "A100 PCIe", "AMPERE_80", "NVIDIA", 80, 1.39, 1.19, 8, 8, 117),
    GpuSpec("NVIDIA GeForce RTX 4090", "RTX 4090", "ADA_24", "NVIDIA", 24, 0.69, 0.34, 8, 6, 41),
    # Look-alikes of the ids above, and a GPU only the secure cloud has.
    GpuSpec("NVIDIA H100 80GB HBM3", "H100 SXM", "HOPPER_80", "NVIDIA", 80, 2.69, 2.39, 8, 20, 125),
    GpuSpec("NVIDIA A100-SXM4-80GB", "A100 SXM", "AMPERE_80", "NVIDIA", 80, 1.49, 1.39, 8, 16, 117),
    GpuSpec("AMD Instinct MI300X OAM", "MI300X", None, "AMD", 192, 2.49, 0.0, 8, 24, 283, community=False),
]
GPUS_BY_ID = {g.id: g for g in GPUS}


@dataclass(frozen=True)
class DataCenterSpec:
    id: str
    name: str
    cuda_versions: tuple  # host CUDA versions here; a pod gets the highest its constraints allow


DATA_CENTERS = [
    DataCenterSpec("EU-RO-1", "Europe Romania 1", ("12.8", "13.0")),
    DataCenterSpec("EU-SE-1", "Europe Sweden 1", ("12.4", "12.8")),
    DataCenterSpec("US-TX-3", "US Texas 3", ("12.6", "12.8")),
    DataCenterSpec("US-KS-2", "US Kansas 2", ("12.8", "13.0")),
]
DATA_CENTERS_BY_ID = {d.id: d for d in DATA_CENTERS}

PREFERRED_GPUS = ("NVIDIA L40S", "NVIDIA A100 80GB PCIe", "NVIDIA GeForce RTX 4090")


def default_stock() -> dict:
    """(dataCenterId, gpuId) -> availability level; pairs not listed are NONE."""
    stock = {(dc.id, gpu): "HIGH" for dc in DATA_CENTERS for gpu in PREFERRED_GPUS}
    stock.update({
        ("US-TX-3", "NVIDIA H100 80GB HBM3"): "LOW",
        ("US-KS-2", "NVIDIA H100 80GB HBM3"): "MEDIUM",
        ("US-KS-2", "NVIDIA A100-SXM4-80GB"): "MEDIUM",
        ("US-TX-3", "AMD Instinct MI300X OAM"): "LOW",
    })
    return stock


def seeded_volumes() -> list[dict]:
    """Network volumes that exist in a fresh world (API shape)."""
    return [
        {"id": "fuzzvol01eu", "name": "fuzzion-models", "size": 200, "dataCenter": "EU-RO-1", "type": "STANDARD"},
        {"id": "usvol0001", "name": "fuzzion-models-us", "size": 100, "dataCenter": "US-TX-3", "type": "STANDARD"},
    ]
