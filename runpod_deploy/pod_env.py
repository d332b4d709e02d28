"""What the pod runs: its start command and its plain env, rendered from the validated config.

The pod gets ``args = shlex.join(bootstrap_command())`` (REST v2 has only that one string, no
entrypoint override) and ``env = startup_env(...)`` plus the secrets in ``SECRET_ENV_VARS``, which
the stack passes separately as Pulumi secrets. The program the pod runs is the agent package
``startup/agent/``, sent as a zipapp (``payload()``); its env contract is in ``startup/README.md``.
No Pulumi import here.
"""

from __future__ import annotations

import base64
import io
import json
import lzma
import re
import zipfile
from pathlib import Path
from typing import Any

from startup.agent import bundle, lockfiles, protocol

from .schema import ModelConfig, StackConfig

# Not resolve(): the agent sent is the one beside this checkout of the package, even when the package
# directory is a symlink (devkit builds test projects that way).
ROOT = Path(__file__).absolute().parents[1]
AGENT_DIR: Path = ROOT / "startup" / "agent"
WORKSPACE = "/workspace"  # where the network volume is mounted

# Where the bootstrap writes the decoded payload (container disk), and RunPod's image start script.
DEFAULT_SCRIPT_DEST = "/tmp/runpod-deploy-agent.pyz"
RUNPOD_START_SH = "/start.sh"
# STARTUP_B64's budget. Linux refuses one env string over 128 KiB (MAX_ARG_STRLEN) and RunPod
# documents no limit of its own: 48 KiB leaves room for both, and for whatever RunPod adds.
PAYLOAD_BUDGET_B64 = 48 * 1024
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)

# Secrets the agent reads from env; the stack passes them as Pulumi secrets, never in startup_env().
# VLLM_API_KEY is required; the others are optional (Open WebUI starts only with WEBUI_ADMIN_PASSWORD).
SECRET_ENV_VARS = protocol.SECRET_ENV_VARS  # the agent reads them: named once, in its protocol

_SAFE_PATH = re.compile(r"/[A-Za-z0-9._/-]+")  # embedded in the bash -c string: no quoting needed

# Decodes (base64, then xz) env[argv[1]] into a temp file next to argv[2], then renames it onto argv[2]: a copy of the
# command running twice never truncates a payload that python is still reading. No string literals, so
# the whole bootstrap string needs no quotes inside quotes, and it contains no `$`, `'` or `\`.
_DECODE_PY = (
    "import base64,lzma,os,sys,tempfile;"
    "d=lzma.decompress(base64.b64decode(os.environ[sys.argv[1]]));"
    "fd,t=tempfile.mkstemp(dir=os.path.dirname(sys.argv[2]));"
    "os.write(fd,d);os.close(fd);os.chmod(t,0o755);os.replace(t,sys.argv[2])"
)


