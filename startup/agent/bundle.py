"""The files for the agent's children, per pod in env RUNPOD_DEPLOY_FILES (not in STARTUP_B64, which
every pod gets whole, under its budget): ``locks/<name>-<version>.txt`` of the releases this pod
installs (lockfiles.py), and ``children/gate.py`` / ``children/webui_admin.py``, which run in vLLM's
and Open WebUI's interpreters. A zip (sorted, fixed times), xz, base64: the same files give the same
string on every machine, so `up` changes no pod for nothing. Provider: encode_env(); agent: read()."""

from __future__ import annotations

import base64
import functools
import io
import lzma
import os
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

FILES_ENV = "RUNPOD_DEPLOY_FILES"
CHILDREN = ("gate.py", "webui_admin.py")
# Provider side only (the zipapp has neither directory).
STARTUP_DIR = Path(__file__).absolute().parents[1]


class FileMissing(Exception):
    """The bundle lacks a file, or is absent or unreadable; str() says which and why."""


def encode(files: Mapping[str, bytes]) -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in sorted(files):
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), files[name])
    return base64.b64encode(lzma.compress(buf.getvalue(), format=lzma.FORMAT_XZ, preset=9)).decode("ascii")


def encode_env(locks: Iterable[tuple[str, str]]) -> str:
    """RUNPOD_DEPLOY_FILES for a pod that installs these (lock name, version) pairs."""
    from .lockfiles import filename, repo_lock

    files = {f"locks/{filename(n, v)}": repo_lock(n, v) for n, v in set(locks)}
    files.update({f"children/{c}": (STARTUP_DIR / "children" / c).read_bytes() for c in CHILDREN})
    return encode(files)


@functools.lru_cache(maxsize=2)
def _files(raw: str) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(io.BytesIO(lzma.decompress(base64.b64decode(raw, validate=True)))) as z:
            return {n: z.read(n) for n in z.namelist()}
    except (ValueError, lzma.LZMAError, zipfile.BadZipFile) as e:
        raise FileMissing(f"env {FILES_ENV} is not an xz zip in base64 ({e})") from None


def read(name: str, *, environ: Mapping[str, str] | None = None) -> bytes:
    """File `name` (e.g. ``children/gate.py``) of the bundle in env RUNPOD_DEPLOY_FILES."""
    raw = (os.environ if environ is None else environ).get(FILES_ENV)
    if not raw:
        raise FileMissing(f"env {FILES_ENV} is not set: the pod has no {name} (the provider sets it; an older "
                          "one did not: run `pulumi up`)")
    files = _files(raw)
    if name not in files:
        raise FileMissing(f"env {FILES_ENV} has no {name} (it holds the files of the versions the config names)")
    return files[name]
