"""The dependency locks: committed, hashed, honouring the floors, carried to the pod in its env, and
part of the venv archive's key. Plus the per-model vLLM version and the Open WebUI DB backup rule."""

from __future__ import annotations

import base64
import copy
import hashlib
import re
import sqlite3

import pytest
from devkit.startup import DEV_MODELS, pod_env, stack_config

from runpod_deploy.schema import StackConfig
from startup.agent import bundle
from startup.agent import lockfiles as locks
from startup.children.webui_admin import VERSION_MARKER, backup_before_upgrade, mark_version

LOCK_FILES = sorted(locks.LOCKS_DIR.glob("*-*.txt"))
PINNED = re.compile(r"^([A-Za-z0-9._-]+)==([^ \\]+) \\$")


def entries(path):
    """{package: (version, [hashes])} of a lock."""
    out, name = {}, None
    for line in path.read_text().splitlines():
        if m := PINNED.match(line):
            name = m.group(1).lower().replace("_", "-")
            out[name] = (m.group(2), [])
        elif line.strip().startswith("--hash=sha256:"):
            out[name][1].append(line.strip().removeprefix("--hash=sha256:").rstrip(" \\"))
        elif line.strip() and not line.startswith("#"):
            raise AssertionError(f"{path.name}: unexpected line {line!r}")
    return out


def test_the_defaults_have_their_locks():
    fields = StackConfig.model_fields
    for name, version in (("vllm", fields["vllm_version"].default), ("openwebui", fields["openwebui_version"].default),
                          ("hf-hub", locks.HF_HUB_VERSION)):
        assert (locks.LOCKS_DIR / locks.filename(name, version)).is_file(), (name, version)


@pytest.mark.parametrize("path", LOCK_FILES, ids=lambda p: p.name)
def test_every_package_is_pinned_with_hashes_and_the_floors_hold(path):
    pkgs = entries(path)
    assert len(pkgs) > 5
    assert all(hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes) for _, hashes in pkgs.values())
    name, version = path.stem.rsplit("-", 1)
    top = locks.REQUIREMENTS[name].format(v=version).split("[")[0].split("==")[0].lower().replace("_", "-")
    assert pkgs[top][0] == version
    if "starlette" in pkgs:  # CVE-2026-48710 (floors.txt)
        assert tuple(int(x) for x in pkgs["starlette"][0].split(".")[:2]) >= (1, 0)
        assert pkgs["starlette"][0] != "1.0.0"


def test_the_pod_gets_exactly_its_locks_and_they_decode_to_the_files():
    env = pod_env("olmocr")
    raw = env[bundle.FILES_ENV]
    assert len(raw) < 64 * 1024, len(raw)  # its own env value, well under Linux's 128 KiB per string
    cfg = stack_config()
    for name, version in (("vllm", cfg.vllm_version), ("openwebui", cfg.openwebui_version),
                          ("hf-hub", locks.HF_HUB_VERSION)):
        data, sha = locks.lock_for(name, version, environ=env)
        assert data == (locks.LOCKS_DIR / locks.filename(name, version)).read_bytes()
        assert sha == hashlib.sha256(data).hexdigest()
    with pytest.raises(locks.LockMissing, match="vllm-0.33.0"):
        locks.lock_for("vllm", "0.33.0", environ=env)
    assert pod_env("olmocr")[bundle.FILES_ENV] == raw  # deterministic: the same locks, the same env
    with pytest.raises(locks.LockMissing, match="RUNPOD_DEPLOY_FILES is not set"):
        locks.lock_for("vllm", "0.11.2", environ={})
    with pytest.raises(locks.LockMissing, match="not an xz zip"):
        locks.lock_for("vllm", "0.11.2", environ={bundle.FILES_ENV: base64.b64encode(b"junk").decode()})