def bootstrap_command(*, script_dest: str = DEFAULT_SCRIPT_DEST, start_sh: str = RUNPOD_START_SH) -> list[str]:
    """The pod's start command as argv: ``["bash", "-c", "<one-liner>"]``.

    The one-liner decodes ``$STARTUP_B64`` with python3 to ``script_dest`` (the agent's zipapp) and
    runs it with python3. If the image has RunPod's ``/start.sh`` (runpod/pytorch: nginx, SSH from
    PUBLIC_KEY, Jupyter, /etc/rp_environment, then ``sleep infinity``), the agent starts in the
    background and ``exec /start.sh`` keeps PID 1, so SSH keeps working and the pod stays up even if
    the agent stops (it can be inspected). Otherwise ``exec python3 <payload>`` makes the agent PID 1,
    and it stops the services itself on SIGTERM. (Under /start.sh a pod stop reaches /start.sh, not
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
        f"if [ -x {start_sh} ]; then python3 {script_dest} & exec {start_sh}; fi; "
        f"exec python3 {script_dest}"
    )
    return ["bash", "-c", one_liner]


def agent_files() -> list[Path]:
    """The agent's modules, in the payload's order."""
    return sorted(AGENT_DIR.glob("*.py"), key=lambda p: p.name)


def payload() -> bytes:
    """The agent as a zipapp: ``agent/<module>.py`` for each module, and ``__main__.py`` (a copy of
    ``agent/__main__.py``) at the root, which ``python3 <file>`` runs. Stored, not deflated: the
    whole zip is compressed once by encode(), which packs the modules' shared text far better.
    Deterministic: the same bytes from every checkout (fixed timestamps and modes, sorted names)."""
    buf = io.BytesIO()
    files = [(f"agent/{p.name}", p.read_bytes()) for p in agent_files()]
    files.append(("__main__.py", (AGENT_DIR / "__main__.py").read_bytes()))
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.create_system = 3  # Unix, so the mode below is what unzip shows
            info.external_attr = 0o644 << 16
            zf.writestr(info, data, compress_type=zipfile.ZIP_STORED)
    return buf.getvalue()


def encode(data: bytes) -> str:
    """xz, then base64 on one line: what the bootstrap's one-liner undoes. xz rather than zlib: about
    10% smaller here, and its output does not depend on the machine's zlib build (zlib-ng, as some
    distributions ship, deflates to other bytes), so `up` from a teammate's laptop never restarts the
    pods over a different encoding of the same agent."""
    return base64.b64encode(lzma.compress(data, format=lzma.FORMAT_XZ, preset=9)).decode("ascii")


def decode(b64: str) -> bytes:
    return lzma.decompress(base64.b64decode(b64, validate=True))


def script_b64() -> str:
    """STARTUP_B64: payload(), encoded."""
    return encode(payload())


def payload_problems(b64: str | None = None) -> list[str]:
    """The budget check config.load() runs: [] or the one problem, naming the budget."""
    size = len(script_b64() if b64 is None else b64)
    if size <= PAYLOAD_BUDGET_B64:
        return []
    return [f"STARTUP_B64 (the pod agent startup/agent/, zipped, xz and base64) is {size} bytes, over its "
            f"budget of {PAYLOAD_BUDGET_B64} bytes (48 KiB): make the agent smaller; Linux refuses an env value "
            "over 128 KiB and RunPod documents no limit"]


def gpu_profiles_json(model: ModelConfig) -> str:
    """GPU_PROFILES_JSON: every profile already laid over `default`, under the config's own field
    names; the agent only picks one by the GPU's exact name (else `default`)."""
    resolved = {key: p.model_dump(by_alias=True, exclude_none=True) for key, p in model.resolved_profiles().items()}
    return json.dumps(resolved, separators=(",", ":"))


def startup_env(name: str, model: ModelConfig, cfg: StackConfig, *, workspace: str = WORKSPACE) -> dict[str, str]:
    """The pod's PLAIN env for model `name`: the agent's settings, ``STARTUP_B64`` and
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
    # The files for the children (startup/agent/bundle.py: why not in STARTUP_B64): the locks of exactly
    # the releases this pod installs, and the scripts that run in vLLM's and Open WebUI's interpreters.
    env[bundle.FILES_ENV] = bundle.encode_env([("vllm", cfg.vllm_version_for(model)),
                                               ("openwebui", cfg.openwebui_version),
                                               ("hf-hub", lockfiles.HF_HUB_VERSION)])
    # The API gate in vLLM's process (startup/children/gate.py) reads these.
    if model.allowed_media_domains:
        env["GATE_MEDIA_DOMAINS"] = ",".join(model.allowed_media_domains)
    if model.extra_api_routes:
        env["GATE_ALLOWED_ROUTES"] = ",".join(model.extra_api_routes)
    if model.local_dir:
        env["MODEL_LOCAL_DIR"] = model.local_dir
    if model.idle_stop_minutes is not None:
        env["IDLE_STOP_MINUTES"] = str(model.idle_stop_minutes)
    return env


def secret_env(*, vllm_api_key: Any, webui_admin_password: Any, webui_secret_key: Any,
               hf_token: Any = None) -> dict[str, Any]:
    """The pod's secret env (values are Pulumi secrets), under the names the agent reads
    (``SECRET_ENV_VARS``); HF_TOKEN only when there is one."""
    env = {"VLLM_API_KEY": vllm_api_key, "WEBUI_ADMIN_PASSWORD": webui_admin_password,
           "WEBUI_SECRET_KEY": webui_secret_key, **({"HF_TOKEN": hf_token} if hf_token is not None else {})}
    assert set(env) <= set(SECRET_ENV_VARS), set(env) - set(SECRET_ENV_VARS)
    return env
