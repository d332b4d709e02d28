"""What the pod runs: its start command and its plain env, rendered from the validated config.

The pod gets ``args = shlex.join(bootstrap_command())`` (REST v2 has only that one string, no
entrypoint override) and ``env = startup_env(...)`` plus the secrets in ``SECRET_ENV_VARS``, which
the stack passes separately as Pulumi secrets. The script itself is ``startup/startup.sh``; its env
contract is in ``startup/README.md``. No Pulumi import here.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from startup.agent import locks

from .schema import ModelConfig, StackConfig

# Not resolve(): the template is the one beside this checkout of the package, even when the package
# directory is a symlink (devkit builds test projects that way).
ROOT = Path(__file__).absolute().parents[1]
SCRIPT_PATH: Path = ROOT / "startup" / "startup.sh"
WORKSPACE = "/workspace"  # where the network volume is mounted

# Where the bootstrap writes the decoded script (container disk), and RunPod's image start script.
DEFAULT_SCRIPT_DEST = "/tmp/runpod-deploy-startup.sh"
RUNPOD_START_SH = "/start.sh"

# Secrets the script reads from env; the stack passes them as Pulumi secrets, never in startup_env().
# VLLM_API_KEY is required; the others are optional (Open WebUI starts only with WEBUI_ADMIN_PASSWORD).
SECRET_ENV_VARS: tuple[str, ...] = ("VLLM_API_KEY", "HF_TOKEN", "WEBUI_ADMIN_PASSWORD", "WEBUI_SECRET_KEY")

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


def gpu_profiles_json(model: ModelConfig) -> str:
    """GPU_PROFILES_JSON: every profile already laid over `default`, under the config's own field
    names; the script only picks one by the GPU's exact name (else `default`)."""
    resolved = {key: p.model_dump(by_alias=True, exclude_none=True) for key, p in model.resolved_profiles().items()}
    return json.dumps(resolved, separators=(",", ":"))


def startup_env(name: str, model: ModelConfig, cfg: StackConfig, *, workspace: str = WORKSPACE) -> dict[str, str]:
    """The pod's PLAIN env for model `name`: the script's settings, ``STARTUP_B64`` and
    ``PYTHONUNBUFFERED=1``. The config is already validated (schema.py); the secrets
    (``SECRET_ENV_VARS``) are not here: the stack adds them as Pulumi secrets."""
    env = {
        "POD_LABEL": name,
        "MODEL_ID": model.model_id,
        "SERVED_MODEL_NAME": model.served_model_name,
        "GPU_PROFILES_JSON": gpu_profiles_json(model),
        "VLLM_EXTRA_ARGS_JSON": json.dumps(model.vllm_args, separators=(",", ":")),
        "VLLM_VERSION": cfg.vllm_version_for(model),
        "OPENWEBUI_VERSION": cfg.openwebui_version,
        "WEBUI_ADMIN_EMAIL": cfg.webui_admin_email,
        "WORKSPACE": workspace,
        "STARTUP_B64": script_b64(),
        "PYTHONUNBUFFERED": "1",
    }
    # The locks of exactly the releases this pod installs (startup/agent/locks.py: why not in STARTUP_B64).
    env[locks.LOCKS_ENV] = locks.encode_env([("vllm", cfg.vllm_version_for(model)),
                                             ("openwebui", cfg.openwebui_version),
                                             ("hf-hub", locks.HF_HUB_VERSION)])
    # The API gate in vLLM's process (startup/agent/gate.py) reads these.
    if model.allowed_media_domains:
        env["GATE_MEDIA_DOMAINS"] = ",".join(model.allowed_media_domains)
    if model.extra_api_routes:
        env["GATE_ALLOWED_ROUTES"] = ",".join(model.extra_api_routes)
    if model.local_dir:
        env["MODEL_LOCAL_DIR"] = model.local_dir
    if model.idle_stop_minutes is not None:
        env["IDLE_STOP_MINUTES"] = str(model.idle_stop_minutes)
    return env
