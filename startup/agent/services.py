"""What runs around the two services: vLLM's compile-cache guard and gate wiring, Open WebUI's admin
step, and the health watcher that prints phase=ready."""

from __future__ import annotations

import ast
import hashlib
import hmac
import os
import pkgutil
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .output import Out
from .proc import Supervisor

COMPILE_INDEX = "vllm_compile_cache.py"


def package_file(name: str) -> bytes | None:
    """A file of this package, from the zipapp or from the directory when run unzipped."""
    try:
        return pkgutil.get_data(__package__, name)
    except OSError:
        return None


# ------------------------------------------------------------------ vLLM
def guard_compile_cache(root: Path, say: Callable[[str], None]) -> int:
    """vLLM 0.11.2 writes its compile-cache index non-atomically and reads it back with
    ast.literal_eval and no error handling (compilation/backends.py): one kill mid-write and it
    crash-loops. Each index under `root` that does not parse is moved aside; the count moved. Only
    where vLLM puts it (torch_compile_cache/<hash>/rank_<i>_<j>/<prefix>/, compilation/backends.py):
    the cache is on the volume, where walking Triton's thousands of files would cost seconds."""
    moved = 0
    for path in sorted(root.glob(f"torch_compile_cache/*/rank_*/*/{COMPILE_INDEX}")):
        try:
            ast.literal_eval(path.read_text())
            continue
        except (OSError, ValueError, SyntaxError, MemoryError, RecursionError, UnicodeDecodeError):
            pass
        aside = path.with_name(f"{path.name}.bad-{int(time.time())}")
        try:
            path.replace(aside)
            moved += 1
            say(f"vllm: the compile-cache index {path} is damaged: moved aside to {aside.name} "
                "(that graph compiles again)")
        except OSError as e:
            say(f"vllm: the compile-cache index {path} is damaged and cannot be moved ({e})")
    return moved


class CompileCacheFallback:
    """After two quick vLLM crashes in a row, the next start runs once with VLLM_DISABLE_COMPILE_CACHE=1
    (a damaged cache entry the index check cannot see)."""

    def __init__(self, quick_s: float, say: Callable[[str], None]):
        self.quick_s, self.say = quick_s, say
        self.quick = 0
        self.used = False
        self._next: dict[str, str] = {}

    def after(self, rc: int, ran_s: float) -> None:
        self.quick = self.quick + 1 if ran_s < self.quick_s else 0
        if self.quick >= 2 and not self.used:
            self.used = True
            self._next = {"VLLM_DISABLE_COMPILE_CACHE": "1"}
            self.say("vllm: two quick crashes in a row: the next start runs once without the compile cache "
                     "(VLLM_DISABLE_COMPILE_CACHE=1)")

    def before(self) -> dict[str, str]:
        extra, self._next = self._next, {}
        return extra


def gate_wiring(run_dir: Path) -> tuple[dict[str, str], list[str]]:
    """If this package carries gate.py (an ASGI middleware for vLLM), write it where vLLM's Python
    finds it and load it with `--middleware gate.Gate`; without gate.py: nothing (inert)."""
    data = package_file("gate.py")
    if data is None:
        return {}, []
    mods = run_dir / "pymods"
    mods.mkdir(parents=True, exist_ok=True)
    (mods / "gate.py").write_bytes(data)
    return {"PYTHONPATH": str(mods)}, ["--middleware", "gate.Gate"]


# ------------------------------------------------------------------ Open WebUI
def fingerprint(email: str, password: str, salt: bytes) -> str:
    digest = hashlib.pbkdf2_hmac("sha256", f"{email.strip().lower()}\0{password}".encode(), salt, 100_000)
    return f"{salt.hex()}:{digest.hex()}"


def admin_current(path: Path, email: str, password: str) -> bool:
    """The admin step ran with this email and password (a salted hash in `path`, mode 600)."""
    try:
        salt_hex, _ = path.read_text().strip().split(":")
        return hmac.compare_digest(fingerprint(email, password, bytes.fromhex(salt_hex)), path.read_text().strip())
    except (OSError, ValueError):
        return False


def write_fingerprint(path: Path, email: str, password: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(fingerprint(email, password, os.urandom(16)) + "\n")
    os.replace(tmp, path)


def embedding_ready(hub_cache: Path, model: str = "sentence-transformers/all-MiniLM-L6-v2") -> bool:
    """Open WebUI's default embedding model has a snapshot in the Hub cache (it downloads it once)."""
    snaps = hub_cache / ("models--" + model.replace("/", "--")) / "snapshots"
    return snaps.is_dir() and any(snaps.iterdir())


# ------------------------------------------------------------------ health
def http_ok(url: str, timeout: float = 3) -> bool:
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=timeout) as r:
            return r.status == 200
    except Exception:  # noqa: BLE001  not up (yet), whatever the reason
        return False


class Health:
    """Prints phase=ready each time vLLM's /health turns 200 (again after a restart), and notes Open
    WebUI coming up. `on_ready` runs once, at the first ready (the idle watcher starts then)."""

    def __init__(self, out: Out, *, vllm_port: int, webui_port: int, interval: float, serving: str,
                 webui: Callable[[], Supervisor | None], on_ready: Callable[[], None]):
        self.out, self.vllm_port, self.webui_port, self.interval = out, vllm_port, webui_port, interval
        self.serving, self.webui, self.on_ready = serving, webui, on_ready
        self.stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True, name="health").start()

    def _run(self) -> None:
        vllm_up = webui_up = ever = False
        while not self.stop.is_set():
            if http_ok(f"http://127.0.0.1:{self.vllm_port}/health"):
                if not vllm_up:
                    self.out.phase("ready")
                    self.out.say(f"vLLM is serving {self.serving} on port {self.vllm_port}")
                    vllm_up = True
                    if not ever:
                        ever = True
                        self.on_ready()
            elif vllm_up:
                self.out.say("vLLM /health stopped answering 200")
                vllm_up = False
            if not webui_up and self.webui() is not None and http_ok(f"http://127.0.0.1:{self.webui_port}/health"):
                self.out.say(f"Open WebUI is up on port {self.webui_port}")
                webui_up = True
            self.stop.wait(self.interval)