def test_a_changed_lock_changes_the_archive_key(tmp_path, monkeypatch):
    key = dict(python="3.12", venv="/opt/runpod-deploy/venvs/vllm-0.11.2")
    real = locks.lock_for("vllm", "0.11.2", environ=pod_env("olmocr"))[1]
    base = locks.archive_key("vllm", "0.11.2", lock_sha256=real, **key)
    assert base.startswith("vllm-0.11.2-")
    monkeypatch.setattr(locks, "LOCKS_DIR", tmp_path)
    for name in ("vllm-0.11.2.txt", "openwebui-0.12.4.txt", "hf-hub-0.36.2.txt"):
        (tmp_path / name).write_bytes((LOCK_FILES[0].parent / name).read_bytes())
    (tmp_path / "vllm-0.11.2.txt").write_bytes((LOCK_FILES[0].parent / "vllm-0.11.2.txt").read_bytes()
                                               .replace(b"starlette==1.10.0", b"starlette==1.10.1"))
    new = locks.lock_for("vllm", "0.11.2", environ=pod_env("olmocr"))[1]
    assert new != real
    assert locks.archive_key("vllm", "0.11.2", lock_sha256=new, **key) != base
    # and the same lock, Python and path give the same key (a warm start finds its archive)
    assert locks.archive_key("vllm", "0.11.2", lock_sha256=real, **key) == base
    assert locks.archive_key("vllm", "0.11.2", lock_sha256=real, python="3.11", venv=key["venv"]) != base


def test_a_model_may_pin_its_own_vllm_and_cuda_floor():
    models = copy.deepcopy(DEV_MODELS)
    models["qwen3vl"].update(vllmVersion="0.33.0")
    with pytest.raises(Exception, match=r'CUDA 13.*minCudaVersion: "13.0" under models.qwen3vl'):
        stack_config(models)
    models["qwen3vl"].update(minCudaVersion="13.0")
    cfg = stack_config(models)
    assert cfg.vllm_version_for(cfg.models["qwen3vl"]) == "0.33.0"
    assert cfg.vllm_version_for(cfg.models["olmocr"]) == cfg.vllm_version
    assert (cfg.min_cuda_version_for(cfg.models["qwen3vl"]), cfg.min_cuda_version_for(cfg.models["olmocr"])) == (
        "13.0", cfg.min_cuda_version)
    # no committed lock for 0.33.0: rendering the pod's env says which file to generate
    with pytest.raises(locks.LockMissing, match=r"python scripts/lock.py vllm 0.33.0"):
        pod_env("qwen3vl", {"vllmVersion": "0.33.0", "minCudaVersion": "13.0"})


def test_gate_settings_per_model_reach_the_pod_env():
    env = pod_env("olmocr", {"allowedMediaDomains": ["images.example.com"], "extraApiRoutes": ["POST /v1/embeddings"]})
    assert (env["GATE_MEDIA_DOMAINS"], env["GATE_ALLOWED_ROUTES"]) == ("images.example.com", "POST /v1/embeddings")
    assert "GATE_MEDIA_DOMAINS" not in pod_env("olmocr")
    for bad in ({"allowedMediaDomains": ["http://x.com"]}, {"extraApiRoutes": ["/v1/../x"]},
                {"extraApiRoutes": ["/v1/embeddings"]}):
        with pytest.raises(Exception):
            pod_env("olmocr", bad)


def test_webui_db_is_copied_aside_once_per_new_version(tmp_path):
    db = tmp_path / "webui.db"
    with sqlite3.connect(db) as c:
        c.execute("create table auth (id text)")
        c.execute("insert into auth values ('admin')")
    assert backup_before_upgrade(tmp_path, "0.7.2") is not None  # unknown old version: copied
    mark_version(tmp_path, "0.7.2")
    assert backup_before_upgrade(tmp_path, "0.7.2") is None  # same version: nothing
    copy_ = backup_before_upgrade(tmp_path, "0.12.4")
    assert copy_.name.startswith("webui.db.0.7.2.") and copy_.parent.name == "backups"
    with sqlite3.connect(copy_) as c:
        assert c.execute("select id from auth").fetchall() == [("admin",)]
    assert (tmp_path / VERSION_MARKER).read_text().strip() == "0.7.2"  # marked only after the new one ran
    assert backup_before_upgrade(tmp_path / "empty", "0.12.4") is None  # no DB yet: nothing to save
