"""The model's weights: an old complete `--local-dir` copy, else the Hub cache on the volume,
downloaded once (a completion marker; vLLM then runs offline) by huggingface_hub's `hf download` from
its own small venv (installed from lock hf-hub, venvs.py), alongside the other installs."""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

from . import childenv
from .locks import volume_lock
from .output import LogWriter, Out
from .proc import Children
from .settings import SetupFailed, Settings


def local_dir_complete(d: Path) -> bool:
    """config.json, every safetensors shard of the index (or one *.safetensors), no *.incomplete file
    anywhere (.cache/huggingface/download included); a broken symlink counts as missing."""
    if not (d / "config.json").is_file():
        return False
    for _root, _dirs, files in os.walk(d):
        if any(f.endswith(".incomplete") for f in files):
            return False
    index = d / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError, AttributeError, TypeError):
            return False
        return bool(shards) and all((d / s).is_file() for s in shards)
    return any(p.name.endswith(".safetensors") and p.is_file() for p in d.iterdir())


def repo_dir(hub_cache: Path, repo: str) -> Path:
    return hub_cache / ("models--" + repo.replace("/", "--"))


def marker(hub_cache: Path, repo: str, revision: str) -> Path:
    name = re.sub(r"[^A-Za-z0-9@._-]", "_", f".runpod-deploy-complete@{revision or 'default'}")
    return repo_dir(hub_cache, repo) / name


def du(path: Path) -> str:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return f"{total / 1e9:.1f} GB"


class Download:
    """One download in a thread. A failure aborts the setup at once (Children.abort: the install that
    runs is stopped) rather than after minutes of installs."""

    def __init__(self, s: Settings, out: Out, children: Children, log: LogWriter, hf, repo: str, revision: str):
        # hf(): the `hf` program's path (its venv is made ready on the first call; InstallFailed if not)
        self.s, self.out, self.children, self.log, self.hf = s, out, children, log, hf
        self.repo, self.revision = repo, revision
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="download")

    def start(self) -> None:
        self.out.say(f"downloading {self.repo} alongside the installs")
        self._thread.start()

    def wait(self) -> None:
        while not self.done.wait(0.2):
            self.children.check()
        self.children.check()

    def _run(self) -> None:
        try:
            self._download()
        except SetupFailed as e:
            self.children.abort(e)
        except Exception as e:  # noqa: BLE001  any surprise ends the setup the same way, said so
            self.children.abort(SetupFailed(1, f"download of {self.repo} failed: {type(e).__name__}: {e}"))
        finally:
            self.done.set()

    def _download(self) -> None:
        hub, s = self.s.hf_hub_cache, self.s
        mark, d = marker(hub, self.repo, self.revision), repo_dir(hub, self.repo)
        d.mkdir(parents=True, exist_ok=True)
        failed = SetupFailed(1, f"download of {self.repo} failed; see {self.log.path}")
        try:
            argv = [str(self.hf()), "download", self.repo]
        except SetupFailed as e:
            raise SetupFailed(1, f"download of {self.repo} failed: no downloader ({e.text})") from None
        with volume_lock(d / ".runpod-deploy.lock", wait_s=s.LOCK_WAIT_S, say=self.out.say, nap=self.children.nap):
            if mark.is_file():
                self.out.say(f"{self.repo} was downloaded meanwhile (another pod)")
                return
            if self.revision:
                argv += ["--revision", self.revision]
            stop = threading.Event()
            threading.Thread(target=self._progress, args=(d, stop), daemon=True).start()
            try:
                attempts = int(s.INSTALL_ATTEMPTS)
                for attempt in range(1, attempts + 1):
                    rev = f" at revision {self.revision}" if self.revision else ""
                    self.out.say(f"downloading {self.repo}{rev} into {hub} (attempt {attempt}/{attempts})")
                    rc = self.children.run(argv, env=childenv.downloader(s), out=self.out, prefix="download-model",
                                           log=self.log)
                    if rc == 0:
                        mark.write_text(f"{self.repo} {self.revision or 'default'}\n")
                        self.out.say(f"downloaded {self.repo}")
                        return
                    self.children.check()
                    if attempt < attempts:
                        self.children.nap(s.RESTART_BACKOFF_S * attempt)
                raise failed
            finally:
                stop.set()

    def _progress(self, d: Path, stop: threading.Event) -> None:
        while not stop.wait(self.s.DOWNLOAD_PROGRESS_S):
            self.out.say(f"download-model: {du(d)} in {d} so far")
