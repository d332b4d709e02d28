"""startup/agent/archive.py: venv archives on a shared volume, on small directories.

The real venvs (10 GB, 68 k files) are measured by bench/warmstart_bench.py; these tests pin the
behaviour: a round trip, two writers at once, corruption and truncation, a full disk, a missing one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from startup.agent import archive
from startup.agent.archive import ArchiveCorrupt, ArchiveError, ArchiveMissing, DiskFull

ROOT = Path(__file__).resolve().parents[2]
FORMATS = ["none"] + (["zstd"] if shutil.which("zstd") else [])


def make_venv(d: Path, files: int = 40) -> Path:
    """A small venv-like tree: nested dirs, a symlink, an executable, a hard link, binary data."""
    (d / "bin").mkdir(parents=True)
    (d / "lib" / "python3.12" / "site-packages" / "pkg").mkdir(parents=True)
    for i in range(files):
        (d / "lib" / "python3.12" / "site-packages" / "pkg" / f"m{i}.py").write_text(f"X = {i}\n" * (i * 50 + 1))
    (d / "lib" / "big.so").write_bytes(os.urandom(300_000))
    (d / "bin" / "python").symlink_to("/usr/bin/python3")
    (d / "bin" / "tool").write_text("#!/bin/sh\necho hi\n")
    (d / "bin" / "tool").chmod(0o755)
    os.link(d / "lib" / "big.so", d / "lib" / "big-link.so")
    (d / "empty-dir").mkdir()
    return d


def tree(d: Path) -> dict[str, tuple]:
    out = {}
    for p in sorted(d.rglob("*")):
        rel = str(p.relative_to(d))
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_dir():
            out[rel] = ("dir",)
        else:
            out[rel] = ("file", p.read_bytes(), p.stat().st_mode & 0o777)
    return out


def parts_of(dest: Path) -> list[Path]:
    m = json.loads((dest.parent / (dest.name + ".manifest.json")).read_text())
    return [dest.parent / p["name"] for p in m["parts"]]


@pytest.mark.parametrize("compress", FORMATS)
def test_round_trip_restores_every_file_link_and_mode(tmp_path, compress):
    src = make_venv(tmp_path / "disk" / "vllm-1")
    dest = tmp_path / "vol" / "venvs" / "vllm-1"
    logs: list[str] = []
    archive.pack(src, dest, log=logs.append, compress=compress, parts=3)
    assert archive.exists(dest)
    parts = parts_of(dest)
    assert len(parts) == 1 + 3, "the directories, then 3 parts of files"
    if compress == "none":  # the directories come first, alone: parallel tars must not race to create them
        listing = subprocess.run(["tar", "-tvf", str(parts[0])], capture_output=True, text=True, check=True).stdout
        assert listing and all(line.startswith("d") for line in listing.splitlines())
    target = tmp_path / "disk2" / "vllm-1"
    read = archive.unpack(dest, target, log=logs.append)
    assert tree(target) == tree(src)
    assert read == sum(p.stat().st_size for p in parts_of(dest))
    assert os.stat(target / "lib" / "big.so").st_ino == os.stat(target / "lib" / "big-link.so").st_ino
    assert not [p for p in target.parent.iterdir() if p.name != "vllm-1"], "no temp dir left beside the target"
    assert any("wrote vllm-1" in line for line in logs) and any("restored" in line for line in logs)


def test_unpack_replaces_an_old_target_and_a_failed_unpack_leaves_none(tmp_path):
    src = make_venv(tmp_path / "src")
    dest = tmp_path / "vol" / "a"
    archive.pack(src, dest, log=lambda _: None, compress="none")
    target = tmp_path / "disk" / "a"
    (target / "stale").mkdir(parents=True)
    archive.unpack(dest, target, log=lambda _: None)
    assert not (target / "stale").exists() and tree(target) == tree(src)
    with open(parts_of(dest)[0], "r+b") as f:
        f.seek(5000)
        f.write(b"\xff")
    with pytest.raises(ArchiveCorrupt):
        archive.unpack(dest, target, log=lambda _: None)
    assert not target.exists(), "a target restored from a corrupt archive must not look usable"
    assert list(target.parent.iterdir()) == []


def test_missing_archive_raises_archive_missing(tmp_path):
    with pytest.raises(ArchiveMissing) as e:
        archive.unpack(tmp_path / "vol" / "nothing", tmp_path / "t", log=lambda _: None)
    assert "install, then pack" in str(e.value) and "\n" not in str(e.value)
    assert not archive.exists(tmp_path / "vol" / "nothing")


@pytest.mark.parametrize("compress", FORMATS)
def test_a_flipped_byte_is_caught_by_the_checksum(tmp_path, compress):
    src = make_venv(tmp_path / "src")
    dest = tmp_path / "vol" / "v"
    archive.pack(src, dest, log=lambda _: None, compress=compress, parts=2)
    part = max(parts_of(dest), key=lambda p: p.stat().st_size)
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size: the old size-only marker passed exactly this
    part.write_bytes(bytes(data))
    assert archive.exists(dest), "exists() is cheap (sizes only); unpack is what verifies"
    with pytest.raises(ArchiveCorrupt) as e:
        archive.unpack(dest, tmp_path / "t" / "v", log=lambda _: None)
    assert "sha256" in str(e.value) and "rebuild" in str(e.value)


@pytest.mark.parametrize("compress", FORMATS)
def test_a_truncated_part_is_corrupt(tmp_path, compress):
    src = make_venv(tmp_path / "src")
    dest = tmp_path / "vol" / "v"
    archive.pack(src, dest, log=lambda _: None, compress=compress, parts=2)
    part = parts_of(dest)[0]
    os.truncate(part, part.stat().st_size // 2)
    assert not archive.exists(dest)
    with pytest.raises(ArchiveCorrupt) as e:
        archive.unpack(dest, tmp_path / "t" / "v", log=lambda _: None)
    assert "truncated" in str(e.value)


def test_a_part_truncated_while_being_read_is_corrupt(tmp_path, monkeypatch):
    """The size check before reading passes, then the file ends early (a volume hiccup, a writer)."""
    src = make_venv(tmp_path / "src")
    dest = tmp_path / "vol" / "v"
    archive.pack(src, dest, log=lambda _: None, compress="none", parts=1)
    real_open = open
    part = parts_of(dest)[-1]  # the files (part 0 holds the directories)

    def short_open(path, mode="r", *a, **kw):
        f = real_open(path, mode, *a, **kw)
        if Path(path) == part and "b" in mode:
            data = f.read()[:20_000]
            f.close()
            import io
            return io.BytesIO(data)
        return f

    monkeypatch.setattr("builtins.open", short_open)
    with pytest.raises(ArchiveCorrupt) as e:
        archive.unpack(dest, tmp_path / "t" / "v", log=lambda _: None)
    assert "truncated" in str(e.value)


def test_a_garbled_manifest_is_corrupt_and_a_missing_part_too(tmp_path):
    src = make_venv(tmp_path / "src")
    dest = tmp_path / "vol" / "v"
    archive.pack(src, dest, log=lambda _: None, compress="none", parts=2)
    parts_of(dest)[1].unlink()
    with pytest.raises(ArchiveCorrupt, match="is missing"):
        archive.unpack(dest, tmp_path / "t" / "v", log=lambda _: None)
    (dest.parent / "v.manifest.json").write_text('{"version": 1, "form')
    with pytest.raises(ArchiveCorrupt, match="not a valid manifest"):
        archive.unpack(dest, tmp_path / "t" / "v", log=lambda _: None)


def test_disk_full_is_told_apart_before_extracting(tmp_path):
    src = make_venv(tmp_path / "src")
    dest = tmp_path / "vol" / "v"
    archive.pack(src, dest, log=lambda _: None, compress="none")
    seen = []

    def tiny_disk(path: Path) -> int:
        seen.append(path)
        return 1_000_000

    target = tmp_path / "disk" / "v"
    with pytest.raises(DiskFull) as e:
        archive.unpack(dest, target, log=lambda _: None, free_bytes=tiny_disk)
    msg = str(e.value)
    assert "1000000 free" in msg and "needed" in msg and "containerDiskGb" in msg and "\n" not in msg
    assert not isinstance(e.value, ArchiveCorrupt), "a full disk must not trigger a rebuild"
    assert seen == [target.parent] and not target.exists()
    assert archive.exists(dest), "the archive is left alone"


def test_disk_full_during_extraction_is_disk_full(tmp_path, monkeypatch):
    """ENOSPC from tar (the pre-check's estimate was too low): DiskFull, not ArchiveCorrupt."""
    src = make_venv(tmp_path / "src")
    dest = tmp_path / "vol" / "v"
    archive.pack(src, dest, log=lambda _: None, compress="none", parts=1)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "tar").write_text("#!/bin/sh\ncat >/dev/null\necho 'tar: lib/big.so: Cannot write: No space left on device'"
                              " >&2\nexit 2\n")
    (fake / "tar").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(DiskFull, match="No space left"):
        archive.unpack(dest, tmp_path / "disk" / "v", log=lambda _: None)


