"""Real venvs installed from the committed locks, as the pod installs them, cached across runs.

`locked_venv("vllm", "0.11.2")` creates (once per machine) a venv with the pinned release exactly as
the pod does: `uv venv --python <the pod's Python>` then `uv pip install --require-hashes -r
startup/locks/<name>-<version>.txt`, from uv's cache in ~/.cache/runpod-deploy/uv (shared with the
startup tier). The venv lives in ~/.cache/runpod-deploy/venvs/<archive key>: a changed lock gives a
new key, so a test never runs against a venv that an older lock built.

Standard library only, so `python -m devkit.locked_venvs vllm 0.11.2` can prepare a venv before
the project's own venv exists.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from startup.agent.lockfiles import archive_key, filename  # noqa: E402

CACHE = Path(os.environ.get("RUNPOD_DEPLOY_CACHE")
             or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "runpod-deploy")
UV_CACHE = CACHE / "uv"
PYTHONS = {"vllm": "3.12", "openwebui": "3.11", "hf-hub": "3.12"}  # the pod's (startup/agent settings)
PASS_THROUGH = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
                "http_proxy", "https_proxy", "no_proxy", "UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL",
                "UV_NATIVE_TLS", "UV_SYSTEM_CERTS", "PATH", "HOME")


class VenvError(AssertionError):
    """The install failed (the message has uv's output)."""


def find_python(version: str) -> str:
    """A real interpreter path (pyenv shims refuse unselected versions; uv must not download one)."""
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(str(p) for p in Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"))
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for c in filter(None, candidates):
        try:
            out = subprocess.run([c, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == version:
            return c
    raise VenvError(f"no Python {version} interpreter found (tried {candidates}); install python{version}")


def find_uv() -> str:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if not uv:
        raise VenvError("`uv` is not installed: run `make setup` (pyproject.toml's dev extra pins it)")
    return uv


def lock_path(name: str, version: str) -> Path:
    return REPO / "startup" / "locks" / filename(name, version)


def locked_venv(name: str, version: str, *, log=print) -> Path:
    """The venv (its directory; python at bin/python), installed from the lock if not yet there."""
    import hashlib

    lock = lock_path(name, version)
    if not lock.is_file():
        raise VenvError(f"no lock {lock}: run `python scripts/lock.py {name} {version}`")
    python = PYTHONS[name]
    # The key names the path the venv works at, as on the pod.
    key = archive_key(name, version, python=python, venv="(cache)",
                      lock_sha256=hashlib.sha256(lock.read_bytes()).hexdigest())
    return _build(key, python, ["--require-hashes", "-r", str(lock)], lock.name, log)


def unlocked_venv(name: str, version: str, *, log=print) -> Path:
    """A venv of a release that has no lock (an old one a test upgrades FROM, e.g. Open WebUI 0.7.2,
    whose fastapi pin cannot meet floors.txt): resolved fresh, never used by a pod."""
    from startup.agent.lockfiles import REQUIREMENTS

    return _build(f"{name}-{version}-unlocked", PYTHONS[name], [REQUIREMENTS[name].format(v=version)],
                  f"{name} {version} (unlocked)", log)


def _build(key: str, python: str, install_args: list[str], what: str, log) -> Path:
    """~/.cache/runpod-deploy/venvs/<key>, made once per machine: `uv venv`, then `uv pip install
    <install_args>` from uv's shared cache. A flock makes two tests (or helpers) build it once; the
    `.complete` marker, written last, tells a finished venv from one a killed build left."""
    root = CACHE / "venvs"
    root.mkdir(parents=True, exist_ok=True)
    venv = root / key
    done = venv.with_name(key + ".complete")
    with open(root / f"{key}.lock", "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        if done.is_file():
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        uv = find_uv()
        env = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
        env.update(UV_CACHE_DIR=str(UV_CACHE), UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1", UV_SYSTEM_CERTS="1")
        t0 = time.monotonic()
        log(f"venvs: installing {what} into {venv} (first time on this machine)")
        for cmd in ([uv, "venv", "--python", find_python(python), str(venv)],
                    ["nice", uv, "pip", "install", "--python", str(venv / "bin" / "python"), *install_args]):
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise VenvError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        done.write_text(f"{what} installed in {time.monotonic() - t0:.0f}s\n")
        log(f"venvs: {what} installed in {time.monotonic() - t0:.0f}s")
        return venv


if __name__ == "__main__":
    print(locked_venv(sys.argv[1], sys.argv[2]))
