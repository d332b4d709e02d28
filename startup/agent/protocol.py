"""The one contract between the pod agent and the provider: stdout lines, ports, env names.

Standard library only, no imports from the rest of the project: this module travels to the pod
inside the agent's payload, and the provider imports the very same file (``startup.agent.protocol``).

stdout lines (RunPod keeps the container's stdout; ``GET /v2/pods/{id}/logs`` serves it):

    runpod-deploy boot=<hex>          first line of every boot: a fresh random id per container start
    runpod-deploy phase=<name>        one of PHASES; ``ready`` each time vLLM's /health turns 200
                                      (again after a restart; services.Health), whether or not Open
                                      WebUI is up yet: ``start-webui`` may come before or after it
    runpod-deploy error=<short text>  what went wrong; before ``phase=failed`` when setup ends
    runpod-deploy: <detail>           anything else worth a human's eye
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

PREFIX = "runpod-deploy"

# Ports on the pod, exposed through RunPod's proxy as https://<podId>-<port>.proxy.runpod.net
VLLM_PORT = 8000
WEBUI_PORT = 3000

PHASES: tuple[str, ...] = (
    "prepare", "install-vllm", "install-webui", "download-model", "start-vllm", "start-webui", "ready", "failed",
)
READY = "ready"
FAILED = "failed"  # setup ended after an error= line; the pod idles (nothing is restarted)

# Env the agent reads that holds a secret; the stack passes these as Pulumi secrets.
SECRET_ENV_VARS: tuple[str, ...] = ("VLLM_API_KEY", "HF_TOKEN", "WEBUI_ADMIN_PASSWORD", "WEBUI_SECRET_KEY")
# What RunPod injects into every pod (docs.runpod.io/pods/templates/environment-variables).
RUNPOD_POD_ID_ENV = "RUNPOD_POD_ID"
RUNPOD_POD_KEY_ENV = "RUNPOD_API_KEY"  # pod-scoped key, narrow and undocumented scope
PAYLOAD_ENV = "STARTUP_B64"


@dataclass(frozen=True)
class Event:
    kind: str  # "boot" | "phase" | "error" | "detail"
    value: str


def new_boot_id() -> str:
    return secrets.token_hex(8)


def boot_line(boot_id: str) -> str:
    return f"{PREFIX} boot={boot_id}"


def phase_line(name: str) -> str:
    if name not in PHASES:
        raise ValueError(f"unknown phase {name!r}")
    return f"{PREFIX} phase={name}"


def error_line(text: str) -> str:
    return f"{PREFIX} error={' '.join(text.split())}"  # one line, whatever the text held


def detail_line(text: str) -> str:
    return f"{PREFIX}: {text}"


def parse(line: str) -> Event | None:
    """The event a log line carries, or None for anything else (service output, RunPod's lines).
    Tolerates a prefix before ours (RunPod may prepend a timestamp to a log line)."""
    i = line.find(PREFIX)
    if i < 0:
        return None
    rest = line[i + len(PREFIX):]
    if rest.startswith(": "):
        return Event("detail", rest[2:].rstrip())
    for kind in ("boot", "phase", "error"):
        if rest.startswith(f" {kind}="):
            return Event(kind, rest[len(kind) + 2:].rstrip())
    return None
