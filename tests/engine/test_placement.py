"""Placement: the GPU walk. v2 places one GPU type per create, so the provider walks the preference
list (L40S → A100 80GB PCIe → RTX 4090); catalog stock is a hint, every refusal moves the walk on
except those that no other GPU type can cure. Through the plain `pulumi` CLI against the emulator.
Price ceilings: tests/engine/test_cost.py."""

from __future__ import annotations

import time

import pytest

from devkit.cli import CommandError
from tests.engine.harness import answers, assert_no_orphans, deploy, fired, one_model, pod_id_in_state
from tests.engine.reliability import record

SECTION = "placement"
L40S, A100, RTX4090 = "NVIDIA L40S", "NVIDIA A100 80GB PCIe", "NVIDIA GeForce RTX 4090"
# A capacity wording seen live (dstackai/dstack#1740), other than the one the client once matched.
LATER = "There are no longer any instances available with the request specifications. Please try again later."


def test_every_refusal_moves_the_walk_on_even_when_the_catalog_says_yes(engine_emulator, tmp_path, monkeypatch):
    """L40S: 403 (no access to the pool). A100: the catalog shows stock (it lags) but the create answers a
    capacity 400 in a wording the client once did not match. The pod lands on the RTX 4090."""
    emu = engine_emulator
    emu.deny_pool(L40S)
    emu.set_stock("EU-RO-1", A100, "NONE")
    emu.set_catalog_stock("EU-RO-1", A100, "HIGH")
    emu.world.capacity_details = [LATER]
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    up = d.up()
    assert answers(emu, method="POST", path="/v2/pods") == [403, 400, 201]
    assert up.outputs["olmocr_gpu_type"].value == RTX4090
    [pod] = emu.pods()
    assert pod["gpu"]["id"] == RTX4090
    n = assert_no_orphans(d, emu)
    record(SECTION, "create: the L40S answers 403 (pool access); the A100, in stock by the catalog, answers a 400 "
           "worded \"…Please try again later.\"",
           "the walk went on past both to the RTX 4090 and created the pod there", n)


def test_catalog_stock_is_a_hint_not_a_veto(engine_emulator, tmp_path, monkeypatch):
    """The catalog lags: it says NONE for the L40S while a create there succeeds."""
    emu = engine_emulator
    emu.set_catalog_stock("EU-RO-1", L40S, "NONE")
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    up = d.up()
    assert up.outputs["olmocr_gpu_type"].value == L40S
    stock_reads = [r["query"] for r in emu.requests
                   if r["path"] == "/v2/catalog/gpus" and "minCudaVersion" in r["query"]]
    assert stock_reads and {q["minCudaVersion"] for q in stock_reads} == {"12.8"}  # what the create can get
    n = assert_no_orphans(d, emu)
    record(SECTION, "the catalog says NONE for the L40S (lagging) while a create there succeeds",
           "the L40S was still asked for and the pod placed on it; the stock read carried minCudaVersion 12.8", n)


def test_when_every_candidate_fails_one_error_lists_each(engine_emulator, tmp_path, monkeypatch):
    emu = engine_emulator
    emu.deny_pool(L40S)
    for gpu in (A100, RTX4090):
        emu.set_stock("EU-RO-1", gpu, "NONE")
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    with pytest.raises(CommandError) as e:
        d.up()
    msg = str(e.value)
    assert f"{L40S}: 403" in msg and "cannot access the requested pool" in msg
    for gpu in (A100, RTX4090):  # each still asked (stock is a hint); the error names each answer
        assert f"{gpu}: 400 There are no longer any instances available" in msg
    assert msg.count("(catalog stock: NONE)") >= 2
    assert answers(emu, method="POST", path="/v2/pods") == [403, 400, 400]
    assert emu.pods() == []
    n = assert_no_orphans(d, emu)
    record(SECTION, "create refused for every GPU type (403 pool, 400 and 400 with the catalog at NONE)",
           "`up` failed with one error listing each GPU type with its status, RunPod's detail and the catalog "
           "stock; no pod", n)


def test_a_422_stops_the_walk_at_once(engine_emulator, tmp_path, monkeypatch):
    emu = engine_emulator
    emu.inject(kind="status", status=422, method="POST", path="/v2/pods$", detail="Request validation failed.",
               errors=["$.gpu: additional properties 'bogus' not allowed"])
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    with pytest.raises(CommandError) as e:
        d.up()
    assert answers(emu, method="POST", path="/v2/pods") == [422]
    assert "additional properties 'bogus' not allowed" in str(e.value)
    n = assert_no_orphans(d, emu)
    record(SECTION, "create answers 422 (the body broke the schema)",
           "`up` stopped at the first GPU type (no other create), showing RunPod's error list", n)


def test_a_5xx_create_is_tried_once_more_on_the_same_gpu_then_the_walk_moves_on(engine_emulator, tmp_path,
                                                                                 monkeypatch):
    """createPod answers 503 (nothing created) for the L40S, twice: after the adoption search finds
    nothing, the same GPU is tried once more (createPod's guidance), then the A100."""
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch, models=one_model(), env={"RUNPOD_DEPLOY_ADOPT_WAIT_S": "2"})
    emu.inject(kind="status", status=503, method="POST", path="/v2/pods$", count=2)
    up = d.up()
    fired(emu)
    assert answers(emu, method="POST", path="/v2/pods") == [503, 503, 201]
    assert up.outputs["olmocr_gpu_type"].value == A100
    assert "trying NVIDIA L40S once more" in up.stdout
    n = assert_no_orphans(d, emu)
    record(SECTION, "create answers 503 twice for the L40S (nothing created)",
           "after the adoption search found nothing, the L40S was tried once more, then the walk moved on and "
           "placed the pod on the A100", n)


def test_402_on_create_or_start_stops_at_once(engine_emulator, tmp_path, monkeypatch):
    """Out of funds: no other GPU type can cure it."""
    emu = engine_emulator
    d = deploy(emu, tmp_path, monkeypatch, models=one_model())
    emu.inject(kind="status", status=402, method="POST", path="/v2/pods$", detail="Insufficient balance.")
    with pytest.raises(CommandError) as e:
        d.up()
    assert answers(emu, method="POST", path="/v2/pods") == [402]  # no walk on to the next GPU
    assert "out of funds" in str(e.value) and "Billing" in str(e.value)
    d.up()
    pod_id = pod_id_in_state(d)
    emu.stop_pod_out_of_band(pod_id)
    emu.inject(kind="status", status=402, method="POST", path=rf"/v2/pods/{pod_id}/action",
               detail="Insufficient balance.")
    t0 = time.monotonic()
    with pytest.raises(CommandError) as e:
        d.up()
    took = time.monotonic() - t0
    assert "out of funds" in str(e.value) and "stopped" in str(e.value) and took < 60
    fired(emu)
    [pod] = emu.pods()
    assert pod["status"] == "EXITED"
    n = assert_no_orphans(d, emu)
    record(SECTION, "402 (balance) on the create, then on the start of a stopped pod",
           f"each `up` stopped at once (the start's in {took:.0f} s, not after the 300 s boot grace) saying to "
           "add credit; no other GPU tried, the stopped pod kept in state", n)
