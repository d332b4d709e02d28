"""Stand-ins for the programs the pod agent runs: ``stub.py <tool> <argv...>``.

The harness (devkit/startup.py) puts tiny ``#!/bin/sh exec python stub.py <tool> "$@"`` wrappers on
PATH (uv, nvidia-smi, tar) and the ``uv`` stub writes the same kind of wrappers into the venvs it
"creates" (vllm, open-webui, hf: the program the lock's first line names), so the agent runs its
real code paths. ``uv pip install`` takes a lock (``--require-hashes -r <file>``) and refuses one
with an unhashed pin, as uv does. A venv it creates is a real (empty) venv around this Python, and
installing open-webui puts the fake ``open_webui`` package (devkit/stubs/open_webui/, what the
admin step imports) into it. ``tar`` records its call, then runs the real tar.

Each call appends one JSON line to $STUB_LOG: tool, argv, pid, cwd and the child's WHOLE env (a
test reads exactly what each child got). Secret values are recorded only as sha256 hashes, so the
record file is never a leak itself.

Behaviour knobs (env): STUB_GPU (nvidia-smi output line), STUB_UV_FAIL, STUB_HF_FAIL,
STUB_VLLM_FAIL (exit at once with status 3), STUB_UV_SLEEP / STUB_HF_SLEEP (seconds each
`uv pip install` but the downloader's / each download takes), STUB_WEBUI_ADMIN_FAIL (the fake
open_webui fails the admin step), STUB_UV_MANAGED_PYTHON (`uv venv` "downloads" its Python into
$UV_PYTHON_INSTALL_DIR, as the real uv does when the machine has no such Python), STUB_HOLD (a
file: uv and the downloader wait while it exists, an install or download in progress), STUB_METRICS
(a file whose text the stub vLLM serves as /metrics: the test drives the counters). Loaded with
``--middleware gate.Gate``, the stub vLLM plays the gate's key check on /metrics too.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SECRET_KEYS = ("VLLM_API_KEY", "HF_TOKEN", "OPENAI_API_KEY", "WEBUI_ADMIN_EMAIL", "WEBUI_ADMIN_PASSWORD",
               "WEBUI_SECRET_KEY", "RUNPOD_API_KEY")
STUB_PY = Path(__file__).resolve()
FAKE_OPEN_WEBUI = STUB_PY.parent / "open_webui"


def sha(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def record(tool: str, argv: list[str], **extra) -> None:
    env = {k: sha(v) if k in SECRET_KEYS else v for k, v in os.environ.items()}
    if "STARTUP_B64" in env:
        env["STARTUP_B64"] = "<present>"
    rec = {"tool": tool, "argv": argv, "pid": os.getpid(), "cwd": os.getcwd(), "env": env, "t": time.time(), **extra}
    with open(os.environ["STUB_LOG"], "a") as f:
        f.write(json.dumps(rec) + "\n")


def write_wrapper(path: Path, tool: str) -> None:
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STUB_PY}" {tool} "$@"\n')
    path.chmod(0o755)


def opt(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv and argv.index(name) + 1 < len(argv) else None


def hold() -> None:
    """An install or download that takes as long as the test wants: wait while $STUB_HOLD exists."""
    while os.environ.get("STUB_HOLD") and Path(os.environ["STUB_HOLD"]).exists():
        time.sleep(0.05)


def uv(argv: list[str]) -> int:
    record("uv", argv)
    hold()
    if os.environ.get("STUB_UV_FAIL"):
        print("error: stub uv told to fail")
        return 2
    if argv[:1] == ["venv"]:
        venv = Path(argv[-1])
        (venv / "bin").mkdir(parents=True, exist_ok=True)
        interpreter = Path(sys.executable)
        if os.environ.get("STUB_UV_MANAGED_PYTHON"):
            interpreter = Path(os.environ.get("UV_PYTHON_INSTALL_DIR") or Path.home() / ".local/share/uv/python")
            interpreter = interpreter / f"cpython-{opt(argv, '--python')}-stub" / "bin" / "python"
            interpreter.parent.mkdir(parents=True, exist_ok=True)
            if not interpreter.exists():
                interpreter.symlink_to(sys.executable)
            print(f"Downloaded Python to {interpreter}")
        py = venv / "bin" / "python"
        if not py.exists():
            py.symlink_to(interpreter)
        # A real venv around this Python (so `bin/python` sees the venv's own site-packages only).
        (venv / "pyvenv.cfg").write_text(f"home = {Path(sys._base_executable).parent}\n"
                                         "include-system-site-packages = false\n")
        print(f"Creating virtual environment at: {venv}")
        return 0
    if argv[:2] == ["pip", "install"]:
        venv = Path(opt(argv, "--python")).parent.parent
        lock = Path(opt(argv, "-r")).read_text()
        if not lock.startswith("# huggingface_hub"):  # the downloader's small venv installs at once
            time.sleep(float(os.environ.get("STUB_UV_SLEEP") or 0))
        pins = [line.split()[0] for line in lock.splitlines() if "==" in line and not line.startswith(("#", " "))]
        if "--require-hashes" not in argv or lock.count("--hash=sha256:") < len(pins):
            print("error: stub uv: every pin of the lock needs a hash, and --require-hashes")
            return 2
        top = lock.split()[1]  # the lock's first line: "# <requirement> for Python ..."
        for prefix, program in (("vllm==", "vllm"), ("open-webui==", "open-webui"), ("huggingface_hub", "hf")):
            if top.startswith(prefix):
                write_wrapper(venv / "bin" / program, program)
        if top.startswith("open-webui=="):
            site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
            site.mkdir(parents=True, exist_ok=True)
            (site / "open_webui").symlink_to(FAKE_OPEN_WEBUI)
            meta = site / f"open_webui-{top.split('==')[1]}.dist-info"  # importlib.metadata.version() reads it
            meta.mkdir(exist_ok=True)
            (meta / "METADATA").write_text(f"Metadata-Version: 2.1\nName: open-webui\nVersion: {top.split('==')[1]}\n")
        print(f"Installed {len(pins)} package(s)")
        return 0
    print(f"stub uv: unsupported {argv}")
    return 2


def nvidia_smi(argv: list[str]) -> int:
    record("nvidia-smi", argv)
    print(os.environ.get("STUB_GPU", "NVIDIA L40S, 46068 MiB"))
    return 0


def hf(tool: str, argv: list[str]) -> int:
    record(tool, argv)
    hold()
    time.sleep(float(os.environ.get("STUB_HF_SLEEP") or 0))
    if os.environ.get("STUB_HF_FAIL"):
        print("stub hf: network error")
        return 1
    repo = argv[1]
    snap = Path(os.environ["HF_HUB_CACHE"]) / ("models--" + repo.replace("/", "--")) / "snapshots" / "0123abcd"
    snap.mkdir(parents=True, exist_ok=True)
    (snap / "config.json").write_text("{}")
    (snap / "model.safetensors").write_text("weights")
    print(snap)
    return 0


def serve_http(port: int, routes) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            status, body = routes(self.path, self.headers.get("Authorization", ""))
            text = isinstance(body, str)  # Prometheus text (/metrics), else JSON
            data = body.encode() if text else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; version=0.0.4" if text else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def vllm(argv: list[str]) -> int:
    record("vllm", argv)
    # Echo argv like vLLM logs its args: a secret on the command line would then reach the logs.
    print("INFO stub vllm args: " + " ".join(argv), flush=True)
    print("WARNING stub vllm warming up", file=sys.stderr, flush=True)
    if os.environ.get("STUB_VLLM_FAIL"):
        print("ERROR stub vllm: CUDA out of memory", flush=True)
        return 3
    names = []
    if "--served-model-name" in argv:
        for a in argv[argv.index("--served-model-name") + 1:]:
            if a.startswith("--"):
                break
            names.append(a)
    key = os.environ.get("VLLM_API_KEY", "")

    def routes(path, auth):
        if path == "/health":
            return 200, {}
        if path == "/metrics":  # vLLM's own key check covers /v1 only; the gate's covers /metrics
            if "--middleware" in argv and auth != f"Bearer {key}":
                return 401, {"error": "Unauthorized"}
            metrics = os.environ.get("STUB_METRICS")
            return 200, Path(metrics).read_text() if metrics and Path(metrics).exists() else ""
        if path == "/v1/models":
            if key and auth == f"Bearer {key}":
                return 200, {"data": [{"id": n} for n in names]}
            return 401, {"error": "Unauthorized"}
        return 404, {}

    serve_http(int(opt(argv, "--port")), routes)
    return 0


def tar(argv: list[str]) -> int:
    record("tar", argv)
    for d in os.environ.get("PATH", "").split(os.pathsep):
        real = Path(d or ".") / "tar"
        if real.is_file() and os.access(real, os.X_OK) and b"stub.py" not in real.read_bytes()[:4096]:
            os.execv(real, [str(real), *argv])
    print("stub tar: no real tar on PATH", file=sys.stderr)
    return 127


def open_webui(argv: list[str]) -> int:
    record("open-webui", argv)
    Path("webui.db").touch()  # cwd is DATA_DIR; the real one creates its DB at start
    print("INFO stub open-webui starting", flush=True)
    serve_http(int(opt(argv, "--port")), lambda path, auth: (200, {"status": True}) if path == "/health" else (404, {}))
    return 0


def main() -> int:
    tool, argv = sys.argv[1], sys.argv[2:]
    if tool == "uv":
        return uv(argv)
    if tool == "nvidia-smi":
        return nvidia_smi(argv)
    if tool in ("hf", "huggingface-cli"):
        return hf(tool, argv)
    if tool == "vllm":
        return vllm(argv)
    if tool == "open-webui":
        return open_webui(argv)
    if tool == "tar":
        return tar(argv)
    print(f"unknown stub tool {tool}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
