"""The venvs, on the container disk: a venv on the network volume costs a round trip per file at every
import (vLLM opens ~7,000 files per process). The volume keeps one archive per venv (archive.py),
written once after the install, which later starts restore: no uv, no index. Numbers behind this:
startup/README.md, "Where the venvs live".

Layout: <VENV_ROOT>/<name>-<version>/{env,python,lock.txt}: `env` the venv, `python` any Python uv
downloaded for it (it must come back with the venv on a fresh container disk), archived together.
Each venv is installed from its hashed lock (lockfiles.py; the file bundle brings it). A venv works
only at the absolute path it was created at, so the archive's name (lockfiles.archive_key) carries a
hash of the release, the lock, the Python and that path. <VENV_ROOT>/<name>-<version>.complete
(that name and the lock's sha256) is written last, so a cut-short restore or install is redone."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import archive, childenv, lockfiles
from .locks import volume_lock
from .output import LogWriter, Out
from .proc import Children
from .settings import SetupFailed, Settings


class InstallFailed(SetupFailed):
    pass


@dataclass(frozen=True)
class Spec:
    name: str  # vllm / openwebui / hf-hub: its lock's name, and the prefix of its lines ([install-vllm] ...)
    version: str
    python: str

    @property
    def requirement(self) -> str:
        return lockfiles.REQUIREMENTS[self.name].format(v=self.version)


class Venvs:
    def __init__(self, s: Settings, out: Out, children: Children, log: LogWriter, arc=archive):
        self.s, self.out, self.children, self.log, self.arc = s, out, children, log, arc
        self._uv: list[str] | None = None
        self._uv_lock = threading.Lock()

    def home(self, spec: Spec) -> Path:
        return self.s.venv_root / f"{spec.name}-{spec.version}"

    def env_dir(self, spec: Spec) -> Path:
        return self.home(spec) / "env"

    def lock(self, spec: Spec) -> tuple[bytes, str]:
        """The lock's bytes and sha256; InstallFailed naming the missing lock."""
        try:
            return lockfiles.lock_for(spec.name, spec.version, environ=self.s.env)
        except lockfiles.LockMissing as e:
            raise InstallFailed(1, str(e)) from None

    def key(self, spec: Spec) -> str:
        """The archive's name, then the lock's sha256: the completion marker's text."""
        sha = self.lock(spec)[1]
        name = lockfiles.archive_key(spec.name, spec.version, python=spec.python, venv=str(self.env_dir(spec)),
                                     lock_sha256=sha)
        return f"{name} lock=sha256:{sha}"

    def dest(self, spec: Spec) -> Path:
        return self.s.workspace / "venvs" / self.key(spec).split()[0]

    def _marker(self, spec: Spec) -> Path:
        return self.s.venv_root / f"{self.home(spec).name}.complete"

    def ensure(self, spec: Spec) -> Path:
        """The venv's directory: kept on the container disk > restored from the volume > installed
        (then archived). InstallFailed if it cannot be had (no lock included); SetupFailed if the disk
        is too small."""
        env_dir, marker = self.env_dir(spec), self._marker(spec)
        self.lock(spec)
        try:
            if marker.read_text().strip() == self.key(spec):
                self.out.say(f"{spec.name}: {spec.requirement} is ready in {env_dir} (container disk kept since "
                             "the last start)")
                return env_dir
        except OSError:
            pass
        marker.unlink(missing_ok=True)
        self.s.venv_root.mkdir(parents=True, exist_ok=True)
        dest = self.dest(spec)
        dest.parent.mkdir(parents=True, exist_ok=True)
        first = self._restore(spec, quiet=False)
        if first == "restored":
            return env_dir
        with volume_lock(dest.with_name(dest.name + ".lock"), wait_s=self.s.LOCK_WAIT_S, say=self.out.say,
                         nap=self.children.nap):  # two pods sharing the volume build it once
            # Another pod may have written it while we waited; a corrupt one is not read twice.
            if first == "missing" and self._restore(spec, quiet=True) == "restored":
                return env_dir
            self._install(spec)
            self._pack(spec)
        return env_dir

    def _say(self, spec: Spec):
        return lambda text: self.out.say(f"{spec.name}: {text}")

    def _restore(self, spec: Spec, *, quiet: bool) -> str:
        """"restored", "missing" or "corrupt" (rebuild); SetupFailed when the disk is too small."""
        home, dest = self.home(spec), self.dest(spec)
        if not self.arc.exists(dest):
            if not quiet:
                self.out.say(f"{spec.name}: no archive of {spec.requirement} on the volume ({dest}): installing")
            return "missing"
        for attempt in (1, 2):
            self.children.check()
            shutil.rmtree(home, ignore_errors=True)
            t0 = time.monotonic()
            try:
                size = self.arc.unpack(dest, home, log=self._say(spec))
            except archive.DiskFull as e:
                shutil.rmtree(home, ignore_errors=True)
                raise SetupFailed(1, f"{spec.name}: {e}: the container disk is too small for the venvs (~20 GB); raise "
                                     "containerDiskGb (default 50) in the stack config and run `pulumi up`") from None
            except archive.ArchiveMissing:
                return "missing"
            except archive.ArchiveCorrupt as e:
                self.out.error(f"{spec.name}: {e}: rebuilding it")
                shutil.rmtree(home, ignore_errors=True)
                return "corrupt"
            except archive.ArchiveError as e:
                shutil.rmtree(home, ignore_errors=True)
                if attempt == 1:
                    self.out.say(f"{spec.name}: restoring {dest} failed ({e}); trying once more")
                    continue
                self.out.error(f"{spec.name}: restoring {dest} failed again ({e}): installing instead")
                return "corrupt"
            if not self._runs(spec):
                self.out.error(f"{spec.name}: the venv restored from {dest} does not run (its Python is missing): "
                               "rebuilding it")
                shutil.rmtree(home, ignore_errors=True)
                return "corrupt"
            self._marker(spec).write_text(self.key(spec) + "\n")
            self.out.say(f"{spec.name}: restored {self.env_dir(spec)} from {dest} ({size} bytes) in "
                         f"{time.monotonic() - t0:.0f}s; nothing installed")
            return "restored"
        return "corrupt"

    def _runs(self, spec: Spec) -> bool:
        try:
            return subprocess.run([str(self.env_dir(spec) / "bin" / "python"), "-c", ""], env=childenv.base(self.s),
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=120).returncode == 0
        except (OSError, subprocess.SubprocessError):
            return False

    def uv(self) -> list[str]:
        """uv's command: the one on PATH, else bootstrapped with pip (only when something is installed)."""
        with self._uv_lock:
            if self._uv is None:
                path = self.s.env.get("PATH")
                if shutil.which("uv", path=path):
                    self._uv = ["uv"]
                else:
                    self.out.say("uv is not on PATH: installing it with python3 -m pip install uv")
                    pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"]
                    env = childenv.installer(self.s)
                    if (self.children.run([*pip, "uv"], env=env, out=self.out, prefix="install-uv", log=self.log)
                            and self.children.run([*pip, "--break-system-packages", "uv"], env=env, out=self.out,
                                                  prefix="install-uv", log=self.log)):
                        raise InstallFailed(1, "cannot install uv with pip; see the install log")
                    self._uv = ["uv"] if shutil.which("uv", path=path) else [sys.executable, "-m", "uv"]
            return self._uv

    def _install(self, spec: Spec) -> None:
        home, env_dir = self.home(spec), self.env_dir(spec)
        uv, attempts = self.uv(), self.s.INSTALL_ATTEMPTS
        for attempt in range(1, attempts + 1):
            if home.exists():
                self.out.say(f"{spec.name}: removing the unfinished install in {home}")
                shutil.rmtree(home, ignore_errors=True)
            (home / "python").mkdir(parents=True)
            lock = home / "lock.txt"  # kept with the venv (and its archive): what it was installed from
            lock.write_bytes(self.lock(spec)[0])
            self.out.say(f"{spec.name}: installing {spec.requirement} from its lock into {env_dir} "
                         f"(attempt {attempt}/{attempts})")
            env = childenv.installer(self.s, home / "python")
            prefix = f"install-{spec.name}"
            if (self.children.run([*uv, "venv", "--python", spec.python, str(env_dir)], env=env, out=self.out,
                                  prefix=prefix, log=self.log) == 0
                    and self.children.run([*uv, "pip", "install", "--require-hashes", "--compile-bytecode",
                                           "--python", str(env_dir / "bin" / "python"), "-r", str(lock)],
                                          env=env, out=self.out, prefix=prefix, log=self.log) == 0):
                self._marker(spec).write_text(self.key(spec) + "\n")
                self.out.say(f"{spec.name}: installed")
                return
            self.children.check()
            if attempt < attempts:
                self.children.nap(self.s.RESTART_BACKOFF_S * attempt)
        raise InstallFailed(1, f"{spec.requirement} install failed; see {self.log.path}")

    def _pack(self, spec: Spec) -> None:
        """A failure here costs the next start an install, not this one its services."""
        dest, t0 = self.dest(spec), time.monotonic()
        self.out.say(f"{spec.name}: writing the archive {dest} for the next starts")
        try:
            self.arc.pack(self.home(spec), dest, log=self._say(spec))
        except archive.ArchiveError as e:
            self.out.error(f"{spec.name}: could not write the archive ({e}); the next start installs it again")
            return
        self.out.say(f"{spec.name}: archived in {time.monotonic() - t0:.0f}s")
