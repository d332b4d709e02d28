"""Shared helpers of the engine tests (plain functions; fixtures live in conftest.py). The real
program against the emulator is devkit's (shared with bench/ and scripts/demo.py)."""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from devkit.cli import ROOT, TOOLS, CommandError, Stack, search_path  # noqa: F401  (re-exported for the tests)
from devkit.program import dev_models, emulated_stack  # noqa: F401
from tests.engine.reliability import leaked, live_pod_ids, state_pod_ids

SEED_ENV_FALLBACKS = ("RUNPOD_API_KEY", "HF_TOKEN", "PREFERRED_DATACENTER", "NETWORK_VOLUME_ID")
POD_PATH = r"/v2/pods/[a-z0-9]+$"  # GET /v2/pods/<id>: the readiness poll, refresh's read, delete's wait
MUTATING = ("POST", "PATCH", "DELETE")
# A pod of the stack named the way a teammate's same-named stack on another backend names its pods.
FOREIGN_BODY = {"image": "runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404", "cloud": "SECURE",
                "gpu": {"id": "NVIDIA GeForce RTX 4090", "count": 1}, "dataCenterIds": ["EU-RO-1"]}


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def deploy(emulator, tmp_path: Path, monkeypatch, *, name: str = "e2e", models: dict | None = None,
           api_key: str | None = None, hf_token: str | None = None, extra: dict | None = None,
           set_key: bool = True, env: dict | None = None) -> Stack:
    """A stack of the real program (a checkout in tmp_path/project) pointed at `emulator`, with a
    fast poll schedule; nothing is deployed yet. The seed's env fallbacks are cleared so that only
    the stack's config counts (a test sets them to test them)."""
    for k in SEED_ENV_FALLBACKS:
        monkeypatch.delenv(k, raising=False)
    return emulated_stack(emulator, tmp_path / "project", unique(name), models=models, extra=extra,
                          api_key=api_key, set_key=set_key, hf_token=hf_token,
                          env={"RUNPOD_DEPLOY_POLL_S": "0.1", **(env or {})})


def one_model(**overrides) -> dict:
    """Pulumi.dev.yaml's olmocr alone, with `overrides` on its settings."""
    m = dev_models()["olmocr"]
    m.update(overrides)
    return {"olmocr": m}


def pod_id_in_state(d, model: str = "olmocr") -> str:
    """The resource's id: the pod it created (a wake onto a full host moves the pod: see `pod_of`)."""
    [r] = [r for r in d.resources() if r["urn"].endswith(f"::{model}")]
    return r["id"]


def pod_of(d, model: str = "olmocr") -> str:
    """The pod the resource stands for now: its `pod_id` output."""
    [r] = [r for r in d.resources() if r["urn"].endswith(f"::{model}")]
    return r["outputs"]["pod_id"]


def assert_no_orphans(d, emu) -> int:
    """The emulator's live pods are exactly the stack's Pod resources; returns the leaked count (0)."""
    live, state = live_pod_ids(emu), state_pod_ids(d)
    assert live == state, f"live pods {sorted(live)} != pods in state {sorted(state)}"
    return leaked(d, emu)


def answers(emu, since: int = 0, method: str | None = None, path: str | None = None) -> list:
    """The statuses the emulator answered (None = connection dropped), oldest first."""
    return [r["status"] for r in emu.requests[since:]
            if (method is None or r["method"] == method) and (path is None or re.fullmatch(path, r["path"]))]


def mutations(emu, since: int = 0) -> list[tuple[str, str, int | None]]:
    """(method, path, status) of every create/update/delete/action call since request `since`."""
    return [(r["method"], r["path"], r["status"]) for r in emu.requests[since:] if r["method"] in MUTATING]


def fired(emu) -> None:
    """Every injected fault was consumed, i.e. really hit a request."""
    assert emu.faults.pending() == [], f"faults that never fired: {emu.faults.pending()}"


def health_now(emu, pod_id: str) -> int:
    """What the (emulated) proxy answers on vLLM's /health right now."""
    url = emu.proxy_url.format(pod_id=pod_id, port=8000) + "/health"
    return requests.get(url, headers={"User-Agent": "engine-test"}, timeout=10).status_code


def create_foreign_pod(emu, name: str) -> str:
    """A pod created on the account outside this stack (a teammate's); returns its id."""
    from runpod_provider.client import RunPodClient

    with RunPodClient(emu.api_key, emu.api_url) as c:
        c._request("POST", "/pods", body={**FOREIGN_BODY, "name": name}).close()
    return next(p["id"] for p in emu.pods() if p["name"] == name)


# --- what a failing command printed, and the invariants every failure keeps ---------------------
def state_ids(st) -> set[str]:
    return {r["id"] for r in st.resources()}


def live_ids(emu, teammate: str) -> set[str]:
    return {p["id"] for p in emu.pods()} - {teammate}


def the_line(out: str, marker: str) -> str:
    """The output line holding `marker`, without the CLI's `error: ` prefix."""
    lines = [ln.strip() for ln in out.splitlines() if marker in ln]
    assert lines, f"{marker!r} not in:\n{out[-3000:]}"
    return lines[-1].removeprefix("error: ").removeprefix("- ")


def check(emu, st, out: str, must: list[str], teammate: str, secrets: list[str]) -> str:
    """The row's assertions; returns the line the user reads."""
    for part in must:
        assert part in out, f"{part!r} not in:\n{out[-3000:]}"
    assert "Traceback" not in out, out[-3000:]
    for s in secrets:
        assert s not in out, "a secret was echoed"
    assert live_ids(emu, teammate) == state_ids(st), "pods alive outside state, or state naming gone pods"
    assert teammate in {p["id"] for p in emu.pods()}
    assert not [r for r in emu.requests if teammate in r["path"]], "the teammate's pod was touched"
    return the_line(out, must[0])


def failing(run: Callable[[], object]) -> str:
    with pytest.raises(CommandError) as e:
        run()
    return e.value.stdout + e.value.stderr


def background_up(st) -> subprocess.Popen:
    """`pulumi up` as devkit runs it, but not waited for (to act while it runs)."""
    env = {**os.environ, **st.project.env}
    env["PATH"] = search_path(env.get("PATH", ""))
    return subprocess.Popen(["pulumi", "up", "--yes", "--skip-preview", "--color", "never", "--stack", st.name],
                            cwd=st.work_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_until_polled(emu, proc) -> str:
    """The id of the pod the running `up` created, once its readiness wait is polling it."""
    deadline = time.monotonic() + 300
    while True:
        polled = [r["path"].rsplit("/", 1)[1] for r in emu.requests
                  if r["method"] == "GET" and re.fullmatch(POD_PATH, r["path"])]
        ours = [p for p in polled if p in {x["id"] for x in emu.pods()}] or polled
        if ours:
            return ours[0]
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "the create never started"
        time.sleep(0.2)
