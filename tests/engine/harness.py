"""Shared helpers of the engine tests (plain functions; fixtures live in conftest.py). The real
program against the emulator is devkit's (shared with bench/ and scripts/demo.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

from devkit.cli import ROOT, TOOLS, Stack  # noqa: F401  (re-exported for the tests)
from devkit.program import dev_models, emulated_stack  # noqa: F401

SEED_ENV_FALLBACKS = ("RUNPOD_API_KEY", "HF_TOKEN", "PREFERRED_DATACENTER", "NETWORK_VOLUME_ID")


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
