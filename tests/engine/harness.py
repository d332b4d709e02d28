"""Shared helpers of the engine tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools" / "bin"


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


# --- the real program against the emulator -------------------------------------------------------
DEV_MODELS = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]["runpod-deploy:models"]
VOLUME = "fuzzvol01eu"  # the emulator's seeded network volume in EU-RO-1


def dev_models() -> dict[str, Any]:
    return copy.deepcopy(DEV_MODELS)


@dataclass
class Deployment:
    """One stack of the real program: Pulumi.yaml copied from the repo, Pulumi.<stack>.yaml written as
    a user would, the program run inline by the Automation API, the CLI and providers real."""

    stack: Any
    work_dir: Path
    config: dict[str, Any] = field(default_factory=dict)

    def write_config(self, config: dict[str, Any]) -> None:
        """Replace the plain config (secrets set through set_config survive: they live in the same file)."""
        path = self.work_dir / f"Pulumi.{self.stack.name}.yaml"
        doc = yaml.safe_load(path.read_text()) if path.exists() else {}
        doc = doc or {}
        secure = {k: v for k, v in (doc.get("config") or {}).items() if isinstance(v, dict) and "secure" in v}
        doc["config"] = {**{f"runpod-deploy:{k}" if ":" not in k else k: v for k, v in config.items()}, **secure}
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        self.config = config

    def resources(self, type_suffix: str = "runpod:Pod") -> list[dict]:
        deployment = self.stack.export_stack().deployment
        return [r for r in deployment.get("resources", []) if r["type"].endswith(type_suffix)]

    def state_text(self) -> str:
        """What is really stored: every file of the file:// backend (state, history, backups) and a
        plain `pulumi stack export`. (The Automation API's export_stack() passes --show-secrets.)"""
        backend = Path(os.environ["PULUMI_BACKEND_URL"].removeprefix("file://"))
        files = [p.read_text(errors="replace") for p in sorted(backend.rglob("*")) if p.is_file()]
        export = subprocess.run(["pulumi", "stack", "export", "--stack", self.stack.name], cwd=self.work_dir,
                                capture_output=True, text=True, check=True).stdout
        assert '"resources"' in export
        return "\n".join(files + [export])


def deploy(emulator, tmp_path: Path, monkeypatch, *, name: str = "e2e", models: dict | None = None,
           api_key: str | None = None, hf_token: str | None = None, extra: dict | None = None,
           set_key: bool = True, env: dict | None = None) -> Deployment:
    """A stack of the real program pointed at `emulator`; nothing is deployed yet."""
    from pulumi import automation as auto

    from runpod_deploy.run import stack as make_stack

    work = tmp_path / "project"
    work.mkdir(exist_ok=True)
    shutil.copy(ROOT / "Pulumi.yaml", work / "Pulumi.yaml")
    env = {
        "RUNPOD_API_URL": emulator.api_url,
        "RUNPOD_PROXY_URL": emulator.proxy_url,
        "RUNPOD_DEPLOY_POLL_S": "0.1",
        **(env or {}),
    }
    # The inline program runs in this process; the CLI and the provider process get env_vars.
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for k in ("RUNPOD_API_KEY", "HF_TOKEN", "PREFERRED_DATACENTER", "NETWORK_VOLUME_ID"):
        monkeypatch.delenv(k, raising=False)
    st = make_stack(unique(name), work_dir=work, env=env)
    d = Deployment(st, work)
    d.write_config({"networkVolumeId": VOLUME, "dataCenter": "EU-RO-1",
                    "models": models if models is not None else dev_models(), **(extra or {})})
    if set_key:
        st.set_config("runpod:apiKey", auto.ConfigValue(api_key or emulator.api_key, secret=True))
    if hf_token:
        st.set_config("runpod-deploy:hfToken", auto.ConfigValue(hf_token, secret=True))
    return d
