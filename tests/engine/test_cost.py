"""Paying only for GPUs in use, through the real CLI against the emulator: the price ceiling
(`maxPricePerHour`), the worst case preview reports, and the idle-stop outputs. Catalog prices in
the emulator (SECURE, runpod_emulator/catalog.py): L40S 0.86, A100 80GB PCIe 1.39, RTX 4090 0.69 $/h."""

from __future__ import annotations

import pytest

from devkit.cli import CommandError
from tests.engine.harness import assert_no_orphans, deploy, dev_models
from tests.engine.reliability import record

SECTION = "cost"

L40S, A100, RTX4090 = "NVIDIA L40S", "NVIDIA A100 80GB PCIe", "NVIDIA GeForce RTX 4090"


def creates(emu) -> list[str]:
    return [r["path"] for r in emu.requests if r["method"] == "POST" and r["path"] == "/v2/pods"]


def test_preview_reports_the_stacks_worst_case_from_the_catalog(engine_emulator, tmp_path, monkeypatch):
    d = deploy(engine_emulator, tmp_path, monkeypatch)
    preview = d.preview()
    # No ceiling: each pod may land on the dearest GPU type of its walk (A100, 1.39 $/h).
    assert ("worst case $2.78/h for 2 running pod(s) (catalog prices): olmocr ≤ $1.39/h on NVIDIA A100 80GB PCIe; "
            "qwen3vl ≤ $1.39/h on NVIDIA A100 80GB PCIe") in preview.stdout
    assert creates(engine_emulator) == []

    models = dev_models()
    models["qwen3vl"]["running"] = False  # a stopped model bills no GPU
    d.write_config({**d.config, "models": models, "maxPricePerHour": 0.9})
    assert "worst case $0.86/h for 1 running pod(s) (catalog prices): olmocr ≤ $0.86/h on NVIDIA L40S, " \
           "ceiling $0.9/h" in d.preview().stdout
    record(SECTION, "`preview` of the team's stack, then with one model stopped and a $0.9/h ceiling",
           "preview printed the worst case from the catalog ($2.78/h: each pod on the dearest GPU of its walk; then "
           "$0.86/h: a stopped model bills no GPU, the ceiling caps the walk); no create", 0)


def test_a_ceiling_skips_dearer_gpus_and_the_outputs_say_what_bills_and_what_may(engine_emulator, tmp_path,
                                                                                monkeypatch):
    models = dev_models()
    models["olmocr"]["idleStopMinutes"] = 30
    models["qwen3vl"]["maxPricePerHour"] = 1.0  # the model's own ceiling wins over the stack's
    d = deploy(engine_emulator, tmp_path, monkeypatch, models=models, extra={"maxPricePerHour": 0.8})
    up = d.up()
    out = {k: v.value for k, v in up.outputs.items()}

    # olmocr: L40S (0.86) and A100 (1.39) are above 0.8, so the walk creates on the 4090 only.
    assert (out["olmocr_gpu_type"], out["olmocr_cost_per_hr"], out["olmocr_max_price_per_hr"]) == (RTX4090, 0.69, 0.8)
    # qwen3vl: 1.0 lets the L40S in.
    assert (out["qwen3vl_gpu_type"], out["qwen3vl_cost_per_hr"], out["qwen3vl_max_price_per_hr"]) == (L40S, 0.86, 1.0)
    assert len(creates(engine_emulator)) == 2  # no create was even tried on a GPU above the ceiling
    assert out["worst_case_cost_per_hr"] == pytest.approx(0.69 + 0.86)

    # Idle stop: on for olmocr after 30 min (its pod got IDLE_STOP_MINUTES), off for qwen3vl.
    assert (out["olmocr_idle_stop_minutes"], out.get("qwen3vl_idle_stop_minutes")) == (30, None)
    pods = {p["id"]: p for p in engine_emulator.pods()}
    assert pods[out["olmocr_pod_id"]]["env"]["IDLE_STOP_MINUTES"] == "30"
    assert "IDLE_STOP_MINUTES" not in pods[out["qwen3vl_pod_id"]]["env"]
    assert out["models"]["olmocr"]["idle_stop_minutes"] == 30 and out["models"]["olmocr"]["max_price_per_hr"] == 0.8
    assert out["models"]["qwen3vl"]["idle_stop_minutes"] is None
    assert out["models"]["qwen3vl"]["max_price_per_hr"] == 1.0 and out["models"]["qwen3vl"]["cost_per_hr"] == 0.86

    # Nothing to do on a second up: the ceiling and idle stop are stable inputs.
    assert set(d.up().changes) <= {"same"}
    n = assert_no_orphans(d, engine_emulator)
    record(SECTION, "a $0.8/h stack ceiling, a $1.0/h model ceiling, idle stop after 30 min for one model",
           "no create was tried above a ceiling (olmocr on the RTX 4090 at $0.69/h, qwen3vl on the L40S at $0.86/h); "
           "the outputs give each pod's price, ceiling and idle stop, and the worst case; a second `up` changed "
           "nothing", n)


def test_when_the_ceiling_leaves_no_gpu_with_capacity_the_error_gives_each_reason(engine_emulator, tmp_path,
                                                                                  monkeypatch):
    models = dev_models()
    del models["qwen3vl"]
    d = deploy(engine_emulator, tmp_path, monkeypatch, models=models, extra={"maxPricePerHour": 0.7})
    engine_emulator.set_stock("EU-RO-1", RTX4090, "NONE")  # the one GPU under the ceiling is sold out
    with pytest.raises(CommandError) as e:
        d.up()
    msg = str(e.value)
    for part in (f"{L40S}: $0.86/h in SECURE is above maxPricePerHour $0.7/h",
                 f"{A100}: $1.39/h in SECURE is above maxPricePerHour $0.7/h",
                 f"{RTX4090}: 400 ", "(catalog stock: NONE)", "or raise maxPricePerHour"):  # 4090: tried, refused
        assert part in msg, f"{part!r} not in:\n{msg[-2500:]}"
    # At most the 4090 was tried; nothing bills.
    assert len(creates(engine_emulator)) <= 1 and engine_emulator.pods() == []
    record(SECTION, "a $0.7/h ceiling with the one GPU under it sold out",
           "`up` failed giving each GPU's reason (above the ceiling, or refused with the catalog stock) and the fix "
           "(raise maxPricePerHour); no pod", assert_no_orphans(d, engine_emulator))
