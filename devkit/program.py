"""This project's program, in a scratch directory, as stacks pointed at a RunPod emulator.

`checkout(dest)` makes `dest` look like a clone of the repository: every top-level entry (the real
Pulumi.yaml, __main__.py, the packages, .venv) is a symlink to the repo's, except the stack files
(Pulumi.<stack>.yaml) and local state. Stacks created there write their own Pulumi.<stack>.yaml in
`dest`, never in the repo. The program then runs exactly as a user's `pulumi up` runs it: the language
host starts `__main__.py` with its directory on sys.path, and the dynamic-provider plugin starts in
that directory with Pulumi.yaml's `virtualenv: .venv`, so both import the packages from the checkout.
Nothing is added to PYTHONPATH. A test that needs a changed file replaces that one symlink with a
copy (`own_copy`).
"""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from devkit.cli import ROOT, Project, Stack

PROJECT = "runpod-deploy"
VOLUME = "fuzzvol01eu"  # the emulator's seeded network volume in EU-RO-1
DEV_STACK_FILE = ROOT / "Pulumi.dev.yaml"
_NOT_CHECKED_OUT = {".git", ".pulumi-state", ".pulumi", ".pytest_cache", "__pycache__"}
_STACK_FILE = re.compile(r"^Pulumi\.[^.]+\.yaml$")


def dev_models() -> dict[str, Any]:
    """The models of the dev stack, as users run them (a fresh copy each call)."""
    return copy.deepcopy(yaml.safe_load(DEV_STACK_FILE.read_text())["config"][f"{PROJECT}:models"])


def models_for(n: int) -> dict[str, Any]:
    """n models from the dev stack: olmocr, qwen3vl, then copies of olmocr (olmocr-3, olmocr-4, …)
    with their own served names, as a user adding models by config would write them."""
    dev = dev_models()
    out = dict(list(copy.deepcopy(dev).items())[:n])
    i = len(out) + 1
    while len(out) < n:
        m = copy.deepcopy(dev["olmocr"])
        m["servedModelName"] = f"olmocr-{i}"
        out[f"olmocr-{i}"] = m
        i += 1
    return out


def checkout(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for entry in ROOT.iterdir():
        if entry.name in _NOT_CHECKED_OUT or _STACK_FILE.match(entry.name):
            continue
        (dest / entry.name).symlink_to(entry)
    return dest


def own_copy(project_dir: Path, name: str) -> Path:
    """Replace the checkout's symlink `name` with a real copy, to edit it (as a user edits a file)."""
    link = project_dir / name
    target = link.resolve()
    link.unlink()
    if target.is_dir():
        shutil.copytree(target, link, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        shutil.copy2(target, link)
    return link


def emulator_env(emu, **extra: str) -> dict[str, str]:
    """Where the program and its provider find the (emulated) RunPod API and proxy."""
    return {"RUNPOD_API_URL": emu.api_url, "RUNPOD_PROXY_URL": emu.proxy_url, **extra}


def emulated_stack(emu, project_dir: Path, name: str, *, models: dict | None = None, extra: dict | None = None,
                   api_key: str | None = None, set_key: bool = True, hf_token: str | None = None,
                   env: dict[str, str] | None = None) -> Stack:
    """A stack of the real program in a fresh checkout, configured like Pulumi.dev.yaml (its models
    unless `models` is given, the emulator's volume) plus `extra`; the RunPod key set as a secret with
    `pulumi config set --secret`. Nothing is deployed yet. `env` goes to every command (e.g.
    RUNPOD_DEPLOY_POLL_S), on top of the emulator's URLs."""
    project = Project(checkout(project_dir), env={**emulator_env(emu), **(env or {})})
    st = project.stack(name)
    st.write_config({"networkVolumeId": VOLUME, "dataCenter": "EU-RO-1",
                     "models": models if models is not None else dev_models(), **(extra or {})})
    if set_key:
        st.set_config("runpod:apiKey", api_key or emu.api_key, secret=True)
    if hf_token:
        st.set_config(f"{PROJECT}:hfToken", hf_token, secret=True)
    return st
