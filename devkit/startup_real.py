"""The REAL pod agent with the REAL packages (tests/startup_real, bench/realpkgs_bench.py,
bench/warmstart_bench.py).

devkit.startup's Harness runs the agent as the pod does (the STARTUP_B64 payload decoded and run with
python3); here it installs vLLM and Open WebUI itself, with the real `uv` (pinned in
pyproject.toml's dev extra) from the real package index, into a temp container disk, and archives them on
a temp WORKSPACE (archive.py). uv's cache lives outside the repo (`~/.cache/runpod-deploy/uv`, the
same place scripts/setup.sh keeps the Pulumi build), so the first run on a machine downloads ~17 GB
once and every later run installs from the cache in seconds.

Only what cannot run here is stood in for: `nvidia-smi` (no GPU) and, once the agent has put the
real vLLM on the container disk (installed or restored), its `vllm` entry point (no GPU to serve on)
by devkit/stubs/stub.py's vllm, an OpenAI-compatible server that requires the key. Open WebUI (and
the agent's admin step before each of its starts) is the real package.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from devkit import locked_venvs
from devkit.startup import DEV_MODELS, OLMOCR, SECRETS, STUB_PY, Harness, HarnessError, Run, stack_config

CACHE = Path(os.environ.get("RUNPOD_DEPLOY_CACHE")
             or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "runpod-deploy")
UV_CACHE = CACHE / "uv"

# The machine's own settings for reaching the package index (CA bundle, proxy, index mirror): given to
# the agent, which passes them to its installers (childenv.NETWORK), so uv reaches the index from here.
PASS_THROUGH = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
                "http_proxy", "https_proxy", "no_proxy", "UV_INDEX_URL", "UV_DEFAULT_INDEX",
                "UV_EXTRA_INDEX_URL", "UV_NATIVE_TLS", "UV_SYSTEM_CERTS")

# What nvidia-smi reports for each GPU type (name, MiB).
GPU_LINES = {
    "NVIDIA L40S": "NVIDIA L40S, 46068 MiB",
    "NVIDIA A100 80GB PCIe": "NVIDIA A100 80GB PCIe, 81920 MiB",
    "NVIDIA GeForce RTX 4090": "NVIDIA GeForce RTX 4090, 24564 MiB",
    "NVIDIA H100 80GB HBM3": "NVIDIA H100 80GB HBM3, 81559 MiB",
}


def gpu_types_to_check(model: str) -> list[str]:
    """Every GPU of Pulumi.dev.yaml's preference list, every profile key of `model`, and a card that no
    profile names (it must get "default")."""
    cfg = stack_config()
    keys = [k for k in cfg.models[model].gpu_profiles if k != "default"]
    return list(dict.fromkeys([*cfg.gpu_types_for(cfg.models[model]), *keys, "NVIDIA H100 80GB HBM3"]))


def find_python(version: str) -> str:
    """An interpreter for `uv venv --python <version>` (devkit.locked_venvs finds it: pyenv shims
    refuse unselected versions, and uv must not download one)."""
    try:
        return locked_venvs.find_python(version)
    except locked_venvs.VenvError as e:
        raise HarnessError(f"{e}: the real-package tier installs the agent's venvs with it") from None


def find_uv() -> str:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if not uv:
        raise HarnessError("`uv` is not installed: run `make setup` (pyproject.toml's dev extra pins it)")
    return uv


# What the agent says once the real vLLM venv is on the container disk (installed, restored or kept).
VLLM_READY_LINE = re.compile(r"^runpod-deploy: vllm: (installed|restored |.* is ready in )")


class RealHarness(Harness):
    """Harness (devkit.startup) whose bin/ has the real uv, tar and Pythons instead of the stubs. Each
    start swaps the stand-in into vLLM's entry point as soon as the agent has put the real vLLM venv
    on the container disk, before it starts vLLM (after a cold install the agent is packing the
    archive then, so the archive may carry either entry point; every start swaps it again)."""

    def __init__(self, tmp: Path, *, uv_cache: Path = UV_CACHE):
        super().__init__(tmp)
        self.uv_cache = uv_cache
        (self.bin / "uv").unlink()
        (self.bin / "uv").symlink_to(find_uv())
        (self.bin / "tar").unlink()  # archive.py packs and unpacks the real venvs with the image's tar
        for version in ("3.12", "3.11"):
            (self.bin / f"python{version}").symlink_to(find_python(version))

    def env(self, model=OLMOCR, *, without=(), settings=None, **overrides) -> dict[str, str]:
        env = super().env(model, without=without, settings=settings, **overrides)
        env.update(
            # The agent's own knob for uv's cache (it never passes the image's UV_CACHE_DIR on): the
            # machine's shared cache, so a run installs from it instead of downloading ~17 GB.
            UV_LOCAL_CACHE=str(self.uv_cache),
            UV_PYTHON_DOWNLOADS="never",  # no network but the package index: use the local Pythons
            UV_NO_PROGRESS="1",
            # The platform's trust store, as pip uses: a machine whose package index sits behind its
            # own CA (a proxy) then works even where SSL_CERT_FILE is not exported.
            UV_SYSTEM_CERTS="1",
            INSTALL_ATTEMPTS="1",
            LOCK_WAIT_S="5",
        )
        env.update({k: os.environ[k] for k in PASS_THROUGH if k in os.environ and k not in overrides})
        return env

    def start(self, model=OLMOCR, **kw) -> Run:
        run = super().start(model, **kw)
        threading.Thread(target=self._stand_in_when_installed, args=(run,), daemon=True).start()
        return run

    def _stand_in_when_installed(self, run: Run) -> None:
        seen = 0
        while run.proc.poll() is None:
            lines = list(run.lines)
            if any(VLLM_READY_LINE.search(line) for line in lines[seen:]):
                self.stand_in_vllm()
                return
            seen = len(lines)
            time.sleep(0.05)

    def archive(self, name: str) -> tuple[Path, dict]:
        """The volume's archive of venv `name` (vllm / openwebui): its manifest (archive.py's commit
        point) and the manifest's content."""
        (path,) = self.ws.glob(f"venvs/{name}-*.manifest.json")
        return path, json.loads(path.read_text())

    def seed_model(self, repo: str) -> None:
        """The weights are on the volume already (no Hub here): the agent's completion marker."""
        d = self.ws / "hf_cache" / "hub" / ("models--" + repo.replace("/", "--"))
        d.mkdir(parents=True, exist_ok=True)
        (d / ".runpod-deploy-complete@default").write_text(f"{repo} default\n")

    def stand_in_vllm(self) -> None:
        """Replace the installed vLLM's entry point (it needs a GPU to serve) by the stub server."""
        target = self.venv("vllm") / "bin" / "vllm"
        tmp = target.with_name("vllm.stand-in")
        tmp.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STUB_PY}" vllm "$@"\n')
        tmp.chmod(0o755)
        os.replace(tmp, target)

    def webui_pid(self, label: str) -> int:
        return int((self.run_dir / f"{label}.openwebui.pid").read_text())


def uv_installed_counts(output: str) -> list[int]:
    """Real uv prints "Installed N packages in …" per install: the counts, in order."""
    return [int(m.group(1)) for m in re.finditer(r"\] Installed (\d+) packages? in ", output)]


def http(method: str, url: str, body: dict | None = None, token: str | None = None,
         timeout: float = 30) -> tuple[int, dict | str]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as r:
            raw = r.read().decode()
            status = r.status
    except urllib.error.HTTPError as e:
        raw, status = e.read().decode(), e.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def wait_http_ok(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = http("GET", url, timeout=5)
            if last[0] == 200:
                return
        except OSError as e:
            last = e
        time.sleep(1)
    raise HarnessError(f"{url} did not answer 200 within {timeout}s (last: {last!r})")


def signin(base: str, email: str, password: str) -> tuple[int, dict | str]:
    return http("POST", f"{base}/api/v1/auths/signin", {"email": email, "password": password})


__all__ = ["DEV_MODELS", "GPU_LINES", "OLMOCR", "SECRETS", "UV_CACHE", "RealHarness",
           "gpu_types_to_check", "http", "signin", "stack_config", "uv_installed_counts", "wait_http_ok"]