WRITER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from startup.agent import archive
go = Path(sys.argv[4])
while not go.exists():
    time.sleep(0.005)
archive.pack(Path(sys.argv[2]), Path(sys.argv[3]), log=lambda _: None, compress=sys.argv[5], parts=3)
"""


@pytest.mark.parametrize("compress", FORMATS)
def test_two_writers_at_once_leave_one_valid_archive(tmp_path, compress):
    """Two pods cold-starting on one volume pack the same venv at the same moment: no lock involved."""
    srcs = [make_venv(tmp_path / f"pod{i}" / "venv", files=400) for i in range(2)]
    dest = tmp_path / "vol" / "venvs" / "vllm-1"
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(ROOT), str(s), str(dest), str(go), compress])
             for s in srcs]
    go.touch()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert archive.exists(dest)
    target = tmp_path / "fresh" / "venv"
    archive.unpack(dest, target, log=lambda _: None)
    assert tree(target) in (tree(srcs[0]), tree(srcs[1]))
    left = sorted(p.name for p in dest.parent.iterdir())
    assert not [n for n in left if ".tmp" in n], f"temp files left: {left}"
    # only the committed archive's parts stay: a writer that commits second drops its own
    named = {part["name"] for part in json.loads(archive._manifest(dest).read_text())["parts"]}
    assert set(left) - {archive._manifest(dest).name} == named, left


def test_a_writer_that_finds_a_newer_commit_keeps_it_and_drops_its_own_parts(tmp_path):
    first, second = make_venv(tmp_path / "a", files=20), make_venv(tmp_path / "b", files=30)
    dest = tmp_path / "vol" / "v"
    said = []
    real_split = archive._split

    def split_then_another_pod_commits(src, parts):  # the other pod commits while this one packs
        archive._split = real_split
        archive.pack(first, dest, log=lambda _: None)
        return real_split(src, parts)

    archive._split = split_then_another_pod_commits
    try:
        archive.pack(second, dest, log=said.append)
    finally:
        archive._split = real_split
    assert any("committed by another writer meanwhile" in line for line in said), said
    target = tmp_path / "out"
    archive.unpack(dest, target, log=lambda _: None)
    assert tree(target) == tree(first)
    named = {part["name"] for part in json.loads(archive._manifest(dest).read_text())["parts"]}
    assert {p.name for p in dest.parent.iterdir()} - {archive._manifest(dest).name} == named
    # an archive from before this pack began (one being replaced as corrupt) is replaced, not kept
    old = archive._manifest(dest).stat().st_mtime - 120
    os.utime(archive._manifest(dest), (old, old))
    archive.pack(second, dest, log=lambda _: None)
    archive.unpack(dest, tmp_path / "out2", log=lambda _: None)
    assert tree(tmp_path / "out2") == tree(second)


def test_stale_files_of_a_dead_writer_are_swept_a_live_ones_kept(tmp_path):
    src = make_venv(tmp_path / "src")
    dest = tmp_path / "vol" / "v"
    dest.parent.mkdir(parents=True)
    host = archive._host()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = dest.parent / f"v.{host}-999999999-0123abcd.p0.tar.zst.tmp"  # no such pid on this host
        alive = dest.parent / f"v.{host}-{live.pid}-0123abcd.p0.tar.zst.tmp"  # its writer still runs
        other_host_new = dest.parent / "v.otherpod-42-0123abcd.p1.tar.tmp"
        other_host_old = dest.parent / "v.otherpod-43-0123abcd.p1.tar.tmp"
        other_dest = dest.parent / f"v.post1.{host}-999999999-0123abcd.p0.tar"  # another archive's file
        for p in (dead, alive, other_host_new, other_host_old, other_dest):
            p.write_bytes(b"x")
        os.utime(other_host_old, (0, 0))
        archive.pack(src, dest, log=lambda _: None, compress="none")
        left = {p.name for p in dest.parent.iterdir()}
        assert dead.name not in left and other_host_old.name not in left
        assert {alive.name, other_host_new.name, other_dest.name} <= left
    finally:
        live.kill()
        live.wait()


def test_errors_are_one_line_and_share_a_base():
    for cls in (ArchiveMissing, ArchiveCorrupt, DiskFull):
        assert issubclass(cls, ArchiveError)
