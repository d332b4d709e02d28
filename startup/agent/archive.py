"""Venv archives on the shared network volume: pack / unpack / exists (the interface in COMMON.md).

MINIMAL stand-in written by helper "agent" so the agent's tests run; helper "warm" owns this module
and its real version replaces this one. Plain tar through subprocess; `<dest>.tar` plus a sidecar
`<dest>.tar.sha256` ("<sha256> <bytes>"), written last; temp names carry host and pid, so two pods
sharing the volume never write the same file."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

CHUNK = 1 << 20


class ArchiveError(Exception):
    """Base; str() is a one-line human message."""


class ArchiveMissing(ArchiveError):
    """No complete archive at that path: install, then pack."""


class ArchiveCorrupt(ArchiveError):
    """Checksum or format mismatch: rebuild it."""


class DiskFull(ArchiveError):
    """The target disk lacks room: say so, do NOT rebuild."""


def _paths(dest: Path) -> tuple[Path, Path]:
    return dest.with_name(dest.name + ".tar"), dest.with_name(dest.name + ".tar.sha256")


def _tmp(path: Path) -> Path:
    return path.with_name(f"{path.name}.tmp.{socket.gethostname()}.{os.getpid()}")


def exists(dest: Path) -> bool:
    tar, side = _paths(dest)
    return tar.is_file() and side.is_file()


def pack(src: Path, dest: Path, *, log: Callable[[str], None]) -> None:
    tar, side = _paths(dest)
    tmp, tmp_side = _tmp(tar), _tmp(side)
    digest, size = hashlib.sha256(), 0
    try:
        with open(tmp, "wb") as f:
            proc = subprocess.Popen(["tar", "-cf", "-", "-C", str(src), "."], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
            for chunk in iter(lambda: proc.stdout.read(CHUNK), b""):
                f.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            err = proc.stderr.read().decode(errors="replace")
            if proc.wait() != 0:
                raise ArchiveError(f"tar of {src} failed: {' '.join(err.split())[:200]}")
        tmp_side.write_text(f"{digest.hexdigest()} {size}\n")
        os.replace(tmp, tar)
        os.replace(tmp_side, side)  # last: the archive is complete only with its checksum
    except OSError as e:
        raise ArchiveError(f"cannot write {tar}: {e}") from None
    finally:
        for p in (tmp, tmp_side):
            p.unlink(missing_ok=True)
    log(f"wrote {tar} ({size} bytes, sha256 {digest.hexdigest()[:12]})")


def unpack(dest: Path, target: Path, *, log: Callable[[str], None]) -> int:
    tar, side = _paths(dest)
    try:
        want, size = side.read_text().split()
        size_n = int(size)
    except (OSError, ValueError):
        raise ArchiveMissing(f"no complete archive {tar} on the volume") from None
    if not tar.is_file():
        raise ArchiveMissing(f"no complete archive {tar} on the volume")
    target.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target).free
    if free < size_n * 1.05:
        raise DiskFull(f"restoring {tar} needs {size_n / 1e9:.1f} GB on the container disk, "
                       f"{free / 1e9:.1f} GB are free")
    digest, read = hashlib.sha256(), 0
    proc = subprocess.Popen(["tar", "-xf", "-", "-C", str(target)], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with open(tar, "rb") as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                digest.update(chunk)
                read += len(chunk)
                proc.stdin.write(chunk)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    except OSError as e:
        proc.kill()
        raise ArchiveError(f"reading {tar} failed: {e}") from None
    err = proc.stderr.read().decode(errors="replace")
    rc = proc.wait()
    if "No space left" in err:
        raise DiskFull(f"the container disk filled up while restoring {tar}")
    if digest.hexdigest() != want or read != size_n:
        raise ArchiveCorrupt(f"{tar} does not match its checksum ({read} of {size_n} bytes read)")
    if rc != 0:
        raise ArchiveCorrupt(f"{tar} does not extract: {' '.join(err.split())[:200]}")
    log(f"restored {target} from {tar} ({read} bytes)")
    return read
