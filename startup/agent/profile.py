"""GPU -> vLLM settings. GPU_PROFILES_JSON maps RunPod GPU type ids (the names nvidia-smi reports)
and "default" to complete settings: the stack sends every profile already laid over "default"
(runpod_deploy/schema.py ModelConfig.resolved_profiles), so nothing is merged here. The profile is
the key equal to the GPU's name (case-insensitive), else "default": no guess by memory size."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass

from .settings import SetupFailed

# The GpuProfile fields of runpod_deploy/schema.py: a field the schema gained but the agent does not
# use yet stops the start, rather than being dropped without a word.
REQUIRED = ("modelId", "maxModelLen", "gpuMemoryUtilization", "extraArgs")
FIELDS = {*REQUIRED, "revision", "maxCudagraphCaptureSize"}


@dataclass(frozen=True)
class Choice:
    key: str
    reason: str
    gpu_name: str
    gpu_mib: int | None
    slug: str  # names the compile cache: compiled kernels are architecture-specific
    model_id: str
    revision: str
    max_model_len: int
    gpu_mem_util: float
    args: list[str]  # --max-cudagraph-capture-size, the profile's extraArgs, then VLLM_EXTRA_ARGS_JSON


def _fail(text: str) -> SetupFailed:
    return SetupFailed(2, text)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _args(value, what: str) -> list[str]:
    if not isinstance(value, list):
        raise _fail(f"{what} must be a JSON list")
    if not all(isinstance(a, str) or _number(a) for a in value):
        raise _fail(f"{what} items must be strings, got {value!r}")
    return [str(a) for a in value]


def read_gpu(run=subprocess.run) -> str:
    """nvidia-smi's first line `name, N MiB`, or "" without a GPU."""
    try:
        res = run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                  capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return ""
    return res.stdout.strip().splitlines()[0].strip() if res.returncode == 0 and res.stdout.strip() else ""


def choose(profiles_json: str, extra_json: str, gpu_line: str) -> Choice:
    try:
        profiles = json.loads(profiles_json)
    except ValueError as e:
        raise _fail(f"GPU_PROFILES_JSON is not valid JSON: {e}") from None
    if not isinstance(profiles, dict) or not profiles:
        raise _fail("GPU_PROFILES_JSON must be a non-empty JSON object")
    for key, prof in profiles.items():
        if not isinstance(prof, dict):
            raise _fail(f"GPU_PROFILES_JSON: profile {key!r} must be a JSON object")
        unknown = set(prof) - FIELDS
        if unknown:
            raise _fail(f"GPU_PROFILES_JSON: profile {key!r} has fields this agent does not use: {sorted(unknown)}")
        missing = [f for f in REQUIRED if f not in prof]
        if missing:
            raise _fail(f"GPU_PROFILES_JSON: profile {key!r} lacks {missing} (the stack sends complete profiles)")
    try:
        extra = _args(json.loads(extra_json or "[]"), "VLLM_EXTRA_ARGS_JSON")
    except ValueError as e:
        raise _fail(f"VLLM_EXTRA_ARGS_JSON is not valid JSON: {e}") from None

    name, mib = gpu_line.strip(), None
    if "," in name:
        head, _, tail = name.rpartition(",")
        name = head.strip()
        m = re.match(r"\s*(\d+)", tail)
        mib = int(m.group(1)) if m else None
    key = next((k for k in profiles if k != "default" and name and k.strip().lower() == name.lower()), None)
    reason = "exact GPU name"
    if key is None and "default" in profiles:
        key, reason = "default", "no profile named after this GPU"
    if key is None:
        raise _fail(f"no GPU profile for {name or 'an undetected GPU'!r} ({mib} MiB) and no \"default\" profile")
    prof = profiles[key]
    model_id, revision = prof["modelId"], prof.get("revision") or ""
    if not (isinstance(model_id, str) and model_id):
        raise _fail(f"GPU profile {key!r}: modelId must be a non-empty string")
    if not isinstance(revision, str):
        raise _fail(f"GPU profile {key!r}: revision must be a string")
    if not _positive_int(prof["maxModelLen"]):
        raise _fail(f"GPU profile {key!r}: maxModelLen must be a positive integer")
    gmu = prof["gpuMemoryUtilization"]
    if not (_number(gmu) and 0 < gmu <= 1):
        raise _fail(f"GPU profile {key!r}: gpuMemoryUtilization must be a number in (0, 1]")
    args = _args(prof["extraArgs"], f"GPU profile {key!r} extraArgs") + extra
    cg = prof.get("maxCudagraphCaptureSize")
    if cg is not None:
        if not _positive_int(cg):
            raise _fail(f"GPU profile {key!r}: maxCudagraphCaptureSize must be a positive integer")
        args = ["--max-cudagraph-capture-size", str(cg), *args]
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown-gpu"
    return Choice(key, reason, name or "unknown", mib, slug, model_id, revision, prof["maxModelLen"], gmu, args)


def vllm_argv(c: Choice, *, serve_ref: str, served_name: str, port: int) -> list[str]:
    """`vllm serve` argv. The key is not on it: vLLM reads env VLLM_API_KEY (argv shows in `ps`, and
    vLLM logs its non-default args)."""
    argv = ["serve", serve_ref, "--host", "0.0.0.0", "--port", str(port), "--served-model-name", served_name]
    if c.model_id != served_name:
        argv.append(c.model_id)
    if serve_ref == c.model_id and c.revision:
        argv += ["--revision", c.revision]
    # The weights are on the network volume: vLLM recommends reading each safetensors file whole there
    # (vllm 0.11.2 config/load.py); a profile's extraArgs come after and may choose otherwise.
    return argv + ["--max-model-len", str(c.max_model_len), "--gpu-memory-utilization", str(c.gpu_mem_util),
                   "--safetensors-load-strategy", "eager", *c.args]
