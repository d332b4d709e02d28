"""Figure 3: the REAL pod agent (startup/agent/), cold (empty volume) then warm (same volume, after a stop
that wiped the container disk, so the venvs are restored from the volume's archives), in
devkit.startup's sandbox (stub uv, nvidia-smi, hf, vllm, open-webui on PATH; the stubs record
every call). Measured: seconds from launch to `runpod-deploy phase=ready`, when each phase
line appeared, and the install / download actions the stubs saw.

The stubs install and download nothing and serve /health at once, so the times are the script's
own overhead (plus a Python start per stub call), not a pod's: see startup/README.md for the
minutes a real cold start takes. The counts are the point.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from devkit.startup import Harness

READY = "runpod-deploy phase=ready"


@dataclass
class StartRun:
    kind: str
    wall: float
    phases: dict[str, float]
    venvs: int
    installs: int
    downloads: int
    stub_calls: int


@dataclass
class StartupResults:
    runs: list[StartRun] = field(default_factory=list)
    error: str | None = None


def _watch(run, timeout: float) -> tuple[float, dict[str, float]]:
    """Poll the run's stdout lines every 10 ms; (seconds to ready, first time of each phase line)."""
    start = time.monotonic()
    seen: dict[str, float] = {}
    while time.monotonic() - start < timeout:
        for line in list(run.lines):
            phase = line.removeprefix("runpod-deploy phase=")
            if phase != line and phase not in seen:
                seen[phase] = time.monotonic() - start
        if "ready" in seen:
            return seen["ready"], seen
        if run.proc.poll() is not None:
            break
        time.sleep(0.01)
    raise RuntimeError(f"the agent did not print `{READY}` within {timeout}s; output:\n{run.output[-3000:]}")


def _one(h, kind: str, before: int) -> StartRun:
    start = time.monotonic()
    run = h.start()
    # h.start() returns right after Popen; the watch starts now, so add what start() took.
    launch = time.monotonic() - start
    wall, phases = _watch(run, timeout=60)
    phases = {k: v + launch for k, v in phases.items()}
    recs = h.records()[before:]
    uv = [r for r in recs if r["tool"] == "uv" and r["argv"][:1] != ["tool"]]  # not the downloader
    res = StartRun(
        kind=kind, wall=wall + launch, phases=phases,
        venvs=sum(1 for r in uv if r["argv"][:1] == ["venv"]),
        installs=sum(1 for r in uv if r["argv"][:2] == ["pip", "install"]),
        downloads=sum(1 for r in recs if r["tool"] in ("hf", "huggingface-cli")),
        stub_calls=len(recs),
    )
    if run.stop() != 0:
        raise RuntimeError(f"the agent did not stop cleanly ({kind}); output:\n{run.output[-3000:]}")
    return res


def run(tmp: Path, runs: int, say) -> StartupResults:
    res = StartupResults()
    for i in range(runs):
        d = tmp / f"startup-{i}"
        d.mkdir()
        h = Harness(d)
        try:
            cold = _one(h, "cold", 0)
            h.fresh_container_disk()  # a pod stop: the venvs come back from the volume's archives
            warm = _one(h, "warm", len(h.records()))
            res.runs += [cold, warm]
            say(f"  run {i + 1}: cold {cold.wall:.2f} s ({cold.installs} installs, {cold.downloads} downloads), "
                f"warm {warm.wall:.2f} s ({warm.installs} installs, {warm.downloads} downloads)")
        except Exception as e:  # noqa: BLE001 - report the failure in the table instead of failing the bench
            res.error = f"{type(e).__name__}: {e}"[:2000]
            break
        finally:
            h.cleanup()
    return res
