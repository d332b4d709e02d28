"""Venv archives on the shared network volume: pack once after an install, unpack at every warm start.

Standard library only (the pod image has python3 and GNU tar; `zstd` is used when it is on PATH).

Why this shape (numbers and sources: startup/WARM_START.md):
- RunPod's network volume reads at 200–400 MB/s "typical", so a warm start is bound by the bytes it
  reads: the archive is compressed (`zstd -3`, about 2.4× smaller on these venvs, measured).
- Decompression and `tar -x` are single-threaded and a single stream on the volume is what RunPod's
  figure describes; the archive is split into PARTS parts (balanced by size) that are read,
  verified, decompressed and extracted in parallel, one pipeline each.
- Both pods mount the same volume, and a `flock` across hosts on MooseFS is unconfirmed, so nothing
  here relies on a lock:
  - every writer writes its own parts under names unique to it (host, pid, random), then its
    manifest under a unique temp name, then renames the manifest into place: the one rename is the
    commit; two writers at once leave the manifest of whichever renamed last, whose parts are whole;
  - the manifest (written last) records each part's size and the sha256 computed while the part was
    written (in the same pipe); unpack recomputes it while reading (same pipe) and raises
    ArchiveCorrupt on any mismatch or truncation, so an interleaved or cut-short file never passes;
  - files of other writers are deleted only when their writer is provably dead (same host, pid gone)
    or they have not been touched for STALE_S (a live writer appends continuously).

On the volume, for dest = /workspace/venvs/vllm-<key>:
    vllm-<key>.manifest.json                     the commit point: format, parts, sizes, sha256s
    vllm-<key>.<host>-<pid>-<rand>.p0.tar.zst    the parts it names (…p1, …p2, …)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .protocol import RUNPOD_POD_ID_ENV

FORMAT_VERSION = 1
PARTS = 4  # parallel streams of files (plus part 0, the directories); a pod has ≥ 8 vCPUs
ZSTD_LEVEL = 3  # -3: 2.4× smaller than plain tar here; -1 is barely faster to write and 10 % bigger
CHUNK = 1 << 20
STALE_S = 3600.0  # a file of another writer untouched this long is abandoned (writers append constantly)
# Room asked for beyond the unpacked size: directories' blocks, tar's own slack, the filesystem's.
DISK_MARGIN_BYTES = 256 << 20
DISK_MARGIN_RATIO = 0.05

Log = Callable[[str], None]


class ArchiveError(Exception):
    """Base of every archive failure; str() is one line for a human."""


class ArchiveMissing(ArchiveError):
    """No complete archive at that path (or one this image cannot read): install, then pack."""


class ArchiveCorrupt(ArchiveError):
    """The archive does not match its manifest (checksum, size, format): rebuild it."""


class DiskFull(ArchiveError):
    """The target disk lacks room for the unpacked venv: say so; rebuilding would not help."""


# ------------------------------------------------------------------ names


def _host() -> str:
    """Who writes: the pod's id where RunPod sets one (unique per pod, so a pid is only ever checked in
    the pid namespace it belongs to), else the hostname."""
    name = os.environ.get(RUNPOD_POD_ID_ENV) or socket.gethostname() or "host"
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:40] or "host"


def _token() -> str:
    return f"{_host()}-{os.getpid()}-{secrets.token_hex(4)}"


def _manifest(dest: Path) -> Path:
    return dest.with_name(dest.name + ".manifest.json")


def _part_name(dest: Path, token: str, i: int, fmt: str) -> str:
    return f"{dest.name}.{token}.p{i}.tar" + (".zst" if fmt == "zstd" else "")


def _own_files(dest: Path) -> re.Pattern[str]:
    """Every file this module writes for `dest` (parts, their temps, manifest temps), never another
    dest's: "vllm-0.11.2" must not match "vllm-0.11.2.post1"'s files. Group "token" = host-pid-rand."""
    n = re.escape(dest.name)
    token = r"(?P<token>(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)-[0-9a-f]{8})"
    mtoken = token.replace("?P<", "?P<m")
    return re.compile(rf"^{n}\.(?:{token}\.p\d+\.tar(?:\.zst)?(?:\.tmp)?|manifest\.json\.tmp-{mtoken})$")


def _writer_dead(host: str, pid: str) -> bool:
    if host != _host():
        return False  # another container: only its age tells
    if pid == str(os.getpid()):
        return True  # this process's earlier pack, finished or failed (pack runs once at a time per dest)
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, OverflowError):
        return False
    return False


def _sweep(dest: Path, keep: set[str], log: Log, stale_s: float) -> None:
    """Delete files of `dest` that no manifest names (keep) and whose writer is dead or long idle."""
    pat = _own_files(dest)
    now = time.time()
    try:
        entries = list(dest.parent.iterdir())
    except OSError:
        return
    for p in entries:
        m = pat.match(p.name)
        if not m or p.name in keep:
            continue
        host, pid = (m.group("host"), m.group("pid")) if m.group("token") else (m.group("mhost"), m.group("mpid"))
        try:
            age = now - p.stat().st_mtime
        except OSError:
            continue
        if _writer_dead(host, pid) or age > stale_s:
            try:
                p.unlink()
                log(f"archive: removed {p.name} (abandoned by its writer, {age / 60:.0f} min old)")
            except OSError:
                pass


# ------------------------------------------------------------------ manifest


def _read_manifest(dest: Path) -> dict:
    path = _manifest(dest)
    try:
        raw = path.read_text()
    except FileNotFoundError:
        raise ArchiveMissing(f"no archive {dest.name} on the volume ({path} is missing): install, then pack") from None
    except OSError as e:
        raise ArchiveError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        m = json.loads(raw)
        if m.get("version") != FORMAT_VERSION:
            raise ValueError(f"format version {m.get('version')!r}, this agent reads {FORMAT_VERSION}")
        if m["format"] not in ("zstd", "tar") or not m["parts"]:
            raise ValueError(f"format {m['format']!r} with {len(m['parts'])} parts")
        for part in m["parts"]:
            if "/" in part["name"] or not isinstance(part["size"], int) or len(part["sha256"]) != 64:
                raise ValueError(f"bad part entry {part!r}")
        int(m["unpacked_bytes"])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ArchiveCorrupt(f"{path} is not a valid manifest ({e}): rebuild the archive") from None
    return m


def exists(dest: Path) -> bool:
    """A committed archive whose parts are all there at their recorded size (no hashing: cheap)."""
    try:
        m = _read_manifest(dest)
    except ArchiveError:
        return False
    for part in m["parts"]:
        try:
            if (dest.parent / part["name"]).stat().st_size != part["size"]:
                return False
        except OSError:
            return False
    return True


# ------------------------------------------------------------------ pack


def _zstd() -> str | None:
    return shutil.which("zstd")


def _split(src: Path, parts: int) -> tuple[list[list[str]], int, int]:
    """Paths under src (relative): group 0 holds every directory, then `parts` groups of the rest,
    balanced by bytes. unpack extracts group 0 first, then the others in parallel: tars that create a
    missing parent directory at the same moment fail ("Cannot open: No such file or directory",
    measured here on Open WebUI's venv). Hard links to one inode stay in one group, so tar can store
    the second as a link. Returns groups, unpacked bytes, file count."""
    dirs_part: list[str] = []
    groups: list[list[str]] = [[] for _ in range(parts)]
    load = [0] * parts
    unpacked = 0
    files: list[tuple[int, str, tuple[int, int]]] = []
    for root, dirs, names in os.walk(src):
        dirs.sort()
        rel_root = os.path.relpath(root, src)
        if rel_root != ".":
            dirs_part.append(rel_root)
            unpacked += 4096
        for n in sorted(names) + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            p = os.path.join(root, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, src)
            files.append((st.st_size, rel, (st.st_dev, st.st_ino) if st.st_nlink > 1 else (0, len(files) + 1)))
            unpacked += -(-st.st_size // 4096) * 4096
    # Largest first onto the lightest part (LPT); an inode seen before goes where its first link went.
    where: dict[tuple[int, int], int] = {}
    for size, rel, ino in sorted(files, key=lambda f: -f[0]):
        i = where.get(ino)
        if i is None:
            i = where[ino] = load.index(min(load))
            load[i] += size + 512
        groups[i].append(rel)
    for g in groups:
        g.sort()  # directory order: tar then writes each directory's files together
    return [dirs_part] + [g for g in groups if g], unpacked, len(files)


def _pack_part(src: Path, names: list[str], tmp: Path, fmt: str, level: int, threads: int) -> tuple[int, str]:
    """tar | [zstd] | this process (sha256 of exactly the bytes written) → tmp. Returns size, hex digest."""
    h = hashlib.sha256()
    size = 0
    with tempfile.NamedTemporaryFile("wb", prefix="archive-list-", delete=False) as lst, \
            tempfile.TemporaryFile() as tar_err, tempfile.TemporaryFile() as z_err:
        lst.write(b"\0".join(n.encode("utf-8", "surrogateescape") for n in names) + b"\0")
        lst.close()
        try:
            tar = subprocess.Popen(["tar", "-C", str(src), "-cf", "-", "--no-recursion", "--null", "-T", lst.name],
                                   stdout=subprocess.PIPE, stderr=tar_err, env=_child_env())
            procs = [tar]
            out = tar.stdout
            if fmt == "zstd":
                z = subprocess.Popen([_zstd() or "zstd", "-q", f"-{level}", f"-T{threads}", "-c"], stdin=tar.stdout,
                                     stdout=subprocess.PIPE, stderr=z_err, env=_child_env())
                tar.stdout.close()
                procs.append(z)
                out = z.stdout
            try:
                with open(tmp, "wb") as f:
                    while chunk := out.read(CHUNK):
                        h.update(chunk)
                        f.write(chunk)
                        size += len(chunk)
                    f.flush()
                    os.fsync(f.fileno())
            except BaseException:
                for p in procs:
                    p.kill()
                    p.wait()
                raise
            finally:
                out.close()
            rcs = [p.wait() for p in procs]
        finally:
            os.unlink(lst.name)
        # one process (plain tar) or two (tar | zstd): the error files past them are unused
        for p, rc, err in zip(procs, rcs, (tar_err, z_err), strict=False):
            if rc != 0:
                err.seek(0)
                msg = err.read().decode(errors="replace").strip().splitlines()
                if _enospc(" ".join(msg)):
                    raise DiskFull(f"the volume is full while writing {tmp.name}: {msg[-1] if msg else ''}")
                raise ArchiveError(f"{p.args[0]} exited {rc} while packing {src}: {msg[-1] if msg else 'no message'}")
    return size, h.hexdigest()


def _child_env() -> dict[str, str]:
    """tar and zstd need no secret: PATH, locale and HOME only (and the names of the agent's test knob
    AGENT_PASS_ENV, never a secret: the stubs' STUB_* settings)."""
    keep = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", *os.environ.get("AGENT_PASS_ENV", "").split(",")}
    return {k: v for k, v in os.environ.items() if k in keep}


def _enospc(text: str) -> bool:
    return "No space left on device" in text or "Disk quota exceeded" in text


def pack(src: Path, dest: Path, *, log: Log, parts: int = PARTS, compress: str = "auto",
         level: int = ZSTD_LEVEL, stale_s: float = STALE_S) -> None:
    """Archive the contents of directory `src` as `dest` (a base path on the volume), then commit it
    by renaming its manifest into place. compress: "auto" (zstd if on PATH, else plain tar), "zstd",
    "none". Raises DiskFull when the volume fills, ArchiveError otherwise; never leaves a manifest
    that names a part it did not finish."""
    src, dest = Path(src), Path(dest)
    if compress == "auto":
        fmt = "zstd" if _zstd() else "tar"
        if fmt == "tar":
            log("archive: no zstd on PATH: writing an uncompressed archive (about 2.4x more to read at each start)")
    elif compress in ("zstd", "none"):
        fmt = "zstd" if compress == "zstd" else "tar"
        if fmt == "zstd" and not _zstd():
            raise ArchiveError("zstd is not on PATH; pack with compress='auto' or 'none'")
    else:
        raise ValueError(f"compress={compress!r}")
    if not src.is_dir():
        raise ArchiveError(f"cannot pack {src}: not a directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    _sweep(dest, _referenced(dest), log, stale_s)
    t0, started = time.monotonic(), time.time()
    groups, unpacked, nfiles = _split(src, max(1, parts))
    token = _token()
    names = [_part_name(dest, token, i, fmt) for i in range(len(groups))]
    threads = max(1, (os.cpu_count() or 2) // len(groups))
    written: list[Path] = []
    try:
        with ThreadPoolExecutor(max_workers=len(groups)) as ex:
            futs = [ex.submit(_pack_part, src, g, dest.parent / (n + ".tmp"), fmt, level, threads)
                    for g, n in zip(groups, names, strict=True)]
            written = [dest.parent / (n + ".tmp") for n in names]
            results = [f.result() for f in futs]
        entries = []
        for n, (size, digest) in zip(names, results, strict=True):
            os.replace(dest.parent / (n + ".tmp"), dest.parent / n)
            entries.append({"name": n, "size": size, "sha256": digest})
        written = [dest.parent / n for n in names]
        manifest = {"version": FORMAT_VERSION, "format": fmt, "parts": entries, "unpacked_bytes": unpacked,
                    "files": nfiles, "source": str(src), "writer": token, "created": int(time.time())}
        tmp = _manifest(dest).with_name(_manifest(dest).name + f".tmp-{token}")
        with open(tmp, "w") as f:
            json.dump(manifest, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        written.append(tmp)
        if _committed_since(dest, started):
            # Another pod packed the same key at the same time and committed first: keep its archive
            # (a pod may be restoring from it now) and drop ours, or our parts would stay on the volume.
            log(f"archive: {dest.name} was committed by another writer meanwhile; keeping it, dropping ours")
            return  # `finally` removes our parts and manifest
        os.replace(tmp, _manifest(dest))  # the commit
        written = []
    except OSError as e:
        if e.errno == 28 or _enospc(str(e)):
            raise DiskFull(f"the volume filled up while writing {dest.name}: {e.strerror or e}") from None
        raise ArchiveError(f"cannot write {dest.name}: {e.strerror or e}") from None
    finally:
        for p in written:
            try:
                p.unlink()
            except OSError:
                pass
    packed = sum(e["size"] for e in entries)
    log(f"archive: wrote {dest.name}: {nfiles} files, {unpacked / 1e9:.2f} GB → {packed / 1e9:.2f} GB "
        f"({fmt}, {len(entries)} parts) in {time.monotonic() - t0:.0f}s")
    _sweep(dest, _referenced(dest), log, stale_s)


def _committed_since(dest: Path, started: float) -> bool:
    """A readable manifest written after `started` (wall clock, as file times are): another writer's
    commit during our pack. One from before is the archive we were asked to replace (corrupt)."""
    try:
        fresh = _manifest(dest).stat().st_mtime >= started - 1
    except OSError:
        return False
    return fresh and bool(_referenced(dest))


def _referenced(dest: Path) -> set[str]:
    try:
        return {p["name"] for p in _read_manifest(dest)["parts"]}
    except ArchiveError:
        return set()


# ------------------------------------------------------------------ unpack


def _free_bytes(path: Path) -> int:
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    st = os.statvfs(p)
    return st.f_bavail * st.f_frsize


def _unpack_part(path: Path, part: dict, fmt: str, into: Path, stop: threading.Event) -> int:
    """One part; on failure the other parts stop too (their work would be thrown away)."""
    try:
        return _unpack_one(path, part, fmt, into, stop)
    except ArchiveError:
        stop.set()
        raise


def _unpack_one(path: Path, part: dict, fmt: str, into: Path, stop: threading.Event) -> int:
    """this process (reads, sha256) | [zstd -d] | tar -x. Returns bytes read; raises on mismatch."""
    h = hashlib.sha256()
    read = 0
    broken = False
    with tempfile.TemporaryFile() as tar_err, tempfile.TemporaryFile() as z_err:
        if fmt == "zstd":
            z = subprocess.Popen([_zstd() or "zstd", "-d", "-q", "-c"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=z_err, env=_child_env())
            tar = subprocess.Popen(["tar", "-C", str(into), "-xf", "-"], stdin=z.stdout, stderr=tar_err,
                                   env=_child_env())
            z.stdout.close()
            procs, sink = [z, tar], z.stdin
        else:
            tar = subprocess.Popen(["tar", "-C", str(into), "-xf", "-"], stdin=subprocess.PIPE, stderr=tar_err,
                                   env=_child_env())
            procs, sink = [tar], tar.stdin
        try:
            with open(path, "rb") as f:
                while not stop.is_set() and (chunk := f.read(CHUNK)):
                    h.update(chunk)
                    read += len(chunk)
                    if not broken:
                        try:
                            sink.write(chunk)
                        except BrokenPipeError:
                            broken = True  # the extractor died; keep hashing to tell corrupt from the rest
                            if _tail(tar_err) and _enospc(_tail(tar_err)):
                                break
        except OSError as e:
            for p in procs:
                p.kill()
            raise ArchiveError(f"reading {path.name} failed after {read} bytes: {e.strerror or e}") from None
        finally:
            try:
                sink.close()
            except BrokenPipeError:
                broken = True
        rcs = [p.wait() for p in procs]
        tar_msg, z_msg = _tail(tar_err), _tail(z_err)
    if _enospc(tar_msg):
        raise DiskFull(f"the container disk filled up while unpacking {path.name} into {into.parent}: {tar_msg}")
    if stop.is_set() and read < part["size"]:
        raise ArchiveError("stopped: another part failed")
    if read != part["size"]:
        raise ArchiveCorrupt(f"{path.name} is {read} bytes, its manifest says {part['size']} (truncated): "
                             "rebuild the archive")
    if h.hexdigest() != part["sha256"]:
        raise ArchiveCorrupt(f"{path.name} does not match its sha256 (sha256 {h.hexdigest()[:12]}…, manifest "
                             f"{part['sha256'][:12]}…): rebuild the archive")
    if any(rcs) or broken:
        # The bytes are the ones written, yet extraction failed: not the archive's fault.
        raise ArchiveError(f"extracting {path.name} failed (tar: {tar_msg or rcs[-1]}; zstd: {z_msg or '-'})")
    return read


def _tail(f) -> str:
    """The first line that says what went wrong (tar ends with a generic "Exiting with failure status")."""
    f.seek(0)
    lines = [x for x in f.read().decode(errors="replace").strip().splitlines() if "Exiting with failure" not in x]
    return (lines[0] + (f" (+{len(lines) - 1} more)" if len(lines) > 1 else "")) if lines else ""


def unpack(dest: Path, target: Path, *, log: Log, free_bytes: Callable[[Path], int] = _free_bytes,
           jobs: int | None = None) -> int:
    """Extract archive `dest` so that directory `target` holds what `pack`'s src held; a previous
    `target` is replaced. It appears only once every part has been verified: extraction goes to a
    sibling temp dir, renamed onto `target` last. Returns the bytes read from the volume.
    Raises ArchiveMissing, ArchiveCorrupt (checksum, size, format), DiskFull (before extracting, from
    the manifest's unpacked size, or on ENOSPC), or ArchiveError."""
    dest, target = Path(dest), Path(target)
    m = _read_manifest(dest)
    fmt = m["format"]
    if fmt == "zstd" and not _zstd():
        raise ArchiveMissing(f"{dest.name} is zstd-compressed and this image has no zstd binary: install, "
                             "then pack writes an uncompressed archive")
    paths = [dest.parent / p["name"] for p in m["parts"]]
    for p, part in zip(paths, m["parts"], strict=True):
        try:
            size = p.stat().st_size
        except FileNotFoundError:
            raise ArchiveCorrupt(f"{p.name}, named by {_manifest(dest).name}, is missing: "
                                 "rebuild the archive") from None
        if size != part["size"]:
            raise ArchiveCorrupt(f"{p.name} is {size} bytes, its manifest says {part['size']} (truncated or "
                                 "overwritten): rebuild the archive")
    target.parent.mkdir(parents=True, exist_ok=True)
    _clear_partials(target, log)
    if target.exists():
        shutil.rmtree(target)
    need = int(m["unpacked_bytes"] * (1 + DISK_MARGIN_RATIO)) + DISK_MARGIN_BYTES
    free = free_bytes(target.parent)
    if free < need:
        raise DiskFull(f"{target.parent} has {free / 1e9:.1f} GB free, unpacking {dest.name} needs "
                       f"{need / 1e9:.1f} GB ({need} bytes needed, {free} free): give the pod a bigger "
                       "container disk (containerDiskGb)")
    t0 = time.monotonic()
    tmp = target.with_name(f".{target.name}.unpacking-{_host()}-{os.getpid()}")
    tmp.mkdir()
    stop = threading.Event()
    try:
        errors: list[BaseException] = []
        read = 0
        try:  # part 0: the directories, before the parallel parts write into them
            read += _unpack_part(paths[0], m["parts"][0], fmt, tmp, stop)
        except ArchiveError as e:
            errors.append(e)
        with ThreadPoolExecutor(max_workers=jobs or max(1, len(paths) - 1)) as ex:
            futs = [] if errors else [ex.submit(_unpack_part, p, part, fmt, tmp, stop)
                                      for p, part in zip(paths[1:], m["parts"][1:], strict=True)]
            for f in futs:
                try:
                    read += f.result()
                except ArchiveError as e:
                    errors.append(e)
        if errors:
            for kind in (DiskFull, ArchiveCorrupt, ArchiveError):
                first = next((e for e in errors if isinstance(e, kind) and "another part failed" not in str(e)), None)
                if first:
                    raise first
            raise errors[0]
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    dt = time.monotonic() - t0
    # bench/warmstart_bench.py reads this line ("<n> bytes read"): the bytes a start read from the volume.
    log(f"archive: restored {target} from {dest.name}: {read} bytes read ({read / 1e9:.2f} GB, {fmt}, "
        f"{len(paths)} parts, {m['unpacked_bytes'] / 1e9:.2f} GB unpacked) in {dt:.1f}s")
    return read


def _clear_partials(target: Path, log: Log) -> None:
    """Half-extracted dirs of earlier unpacks of `target` (a killed boot): they would fill the disk."""
    pat = re.compile(rf"^\.{re.escape(target.name)}\.unpacking-(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)$")
    for p in target.parent.iterdir():
        m = pat.match(p.name)
        if m and (_writer_dead(m.group("host"), m.group("pid")) or time.time() - p.stat().st_mtime > STALE_S):
            log(f"archive: removing {p.name}, left by an unpack that did not finish")
            shutil.rmtree(p, ignore_errors=True)
