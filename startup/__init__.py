"""The pod startup script (``startup.sh``) and the start command that runs it.

Imported by the Pulumi program; no Pulumi import here. The pod gets:

* ``args`` = ``shlex.join(bootstrap_command())`` (REST v2 has only that one string, no entrypoint
  override), and
* ``env`` = ``startup_env(...)`` (plain values, including ``STARTUP_B64``) plus the secrets listed in
  ``SECRET_ENV_VARS``, which the stack passes separately as Pulumi secrets.

See ``startup/README.md`` for the env contract and what the script does.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "SCRIPT_PATH",
    "DEFAULT_VLLM_VERSION",
    "DEFAULT_OPENWEBUI_VERSION",
    "SECRET_ENV_VARS",
    "OLMOCR_GPU_PROFILES",
    "QWEN3_VL_GPU_PROFILES",
    "bootstrap_command",
    "script_b64",
    "startup_env",
    "validate_gpu_profiles",
]

SCRIPT_PATH: Path = Path(__file__).resolve().parent / "startup.sh"

DEFAULT_VLLM_VERSION = "0.11.2"  # olmocr's pin; Qwen3-VL needs >= 0.11.0 (serving.md 2)
# 0.7.x is the first release line whose `open-webui serve` creates the admin from
# WEBUI_ADMIN_EMAIL / WEBUI_ADMIN_PASSWORD (0.6.43 has no such code).
DEFAULT_OPENWEBUI_VERSION = "0.7.2"
DEFAULT_WORKSPACE = "/workspace"

# Where the bootstrap writes the decoded script (container disk), and RunPod's image start script.
DEFAULT_SCRIPT_DEST = "/tmp/runpod-deploy-startup.sh"
RUNPOD_START_SH = "/start.sh"

# Secrets the script reads from env; the stack passes them (as Pulumi secrets), never startup_env().
# VLLM_API_KEY is required; the others are optional (Open WebUI starts only with both WEBUI_ADMIN_*).
SECRET_ENV_VARS: tuple[str, ...] = (
    "VLLM_API_KEY",
    "HF_TOKEN",
    "WEBUI_ADMIN_EMAIL",
    "WEBUI_ADMIN_PASSWORD",
    "WEBUI_SECRET_KEY",
)

# Suggested GPU_PROFILES for the two models (values from serving.md 3; keys are RunPod GPU type ids,
# which are also the names nvidia-smi reports). The stack may use or replace them.
_OLMOCR_ARGS = ["--limit-mm-per-prompt", '{"video": 0}', "--uvicorn-log-level", "warning"]
OLMOCR_GPU_PROFILES: dict[str, dict[str, Any]] = {
    "NVIDIA L40S": {"max_model_len": 16384, "gpu_memory_utilization": 0.90, "extra_args": _OLMOCR_ARGS},
    "NVIDIA A100 80GB PCIe": {"max_model_len": 16384, "gpu_memory_utilization": 0.90, "extra_args": _OLMOCR_ARGS},
    # 0.90, not 0.80: at 0.80 a 4090 had no room for the KV cache (allenai/olmocr#269).
    "NVIDIA GeForce RTX 4090": {"max_model_len": 16384, "gpu_memory_utilization": 0.90, "extra_args": _OLMOCR_ARGS},
}
QWEN3_VL_GPU_PROFILES: dict[str, dict[str, Any]] = {
    "NVIDIA L40S": {
        "max_model_len": 32768,
        "gpu_memory_utilization": 0.90,
        "extra_args": ["--limit-mm-per-prompt", '{"image": 4, "video": 0}', "--async-scheduling"],
    },
    "NVIDIA A100 80GB PCIe": {
        "max_model_len": 32768,
        "gpu_memory_utilization": 0.90,
        "extra_args": ["--limit-mm-per-prompt", '{"image": 4, "video": 0}', "--async-scheduling"],
    },
    "NVIDIA GeForce RTX 4090": {
        "model_id": "Qwen/Qwen3-VL-8B-Instruct-FP8",
        "max_model_len": 16384,
        "gpu_memory_utilization": 0.92,
        "extra_args": ["--limit-mm-per-prompt", '{"image": 2, "video": 0}', "--async-scheduling"],
    },
}

_PROFILE_FIELDS = {"model_id", "revision", "max_model_len", "gpu_memory_utilization", "extra_args", "memory_gb"}
_POD_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+_-]*")
_SAFE_PATH = re.compile(r"/[A-Za-z0-9._/-]+")  # embedded in the bash -c string: no quoting needed

# Decodes env[argv[1]] into a temp file next to argv[2], then renames it onto argv[2]: a copy of the
# command running twice never truncates a script that bash is still reading. No string literals, so
# the whole bootstrap string needs no quotes inside quotes, and it contains no `$`, `'` or `\`.
_DECODE_PY = (
    "import base64,os,sys,tempfile;"
    "d=base64.b64decode(os.environ[sys.argv[1]]);"
    "fd,t=tempfile.mkstemp(dir=os.path.dirname(sys.argv[2]));"
    "os.write(fd,d);os.close(fd);os.chmod(t,0o755);os.replace(t,sys.argv[2])"
)


def bootstrap_command(*, script_dest: str = DEFAULT_SCRIPT_DEST, start_sh: str = RUNPOD_START_SH) -> list[str]:
    """The pod's start command as argv: ``["bash", "-c", "<one-liner>"]``.

    The one-liner decodes ``$STARTUP_B64`` with python3 to ``script_dest`` and runs it with bash.
    If the image has RunPod's ``/start.sh`` (runpod/pytorch: nginx, SSH from PUBLIC_KEY, Jupyter,
    /etc/rp_environment, then ``sleep infinity``), our script starts in the background and
    ``exec /start.sh`` keeps PID 1, so SSH keeps working and the pod stays up even if our script
    stops (it can be inspected). Otherwise ``exec bash <script>`` makes our script PID 1, and it
    forwards SIGTERM to the services itself. (Under /start.sh a pod stop reaches /start.sh, not
    us; the services then get SIGKILL at the end of the grace period, which vLLM and SQLite's
    journal survive.)

    The provider renders this to v2's single ``args`` string with ``shlex.join``. The string has no
    ``$``, single quote or backslash: no API or tokenizer can expand or mangle anything in it.
    The keyword arguments exist for tests; the stack uses the defaults.
    """
    for what, path in (("script_dest", script_dest), ("start_sh", start_sh)):
        if not _SAFE_PATH.fullmatch(path):
            raise ValueError(f"{what} must be an absolute path of [A-Za-z0-9._/-] characters, got {path!r}")
    one_liner = (
        f'python3 -c "{_DECODE_PY}" STARTUP_B64 {script_dest} || exit 1; '
        f"if [ -x {start_sh} ]; then bash {script_dest} & exec {start_sh}; fi; "
        f"exec bash {script_dest}"
    )
    return ["bash", "-c", one_liner]


def script_b64() -> str:
    """base64 of startup.sh's bytes, one line (no newlines)."""
    return base64.b64encode(SCRIPT_PATH.read_bytes()).decode("ascii")


