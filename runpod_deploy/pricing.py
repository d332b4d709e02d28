"""The price ceiling (`maxPricePerHour`) and the stack's worst case, from RunPod's GPU catalog.

Checked at preview, before any pod exists: a model whose every GPU type is above its ceiling is a
config error. The provider applies the same ceiling again at create time (runpod_provider/pod.py), on
the catalog it reads then. What a pod really bills is its `cost` (the `<model>_cost_per_hr` output).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .schema import NS, StackConfig


@dataclass(frozen=True)
class ModelPrice:
    name: str
    running: bool
    ceiling: float | None
    prices: dict[str, float | None]  # GPU type id (preference order) -> catalog $/h for the pod; None: unknown
    allowed: list[str]  # the GPU types the create may use (at or under the ceiling)

    @property
    def worst(self) -> tuple[float | None, str | None]:
        """The highest $/h this model's pod can bill, and on which GPU type (None when no price is known)."""
        known = [(p, g) for g, p in self.prices.items() if g in self.allowed and p is not None]
        return max(known) if known else (None, None)


def plan(cfg: StackConfig, gpu_types: list[Any]) -> dict[str, ModelPrice]:
    """Per model: the catalog price of each of its GPU types in `cfg.cloud` (times `gpuCount`), and
    those its ceiling allows. `gpu_types` are the catalog's `GpuType`s (runpod_provider.wire)."""
    catalog = {t.id: t for t in gpu_types}
    out = {}
    for name, model in cfg.models.items():
        ceiling = cfg.max_price_for(model)
        prices = {g: (catalog[g].hourly_price(cfg.cloud, model.gpu_count) if g in catalog else None)
                  for g in cfg.gpu_types_for(model)}
        allowed = [g for g, p in prices.items() if ceiling is None or (p is not None and p <= ceiling + 1e-9)]
        out[name] = ModelPrice(name, model.running, ceiling, prices, allowed)
    return out


def problems(prices: dict[str, ModelPrice], cfg: StackConfig) -> list[str]:
    """One line per model that no GPU type can serve under its ceiling, naming the key and the fix."""
    out = []
    for name, mp in prices.items():
        if mp.ceiling is None or mp.allowed:
            continue
        key = f"{NS}:models.{name}.maxPricePerHour" if cfg.models[name].max_price_per_hour is not None \
            else f"{NS}:maxPricePerHour"
        listed = ", ".join(f"{g} ${p:g}/h" if p is not None else f"{g} (no catalog price)"
                           for g, p in mp.prices.items())
        cheapest = min((p for p in mp.prices.values() if p is not None), default=None)
        fix = f"raise it to at least {cheapest:g}" if cheapest is not None else "raise it"
        out.append(f"{key}: ${mp.ceiling:g}/h is below the {cfg.cloud} price of every GPU type model {name!r} may "
                   f"use ({listed}); {fix}, or add a cheaper GPU type to its gpuTypes")
    return out


def worst_case(prices: dict[str, ModelPrice]) -> float | None:
    """The most the running pods can bill per hour together (catalog prices); None if one is unknown."""
    total = 0.0
    for mp in prices.values():
        if not mp.running:
            continue
        price, _ = mp.worst
        if price is None:
            return None
        total += price
    return round(total, 4)


def summary(prices: dict[str, ModelPrice]) -> str:
    """`worst case $1.72/h for 2 running pods (catalog prices): olmocr ≤ $0.86/h on NVIDIA L40S, …`"""
    running = [mp for mp in prices.values() if mp.running]
    parts = []
    for mp in running:
        price, gpu = mp.worst
        cap = f", ceiling ${mp.ceiling:g}/h" if mp.ceiling is not None else ""
        parts.append(f"{mp.name} ≤ ${price:g}/h on {gpu}{cap}" if price is not None
                     else f"{mp.name}: no catalog price{cap}")
    total = worst_case(prices)
    head = f"worst case ${total:g}/h" if total is not None else "worst case unknown"
    return f"{head} for {len(running)} running pod(s) (catalog prices): " + ("; ".join(parts) or "none")
