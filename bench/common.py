"""Shared pieces of the benchmarks: a throwaway Pulumi backend, stacks of the real program against an
emulator, timing of one operation with the emulator's request log, and model configs of any size."""

from __future__ import annotations

import copy
import os
import re
import shutil
import statistics
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

ROOT = Path(__file__).resolve().parents[1]
VOLUME = "fuzzvol01eu"  # the emulator's seeded network volume in EU-RO-1
DEV_MODELS = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]["runpod-deploy:models"]
POD_PATH = re.compile(r"^/v2/pods/[a-z0-9]+")
MUTATING = ("POST", "PATCH", "DELETE")


def models_for(n: int) -> dict[str, Any]:
    """n models from the dev stack: olmocr, qwen3vl, then copies of olmocr (olmocr-3, olmocr-4, …)
    with their own served names, as a user adding models by config would write them."""
    models = copy.deepcopy(DEV_MODELS)
    out = dict(list(models.items())[:n])
    i = len(out) + 1
    while len(out) < n:
        m = copy.deepcopy(DEV_MODELS["olmocr"])
        m["servedModelName"] = f"olmocr-{i}"
        out[f"olmocr-{i}"] = m
        i += 1
    return out


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
        return sum(1 for c in self.calls if c["method"] == "GET" and (pattern is None or norm_path(c["path"]) == pattern))

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
        (self.tmp / "state").mkdir()
        os.environ.update(
            PULUMI_BACKEND_URL=f"file://{self.tmp / 'state'}",
            PULUMI_HOME=str(self.tmp / "pulumi-home"),
            PULUMI_CONFIG_PASSPHRASE="bench-passphrase",
            PULUMI_SKIP_UPDATE_CHECK="true",
        )
        os.environ.pop("PULUMI_ACCESS_TOKEN", None)
        # The provider must use its production poll schedule; the program must use the stack config.
        for k in ("RUNPOD_DEPLOY_POLL_S", "RUNPOD_API_KEY", "HF_TOKEN", "PREFERRED_DATACENTER", "NETWORK_VOLUME_ID"):
            os.environ.pop(k, None)

    def cleanup(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextmanager
def pointed_at(emu):
    """The inline program runs in this process: point its config checks (and readiness probes run
    here, e.g. by the baseline) at `emu`."""
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


@dataclass
class BenchStack:
    """A stack of the real program (Pulumi.yaml from the repo, Pulumi.<stack>.yaml written here)."""

    stack: Any
    work_dir: Path
    models: dict[str, Any] = field(default_factory=dict)

    def set_models(self, models: dict[str, Any]) -> None:
        path = self.work_dir / f"Pulumi.{self.stack.name}.yaml"
        doc = (yaml.safe_load(path.read_text()) if path.exists() else None) or {}  # keeps encryptionsalt
        doc["config"] = {**(doc.get("config") or {}), **{
            "runpod-deploy:networkVolumeId": VOLUME,
            "runpod-deploy:dataCenter": "EU-RO-1",
            "runpod-deploy:models": models,
        }}
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        self.models = models


def make_stack(sandbox: Sandbox, name: str, emu, models: dict[str, Any], extra_env: dict[str, str] | None = None) -> BenchStack:
    from pulumi import automation as auto

    from runpod_deploy.run import stack as run_stack

    work = sandbox.tmp / name
    work.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", work / "Pulumi.yaml")
    env = {"RUNPOD_API_URL": emu.api_url, "RUNPOD_PROXY_URL": emu.proxy_url, **(extra_env or {})}
    st = run_stack(name, work_dir=work, env=env)
    bs = BenchStack(st, work)
    bs.set_models(models)
    st.set_config("runpod:apiKey", auto.ConfigValue(emu.api_key, secret=True))
    return bs


def empty_stack(sandbox: Sandbox):
    """An inline Python program that declares nothing, in its own project."""
    from pulumi import automation as auto

    work = sandbox.tmp / "empty-project"
    work.mkdir()
    opts = auto.LocalWorkspaceOptions(work_dir=str(work), env_vars={"PULUMI_SKIP_UPDATE_CHECK": "true"})
    return auto.create_or_select_stack(stack_name="empty", project_name="bench-empty", program=lambda: None, opts=opts)
