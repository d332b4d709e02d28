"""Each child's env, built from an allowlist: nothing reaches a child unless it is named here. So
the installers and tar get no secret, the downloader HF_TOKEN only, vLLM its key only, Open WebUI
its own (the admin password only for the admin step), and RunPod's pod-scoped RUNPOD_API_KEY none
at all (only the idle stopper, in this process, uses it). The image's own settings that would hurt
(UV_CACHE_DIR and HF_HOME on the volume, HF_HUB_ENABLE_HF_TRANSFER=1) never pass either."""

from __future__ import annotations

from pathlib import Path

from .settings import Settings

BASE = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME", "TERM")
# How this machine reaches the package index (CA bundle, proxy, mirror): installers and downloader.
NETWORK = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
           "http_proxy", "https_proxy", "no_proxy", "UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL",
           "UV_NATIVE_TLS", "UV_SYSTEM_CERTS", "UV_PYTHON_DOWNLOADS", "UV_NO_PROGRESS", "PIP_INDEX_URL",
           "PIP_EXTRA_INDEX_URL")
# What the GPU runtime of the image may need (no secret): the services.
GPU = ("LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES", "CUDA_HOME")
# The gate's settings (startup/children/gate.py, in vLLM's process): vLLM only.
GATE = ("GATE_MEDIA_DOMAINS", "GATE_ALLOWED_ROUTES", "GATE_MAX_BODY_BYTES")
# Every child that may reach the Hub: huggingface_hub 0.x raises on every plain download when
# HF_HUB_ENABLE_HF_TRANSFER=1 (the runpod/pytorch image sets it) and hf_transfer is not installed;
# Xet's chunk cache (under HF_HOME, the volume) only helps re-downloads, which the marker prevents.
HF_FIXED = {"HF_HUB_ENABLE_HF_TRANSFER": "0", "HF_XET_CHUNK_CACHE_SIZE_BYTES": "0"}


def pick(env: dict[str, str], names) -> dict[str, str]:
    return {n: env[n] for n in names if n in env}


def base(s: Settings) -> dict[str, str]:
    return {**pick(s.env, BASE + s.pass_env), "PYTHONUNBUFFERED": "1"}


def uv(s: Settings) -> dict[str, str]:
    # uv's cache on the container disk, beside the venvs: hardlinks into them instead of ~100k files
    # written on the volume (the image sets UV_CACHE_DIR=/workspace/.cache/uv).
    return {"UV_CACHE_DIR": str(s.uv_cache), "UV_LINK_MODE": "hardlink"}


def installer(s: Settings, python_dir: Path | None = None) -> dict[str, str]:
    env = {**base(s), **pick(s.env, NETWORK), **uv(s)}
    if python_dir is not None:  # a Python uv downloads goes with the venv (and its archive)
        env["UV_PYTHON_INSTALL_DIR"] = str(python_dir)
    return env


def hf(s: Settings) -> dict[str, str]:
    return {"HF_HOME": str(s.hf_home), "HF_HUB_CACHE": str(s.hf_hub_cache), **HF_FIXED}


def downloader(s: Settings) -> dict[str, str]:
    env = {**base(s), **pick(s.env, NETWORK), **hf(s), "HF_XET_HIGH_PERFORMANCE": "1",
           "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    if s.env.get("HF_TOKEN"):
        env["HF_TOKEN"] = s.env["HF_TOKEN"]
    return env


def vllm(s: Settings, cache_root: Path) -> dict[str, str]:
    return {
        **base(s), **pick(s.env, GPU), **hf(s),
        **pick(s.env, GATE),
        "VLLM_API_KEY": s.vllm_key,  # read when --api-key is absent (and by the gate): never on argv
        "VLLM_CACHE_ROOT": str(cache_root),
        # With torch >= 2.8 vLLM compiles through InductorStandaloneAdaptor, which does not point
        # Triton's cache at its own (vllm 0.11.2 compilation/compiler_interface.py): without this,
        # Triton kernels recompile into ~/.triton on the container disk at every start.
        "TRITON_CACHE_DIR": str(cache_root / "triton_cache"),
        # The weights are complete beforehand (marker, or MODEL_LOCAL_DIR): vLLM never calls the Hub.
        "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
    }


def webui(s: Settings, *, embedding_ready: bool) -> dict[str, str]:
    env = {
        **base(s), **pick(s.env, GPU + ("WEBUI_URL", "WEBUI_NAME")), **hf(s),
        "DATA_DIR": str(s.webui_data_dir),
        "OPENAI_API_BASE_URL": f"http://127.0.0.1:{s.VLLM_PORT}/v1",
        "OPENAI_API_KEY": s.vllm_key,  # the key of the vLLM it calls
        "ENABLE_OPENAI_API": "True", "ENABLE_OLLAMA_API": "False", "WEBUI_AUTH": "True", "ENABLE_SIGNUP": "False",
        # Its built-in "arena-model" would be listed next to the served model (open_webui/config.py).
        "ENABLE_EVALUATION_ARENA_MODELS": "False",
        # False: env wins over values saved in its DB at first launch (so a rotated key applies).
        "ENABLE_PERSISTENT_CONFIG": s.persistent_config,
    }
    if s.env.get("WEBUI_SECRET_KEY"):
        env["WEBUI_SECRET_KEY"] = s.env["WEBUI_SECRET_KEY"]
    if embedding_ready:
        # Its embedding model is on the volume: use it as it is, no Hub call at start (the default
        # True asks the Hub for updates at every start, open_webui/routers/retrieval.py get_ef).
        env["RAG_EMBEDDING_MODEL_AUTO_UPDATE"] = "False"
    return env


def webui_admin(s: Settings, webui_env: dict[str, str]) -> dict[str, str]:
    """The admin step: Open WebUI's env plus the preset admin; the password reaches nothing else."""
    env = {**webui_env, "WEBUI_ADMIN_EMAIL": s.env["WEBUI_ADMIN_EMAIL"],
           "WEBUI_ADMIN_PASSWORD": s.env["WEBUI_ADMIN_PASSWORD"]}
    if s.env.get("WEBUI_ADMIN_NAME"):
        env["WEBUI_ADMIN_NAME"] = s.env["WEBUI_ADMIN_NAME"]
    return env
