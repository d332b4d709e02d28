"""Where a create lands: the data centers a request allows, the GPU type's limits, the stock in
each data center and the host CUDA versions; and the live wordings of a refusal. Pure functions:
the world (state.py) passes its stock and volumes in and holds the lock around the call."""
from __future__ import annotations

from collections.abc import Callable

from . import catalog
from .messages import ApiError, not_found

# The 400 detail seen live when no machine fits the request (runpod_emulator/README.md).
CAPACITY_DETAIL = ("There are no longer any instances available with the requested specifications. "
                   "Please refresh and try again.")
# Live wording varies; these were reported (runpod/runpod-python#21, dstackai/dstack#1740,
# runpod/runpod-python#297). Placement failures cycle through them, so no client can rely on one.
CAPACITY_DETAILS = (
    CAPACITY_DETAIL,
    "There are no longer any instances available with the request specifications. Please try again later.",
    "There are no longer any instances available with enough disk space.",
)
# createPod's 403 row: "Your account cannot access the requested pool. Skip this candidate."
POOL_DETAIL = "Your account cannot access the requested pool."


def capacity_error(detail: str = CAPACITY_DETAIL) -> ApiError:
    return ApiError(400, detail)


def candidate_dcs(body: dict, mounts: dict, volumes: dict[str, dict]) -> list[str]:
    """Data centers the pod may go to, in order: `dataCenterIds` is an allow-list, not a
    preference (createPod: "does not fall back"; runpod/docs api-reference-v2)."""
    wanted = body.get("dataCenterIds") or []
    for dc in wanted:
        if dc not in catalog.DATA_CENTERS_BY_ID:
            raise ApiError(400, f"unknown data center '{dc}'")
    candidates = list(dict.fromkeys(wanted)) or [d.id for d in catalog.DATA_CENTERS]
    network = mounts.get("network")
    if network:
        volume = volumes.get(network[0]["volumeId"])
        if volume is None:
            raise not_found(f"network volume '{network[0]['volumeId']}' not found")
        if wanted and volume["dataCenter"] not in wanted:
            raise ApiError(400, f"network volume '{volume['id']}' is in {volume['dataCenter']}, "
                                f"which is not in dataCenterIds {wanted}; the pod must be in the "
                                "same data center as its network volume")
        candidates = [volume["dataCenter"]]  # no dataCenterIds: go where the volume is (unconfirmed)
    return candidates

def place_gpu(cfg: dict, cloud: str, candidates: list[str], *, stock: dict, denied_pools: set[str],
              capacity_error: Callable[[], ApiError]):
    spec = catalog.GPUS_BY_ID.get(cfg["id"])
    if spec is None:
        raise ApiError(400, f"gpu.id '{cfg['id']}' is not a known GPU type id; see GET /v2/catalog/gpus")
    if spec.id in denied_pools:
        raise ApiError(403, POOL_DETAIL)
    allowed, min_cuda = cfg.get("allowedCudaVersions") or [], cfg.get("minCudaVersion")
    if allowed and min_cuda:
        raise ApiError(400, "gpu.allowedCudaVersions and gpu.minCudaVersion cannot both be set")
    # Live quirk (seen by a client, see runpod_emulator/README.md): without an explicit
    # gpu.count every create failed for capacity.
    if "count" not in cfg:
        raise capacity_error()
    count = int(cfg["count"])
    if (count > spec.max_count or (cloud == "COMMUNITY" and not spec.community)
            or cfg.get("minRamPerGpu", 0) > spec.ram_per_gpu
            or cfg.get("minVcpuCountPerGpu", 0) > spec.vcpu_per_gpu):
        raise capacity_error()
    for dc_id in candidates:
        dc = catalog.DATA_CENTERS_BY_ID[dc_id]
        if stock.get((dc_id, spec.id), "NONE") == "NONE":
            continue
        cuda = pick_cuda(dc.cuda_versions, allowed, min_cuda)
        if cuda is None:
            continue
        gpu = {"id": spec.id, "count": count, "vcpuCount": spec.vcpu_per_gpu * count,
               "memory": spec.ram_per_gpu * count}
        return dc_id, cuda, gpu, round(spec.price(cloud) * count, 4)
    raise capacity_error()


def pick_cuda(offered, allowed, min_cuda) -> str | None:
    """The highest host CUDA version in a DC that the pod's constraints accept (exact list or floor)."""
    def key(v):
        major, minor = v.split(".")
        return int(major), int(minor)
    ok = [v for v in offered
          if (not allowed or v in allowed) and (min_cuda is None or key(v) >= key(min_cuda))]
    return max(ok, key=key) if ok else None
