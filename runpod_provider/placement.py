"""The GPU walk's policy: which GPU type of the preference list a create tries, in what order, and
why each one was passed over (catalog price above the ceiling, refused for capacity or access, an
answer lost twice). The provider (pod.py) calls `place`; `say` reports progress on the pod's line."""

from __future__ import annotations

from collections.abc import Callable

from . import api_errors, server_hooks
from .client import RunPodClient
from .provider_errors import CreateInterrupted, CreateOutcomeUnknown, NoCapacityAnywhere
from .spec import PodSpec
from .wire import PodInfo


def place(client: RunPodClient, spec: PodSpec, unknown: list | None = None, *,
          say: Callable[[str], None]) -> PodInfo:
    """Walk the GPU preference list: v2 places one GPU type per create and never falls back.
    createPod's table: a 400 (a rule, or no capacity, in varying words) or a 403 (no access to
    that pool) means try the next candidate; 422, 401, 402 stop at once. Catalog stock is only
    a hint, shown in the error: it lags, and one refused create costs less than a missed GPU."""
    unknown = [] if unknown is None else unknown  # creates whose outcome stayed unknown (5xx, no answer)
    stock = _catalog_stock(client, spec)
    over_ceiling = _over_price_ceiling(client, spec)
    failures: list[str] = []
    for gpu in spec.gpu_type_ids:
        if server_hooks.CANCELLED.is_set():
            raise CreateInterrupted(None)
        if gpu in over_ceiling:
            failures.append(over_ceiling[gpu])
            continue
        hint = f" (catalog stock: {stock[gpu]})" if stock and gpu in stock else ""
        for attempt in (1, 2):
            try:
                pod = client.create_pod(spec.create_request(gpu))
            except (api_errors.CapacityError, api_errors.BadRequestError, api_errors.ForbiddenError) as e:
                failures.append(f"{gpu}: {e.status} {e.detail or e.title or 'no detail'}{hint}")
                break
            except (api_errors.ServerError, api_errors.TransportError) as e:
                # The client found no pod to adopt: RunPod's guidance for createPod is to try the same
                # request again, once; then the walk moves on. The create may still have taken effect.
                unknown.append(e)
                answered = e.status or "no answer"
                if attempt == 1:
                    say(f"the create on {gpu} failed ({answered}) and no pod named {spec.name} appeared "
                        f"within {client.adopt_wait_s:.0f}s: trying {gpu} once more")
                    continue
                failures.append(f"{gpu}: {answered} twice, and no pod appeared")
                break
            say(f"created pod {pod.id} on {gpu}")
            return pod
    if unknown:
        # Nothing placed, but a create in doubt may still appear: the next create sweeps it.
        raise CreateOutcomeUnknown(spec.name, unknown[-1], client.adopt_wait_s)
    raise NoCapacityAnywhere(failures, spec.data_center_ids)


def _catalog_stock(client: RunPodClient, spec: PodSpec) -> dict[str, str] | None:
    """Best stock level per GPU type across the allowed data centers. Advisory only: a create can
    still be refused for capacity, and a catalog outage must not block a create."""
    try:
        # The same CUDA floor the create sends, so stock means what the create can get.
        types = client.gpu_types(gpu_count=spec.gpu_count, cloud=spec.cloud, min_cuda_version=spec.min_cuda_version)
    except api_errors.RunPodError:
        return None
    order = ["NONE", "LOW", "MEDIUM", "HIGH"]
    out = {}
    for t in types:
        levels = [t.stock_in(dc) or "NONE" for dc in spec.data_center_ids]
        out[t.id] = max(levels, key=lambda lv: order.index(lv) if lv in order else 0)
    return out


def _over_price_ceiling(client: RunPodClient, spec: PodSpec) -> dict[str, str]:
    """GPU types of the walk that `max_price_per_hour` rules out, each with its reason: the catalog
    price in the pod's cloud (times gpu_count) is above the ceiling, or unknown. A ceiling is a
    promise about billing, so an unreadable catalog rules every type out instead of guessing."""
    ceiling = spec.max_price_per_hour
    if ceiling is None:
        return {}
    try:
        catalog = {t.id: t for t in client.gpu_types(gpu_count=spec.gpu_count, cloud=spec.cloud)}
    except api_errors.RunPodError as e:
        return {g: f"{g}: price unknown (the GPU catalog did not answer: {e}), so not created under "
                   f"maxPricePerHour ${ceiling:g}/h" for g in spec.gpu_type_ids}
    out = {}
    for gpu in spec.gpu_type_ids:
        price = catalog[gpu].hourly_price(spec.cloud, spec.gpu_count) if gpu in catalog else None
        if price is None:
            out[gpu] = f"{gpu}: no catalog price in {spec.cloud}, so not created under maxPricePerHour ${ceiling:g}/h"
        elif price > ceiling + 1e-9:
            out[gpu] = f"{gpu}: ${price:g}/h in {spec.cloud} is above maxPricePerHour ${ceiling:g}/h"
    return out
