"""The RunPod API key: looked up here, once, for the program and the operator commands.

Order: the stack's secret config `runpod:apiKey`, else env `RUNPOD_API_KEY` (the seed's `.env` key).
When neither is set, every caller reports the same `MISSING_KEY` message.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Mapping

CONFIG_KEY = "runpod:apiKey"
ENV_VAR = "RUNPOD_API_KEY"
MISSING_KEY = (f"{CONFIG_KEY} is not set: run `pulumi config set --secret {CONFIG_KEY} <key>` "
               f"or export {ENV_VAR}")


class MissingApiKey(Exception):
    def __init__(self) -> None:
        super().__init__(MISSING_KEY)


def api_key(configured: str | None, env: Mapping[str, str] = os.environ) -> str | None:
    """The key: `configured` (the stack's runpod:apiKey), else the environment's; None if neither.
    Surrounding whitespace is dropped (a key pasted with its newline still works)."""
    for value in (configured, env.get(ENV_VAR)):
        if value and value.strip():
            return value.strip()
    return None


def require_api_key(configured: str | None, env: Mapping[str, str] = os.environ) -> str:
    key = api_key(configured, env)
    if key is None:
        raise MissingApiKey()
    return key


def stack_api_key(stack: str, project_dir: Path) -> str | None:
    """An existing stack's runpod:apiKey, read with `pulumi config get` (outside a Pulumi program).
    Reads only: a missing stack, passphrase or CLI gives None, and no stack is created."""
    try:
        res = subprocess.run(["pulumi", "config", "get", CONFIG_KEY, "--stack", stack], cwd=project_dir,
                             capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None
