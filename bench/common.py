"""Shared pieces of the benchmarks: a throwaway Pulumi backend, stacks of the real program against an
emulator (devkit: the plain `pulumi` CLI, as a user runs it), timing of one operation with the
emulator's request log, and model configs of any size."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devkit.cli import ROOT, Project, Stack, isolated_env  # noqa: F401  (ROOT: startup_bench)
from devkit.program import dev_models, emulated_stack, models_for  # noqa: F401  (re-exported)

POD_PATH = re.compile(r"^/v2/pods/[a-z0-9]+")
MUTATING = ("POST", "PATCH", "DELETE")


def norm_path(path: str) -> str:
    return POD_PATH.sub("/v2/pods/{id}", path)


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


@dataclass
class Op:
    """One timed operation and the /v2 calls it made."""

    name: str
    wall: float
    t0: float  # epoch seconds (the emulator log's clock)
    calls: list[dict]
    result: Any = None

    def counts(self) -> Counter:
        return Counter(f"{c['method']} {norm_path(c['path'])}" for c in self.calls)

    def mutating(self) -> int:
        return sum(1 for c in self.calls if c["method"] in MUTATING)

    def gets(self, pattern: str | None = None) -> int:
        return sum(1 for c in self.calls
                   if c["method"] == "GET" and (pattern is None or norm_path(c["path"]) == pattern))

    def per_pod(self) -> dict[str, dict[str, Any]]:
        """Per pod id: polls (GET /v2/pods/{id}), log reads, first and last call (seconds after t0)."""
        pods: dict[str, dict[str, Any]] = {}
        for c in self.calls:
            m = POD_PATH.match(c["path"])
            if not m:
                continue
            pid = m.group(0).rsplit("/", 1)[1]
            p = pods.setdefault(pid, {"polls": 0, "logs": 0, "first": None, "last": None})
            if c["method"] == "GET" and c["path"] == m.group(0):
                p["polls"] += 1
                p["first"] = c["ts"] - self.t0 if p["first"] is None else p["first"]
                p["last"] = c["ts"] - self.t0
            elif c["path"].endswith("/logs"):
                p["logs"] += 1
        return pods

    def create_offsets(self) -> list[float]:
        return [c["ts"] - self.t0 for c in self.calls if c["method"] == "POST" and c["path"] == "/v2/pods"]


def timed(name: str, emu, fn: Callable[[], Any]) -> Op:
    n0 = len(emu.requests)
    t0 = time.time()
    start = time.monotonic()
    result = fn()
    wall = time.monotonic() - start
    return Op(name, wall, t0, emu.requests[n0:], result)


class Sandbox:
    """A private file:// backend and PULUMI_HOME for the whole bench run (removed at the end)."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="runpod-deploy-bench-"))
        os.environ.update(isolated_env(self.tmp, passphrase="bench-passphrase"))
        os.environ.pop("PULUMI_ACCESS_TOKEN", None)
        # The provider must use its production poll schedule; the program must use the stack config.
        for k in ("RUNPOD_DEPLOY_POLL_S", "RUNPOD_API_KEY", "HF_TOKEN", "PREFERRED_DATACENTER", "NETWORK_VOLUME_ID"):
            os.environ.pop(k, None)

    def cleanup(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextmanager
def pointed_at(emu):
    """Point code run in this process (the baseline's readiness probes) at `emu`."""
    saved = {k: os.environ.get(k) for k in ("RUNPOD_API_URL", "RUNPOD_PROXY_URL")}
    os.environ.update(RUNPOD_API_URL=emu.api_url, RUNPOD_PROXY_URL=emu.proxy_url)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def make_stack(sandbox: Sandbox, name: str, emu, models: dict[str, Any],
               extra_env: dict[str, str] | None = None) -> Stack:
    """A stack of the real program in its own checkout (sandbox/<name>), like Pulumi.dev.yaml but with
    `models`; change its models later with `stack.write_config({**stack.config, "models": ...})`."""
    return emulated_stack(emu, sandbox.tmp / name, name, models=models, env=extra_env)


def empty_stack(sandbox: Sandbox) -> Stack:
    """A Python program that declares nothing, in its own project, run by the same CLI and language host."""
    work = sandbox.tmp / "empty-project"
    work.mkdir()
    (work / "Pulumi.yaml").write_text(
        f"name: bench-empty\nruntime:\n  name: python\n  options:\n    virtualenv: {ROOT / '.venv'}\n")
    (work / "__main__.py").write_text("# declares nothing: what remains of a preview is the engine's own cost\n")
    return Project(work).stack("empty")
