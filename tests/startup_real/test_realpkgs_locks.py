"""The committed locks install with the real uv as the pod installs them (`--require-hashes`), and a
lock whose hash does not match what the index serves is refused: the lock is what gets installed."""

from __future__ import annotations

import subprocess

import pytest

from devkit.locked_venvs import PASS_THROUGH, UV_CACHE, find_python, find_uv, lock_path, locked_venv

pytestmark = pytest.mark.timeout(1800)


def install(lock, venv):
    import os
    env = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
    env.update(UV_CACHE_DIR=str(UV_CACHE), UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1", UV_SYSTEM_CERTS="1")
    subprocess.run([find_uv(), "venv", "--python", find_python("3.12"), str(venv)], env=env, check=True,
                   capture_output=True)
    return subprocess.run([find_uv(), "pip", "install", "--require-hashes", "--python", str(venv / "bin" / "python"),
                           "-r", str(lock)], env=env, capture_output=True, text=True, timeout=900)


def test_the_downloader_lock_installs_with_hashes_and_a_wrong_hash_is_refused(tmp_path):
    lock = lock_path("hf-hub", "0.36.2")
    ok = install(lock, tmp_path / "ok")
    assert ok.returncode == 0, ok.stderr[-3000:]
    version = subprocess.run([str(tmp_path / "ok" / "bin" / "python"), "-c",
                              "import huggingface_hub; print(huggingface_hub.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == "0.36.2"

    text = lock.read_text()
    i = text.index("--hash=sha256:") + len("--hash=sha256:")
    forged = tmp_path / "forged.txt"
    forged.write_text(text[:i] + ("0" if text[i] != "0" else "1") + text[i + 1:])
    bad = install(forged, tmp_path / "bad")
    assert bad.returncode != 0 and "hash" in bad.stderr.lower(), bad.stderr[-2000:]


@pytest.mark.parametrize("name,version", [("vllm", "0.11.2"), ("openwebui", "0.12.4")])
def test_the_locked_venvs_carry_the_floors(name, version):
    venv = locked_venv(name, version)
    out = subprocess.run([str(venv / "bin" / "python"), "-c", "import starlette; print(starlette.__version__)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert tuple(int(x) for x in out.split(".")[:3]) >= (1, 0, 1), out  # CVE-2026-48710 (floors.txt)
