"""What runs around the two services: the children's scripts from the file bundle, vLLM's compile-cache
guard and gate wiring, and the health watcher that prints phase=ready."""

from __future__ import annotations

import ast
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from . import bundle
from .output import Out
from .proc import Supervisor
from .settings import SetupFailed

COMPILE_INDEX = "vllm_compile_cache.py"


def child_script(env, name: str, dest: Path) -> Path:
    """children/<name> of the pod's file bundle (bundle.py), written to `dest`; SetupFailed if absent."""
    try:
        data = bundle.read(f"children/{name}", environ=env)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    except (bundle.FileMissing, OSError) as e:
        raise SetupFailed(1, f"cannot provide {name}: {e}") from None
    return dest


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


def gate_wiring(env, run_dir: Path) -> tuple[dict[str, str], list[str]]:
    """gate.py (startup/children/: an ASGI middleware, in vLLM's process) where vLLM's Python finds it
    first, loaded with `--middleware gate.Gate`. It reads VLLM_API_KEY and GATE_* (childenv.vllm)."""
    mods = child_script(env, "gate.py", run_dir / "pymods" / "gate.py").parent
    return {"PYTHONPATH": str(mods)}, ["--middleware", "gate.Gate"]


# ------------------------------------------------------------------ Open WebUI
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