def validate_gpu_profiles(gpu_profiles: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise ValueError unless gpu_profiles follows the GPU_PROFILES_JSON schema (startup/README.md).

    Every profile, laid over the optional "default" entry, must end up with ``max_model_len`` and
    ``gpu_memory_utilization``; the script checks the same at boot, this catches it at preview.
    """

    def is_num(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if not isinstance(gpu_profiles, Mapping) or not gpu_profiles:
        raise ValueError("gpu_profiles must be a non-empty mapping of GPU type id -> profile")
    for key, prof in gpu_profiles.items():
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"gpu_profiles key {key!r} must be a GPU type id or 'default'")
        if not isinstance(prof, Mapping):
            raise ValueError(f"gpu profile {key!r} must be a mapping")
        unknown = set(prof) - _PROFILE_FIELDS
        if unknown:
            raise ValueError(f"gpu profile {key!r} has unknown fields {sorted(unknown)}")
        if "model_id" in prof and not (isinstance(prof["model_id"], str) and prof["model_id"]):
            raise ValueError(f"gpu profile {key!r}: model_id must be a non-empty string")
        if "revision" in prof and not isinstance(prof["revision"], str):
            raise ValueError(f"gpu profile {key!r}: revision must be a string")
        if "memory_gb" in prof and not (is_num(prof["memory_gb"]) and prof["memory_gb"] > 0):
            raise ValueError(f"gpu profile {key!r}: memory_gb must be a positive number")
        if "extra_args" in prof:
            args = prof["extra_args"]
            if isinstance(args, (str, bytes)) or not isinstance(args, Sequence) or not all(isinstance(a, str) for a in args):
                raise ValueError(f"gpu profile {key!r}: extra_args must be a list of strings")
    default = gpu_profiles.get("default", {})
    for key, prof in gpu_profiles.items():
        merged = {**default, **prof}
        mml = merged.get("max_model_len")
        if not (isinstance(mml, int) and not isinstance(mml, bool) and mml > 0):
            raise ValueError(f"gpu profile {key!r}: max_model_len must be a positive integer")
        gmu = merged.get("gpu_memory_utilization")
        if not (is_num(gmu) and 0 < gmu <= 1):
            raise ValueError(f"gpu profile {key!r}: gpu_memory_utilization must be a number in (0, 1]")


def startup_env(
    *,
    pod_label: str,
    model_id: str,
    served_model_name: str,
    gpu_profiles: Mapping[str, Mapping[str, Any]],
    model_revision: str | None = None,
    model_local_dir: str | None = None,
    vllm_version: str = DEFAULT_VLLM_VERSION,
    openwebui_version: str = DEFAULT_OPENWEBUI_VERSION,
    vllm_extra_args: Sequence[str] = (),
    workspace: str = DEFAULT_WORKSPACE,
) -> dict[str, str]:
    """The pod's PLAIN env: the script's settings, ``STARTUP_B64`` and ``PYTHONUNBUFFERED=1``.

    Secrets (``SECRET_ENV_VARS``) are not here: the stack adds them as Pulumi secrets.
    Raises ValueError on settings the script would refuse, so mistakes show at preview time.
    """
    if not isinstance(pod_label, str) or not _POD_LABEL.fullmatch(pod_label):
        raise ValueError(f"pod_label must be 1-63 of [A-Za-z0-9._-], starting with a letter or digit; got {pod_label!r}")
    for what, value in (("model_id", model_id), ("served_model_name", served_model_name), ("workspace", workspace)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{what} must be a non-empty string")
    if not workspace.startswith("/"):
        raise ValueError(f"workspace must be an absolute path, got {workspace!r}")
    for what, value in (("vllm_version", vllm_version), ("openwebui_version", openwebui_version)):
        if not isinstance(value, str) or not _VERSION.fullmatch(value):
            raise ValueError(f"{what} is not a version: {value!r}")
    if model_local_dir is not None and not (isinstance(model_local_dir, str) and model_local_dir.startswith("/")):
        raise ValueError(f"model_local_dir must be an absolute path, got {model_local_dir!r}")
    if isinstance(vllm_extra_args, (str, bytes)) or not all(isinstance(a, str) for a in vllm_extra_args):
        raise ValueError("vllm_extra_args must be a list of strings")
    validate_gpu_profiles(gpu_profiles)

    env = {
        "POD_LABEL": pod_label,
        "MODEL_ID": model_id,
        "SERVED_MODEL_NAME": served_model_name,
        # Key order is kept: it breaks ties in the script's by-memory fallback.
        "GPU_PROFILES_JSON": json.dumps(gpu_profiles, separators=(",", ":")),
        "VLLM_EXTRA_ARGS_JSON": json.dumps(list(vllm_extra_args), separators=(",", ":")),
        "VLLM_VERSION": vllm_version,
        "OPENWEBUI_VERSION": openwebui_version,
        "WORKSPACE": workspace,
        "STARTUP_B64": script_b64(),
        "PYTHONUNBUFFERED": "1",
    }
    if model_revision:
        env["MODEL_REVISION"] = model_revision
    if model_local_dir:
        env["MODEL_LOCAL_DIR"] = model_local_dir
    return env
