"""The agent's settings, read once from env (contract: startup/README.md) and checked before anything
runs. The stack's settings have no defaults here: pod_env.startup_env() renders them from the one
schema, and a missing one stops the agent naming it. The knobs below keep production defaults; the
tests shorten them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from . import protocol

REQUIRED = ("WORKSPACE", "POD_LABEL", "MODEL_ID", "SERVED_MODEL_NAME", "GPU_PROFILES_JSON", "VLLM_VERSION",
            "OPENWEBUI_VERSION")
# name -> (default, kind): "int" whole number, "num" number of seconds
KNOBS = {
    "VLLM_PORT": (protocol.VLLM_PORT, "int"), "WEBUI_PORT": (protocol.WEBUI_PORT, "int"),
    "RESTART_BACKOFF_S": (5, "num"), "RESTART_BACKOFF_MAX_S": (300, "num"), "MAX_RESTARTS": (5, "int"),
    "RESTART_RESET_S": (900, "num"), "QUICK_CRASH_S": (120, "num"), "HEALTH_INTERVAL_S": (5, "num"),
    "STOP_TIMEOUT_S": (30, "num"), "INSTALL_ATTEMPTS": (3, "int"), "LOCK_WAIT_S": (1800, "num"),
    "DOWNLOAD_PROGRESS_S": (30, "num"), "LOG_MAX_BYTES": (100 * 1024 * 1024, "int"),
    "IDLE_STOP_MINUTE_S": (60, "num"), "IDLE_STOP_CHECK_S": (30, "num"), "IDLE_STOP_RETRY_S": (300, "num"),
}
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+_-]*")
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


class SetupFailed(Exception):
    """Setup ends: `text` goes out as an error= line (then phase=failed unless `quiet`), exit `code`."""

    def __init__(self, code: int, text: str, *, quiet: bool = False):
        super().__init__(text)
        self.code, self.text, self.quiet = code, text, quiet


@dataclass
class Settings:
    env: dict[str, str]
    vllm_key: str
    pod_key: str  # RunPod's pod-scoped key: only the idle stopper gets it
    workspace: Path
    label: str
    model_id: str
    served_name: str
    profiles_json: str
    extra_args_json: str
    vllm_version: str
    webui_version: str
    local_dir: str
    knobs: dict[str, float] = field(default_factory=dict)
    vllm_python: str = "3.12"
    webui_python: str = "3.11"
    persistent_config: str = "False"
    run_dir: Path = Path("/tmp/runpod-deploy")
    venv_root: Path = Path("/opt/runpod-deploy/venvs")
    uv_cache: Path = Path("/opt/runpod-deploy/uv-cache")
    pass_env: tuple[str, ...] = ()
    idle_minutes: int | None = None

    def __getattr__(self, name: str):  # s.RESTART_BACKOFF_S etc.
        knobs = self.__dict__.get("knobs", {})
        if name in knobs:
            return knobs[name]
        raise AttributeError(name)

    @property
    def log_dir(self) -> Path:
        return self.workspace / "logs" / self.label

    @property
    def hf_home(self) -> Path:
        # The old pods' layout (HF_HOME=/workspace/hf_cache), so their Hub cache is reused; the image's
        # HF_HOME=/workspace/.cache/huggingface never reaches a child (childenv.py).
        return self.workspace / "hf_cache"

    @property
    def hf_hub_cache(self) -> Path:
        return self.hf_home / "hub"

    @property
    def webui_data_dir(self) -> Path:
        # One per pod: both pods share the volume, and two SQLite writers corrupt webui.db.
        return self.workspace / "open-webui" / self.label

    @property
    def webui_enabled(self) -> bool:
        # Only with a preset admin: otherwise the first visitor of the public URL becomes admin.
        return bool(self.env.get("WEBUI_ADMIN_EMAIL") and self.env.get("WEBUI_ADMIN_PASSWORD"))


def load(env: dict[str, str]) -> Settings:
    """Settings from `env`; SetupFailed(2) naming the first thing wrong, and its fix."""
    def fail(text: str) -> SetupFailed:
        return SetupFailed(2, text)

    if not env.get("VLLM_API_KEY"):
        raise fail("VLLM_API_KEY is not set: refusing to start vLLM without an API key (pass it as a pod secret)")
    for var in REQUIRED:
        if not env.get(var):
            raise fail(f"{var} is not set: the pod env must give it (runpod_deploy/pod_env.py renders it; "
                       "see startup/README.md)")
    if not _LABEL.fullmatch(env["POD_LABEL"]):
        raise fail(f"POD_LABEL must be a short name of letters, digits, '.', '_' or '-' (got {env['POD_LABEL']!r})")
    paths = {}
    for var, default in (("WORKSPACE", None), ("RUN_DIR", "/tmp/runpod-deploy"),
                         ("VENV_ROOT", "/opt/runpod-deploy/venvs"), ("UV_LOCAL_CACHE", None)):
        value = env.get(var) or default or str(Path(paths["VENV_ROOT"]).parent / "uv-cache")
        if not value.startswith("/"):
            raise fail(f"{var} must be an absolute path (got {value!r})")
        paths[var] = value
    knobs: dict[str, float] = {}
    for var, (default, kind) in KNOBS.items():
        raw = env.get(var) or str(default)
        ok = re.fullmatch(r"[0-9]+" if kind == "int" else r"[0-9]+(\.[0-9]+)?", raw)
        if not ok:
            raise fail(f"{var} must be a {'whole number' if kind == 'int' else 'number of seconds'} (got {raw!r})")
        knobs[var] = int(raw) if kind == "int" else float(raw)
    versions = {v: env.get(v) or d for v, d in (("VLLM_VERSION", ""), ("OPENWEBUI_VERSION", ""),
                                                ("VLLM_PYTHON", "3.12"), ("WEBUI_PYTHON", "3.11"))}
    for var, value in versions.items():
        if not _VERSION.fullmatch(value):
            raise fail(f"{var} is not a version (got {value!r})")
    idle = env.get("IDLE_STOP_MINUTES") or None
    if idle is not None and not re.fullmatch(r"[1-9][0-9]*", idle):
        raise fail("IDLE_STOP_MINUTES must be a whole number of minutes (1 or more), or empty for no idle stop "
                   f"(got {idle!r})")
    # Test knob: env names every child gets as well (the stubs' STUB_*). Never a secret.
    pass_env = tuple(n for n in (env.get("AGENT_PASS_ENV") or "").split(",") if n)
    secret = set(pass_env) & {*protocol.SECRET_ENV_VARS, protocol.RUNPOD_POD_KEY_ENV}
    if secret:
        raise fail(f"AGENT_PASS_ENV must not name a secret (got {sorted(secret)})")
    return Settings(
        env=env, vllm_key=env["VLLM_API_KEY"], pod_key=env.get(protocol.RUNPOD_POD_KEY_ENV, ""),
        workspace=Path(paths["WORKSPACE"]), label=env["POD_LABEL"], model_id=env["MODEL_ID"],
        served_name=env["SERVED_MODEL_NAME"], profiles_json=env["GPU_PROFILES_JSON"],
        extra_args_json=env.get("VLLM_EXTRA_ARGS_JSON") or "[]", vllm_version=versions["VLLM_VERSION"],
        webui_version=versions["OPENWEBUI_VERSION"], local_dir=env.get("MODEL_LOCAL_DIR", ""), knobs=knobs,
        vllm_python=versions["VLLM_PYTHON"], webui_python=versions["WEBUI_PYTHON"],
        persistent_config=env.get("WEBUI_PERSISTENT_CONFIG") or "False", run_dir=Path(paths["RUN_DIR"]),
        venv_root=Path(paths["VENV_ROOT"]), uv_cache=Path(paths["UV_LOCAL_CACHE"]),
        pass_env=pass_env,
        idle_minutes=int(idle) if idle else None,
    )
