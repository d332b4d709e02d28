"""The REAL pod agent (startup/agent/, run as the very zipapp the pod gets in STARTUP_B64) in a
sandbox: a temp WORKSPACE (the network volume), a temp "container disk" (the venvs, uv's cache, HOME
and RUN_DIR) and stub programs on PATH (devkit/stubs/stub.py: uv, nvidia-smi, tar, hf, vllm,
open-webui). Used by tests/startup (the `h` fixture), tests/startup_real (devkit.startup_real builds
on it), tests/engine/test_wake.py and bench/startup_bench.py.

A failed wait raises HarnessError (an AssertionError, so pytest reports it as a test failure).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from runpod_deploy import config
from runpod_deploy.pod_env import decode, script_b64, startup_env

REPO = Path(__file__).resolve().parents[1]
STUB_PY = Path(__file__).resolve().parent / "stubs" / "stub.py"


class HarnessError(AssertionError):
    """What the sandbox waited for did not happen (the message has the agent's output)."""

# The config users run: the pods' env is rendered from it exactly as the stack does.
DEV = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())["config"]
DEV_MODELS = DEV["runpod-deploy:models"]

# Distinctive values: the tests grep every output for them.
SECRETS = {
    "VLLM_API_KEY": "vk-SECRET-1f3a$9'q\"x",
    "HF_TOKEN": "hf_SECRETtoken8c2d",
    "WEBUI_ADMIN_EMAIL": "secret-admin-7e1b@example.invalid",
    "WEBUI_ADMIN_PASSWORD": "Pw-SECRET-44b0!",
    "WEBUI_SECRET_KEY": "wsk-SECRET-a9d5",
}

OLMOCR = "olmocr"  # model names in Pulumi.dev.yaml
QWEN = "qwen3vl"


def stack_config(models: dict | None = None, **keys) -> config.StackConfig:
    """Pulumi.dev.yaml (with `models` / other keys replaced), loaded and validated like the program does."""
    values = {**DEV, **({"runpod-deploy:models": models} if models is not None else {}),
              **{f"runpod-deploy:{k}": v for k, v in keys.items()}}

    def get(key):
        v = values.get(key)
        return json.dumps(v) if isinstance(v, (dict, list, bool, int, float)) else v

    return config.load(get, "runpod-deploy", "dev", env={"RUNPOD_API_KEY": "test-key"})


def pod_env(model: str = OLMOCR, settings: dict | None = None, workspace: str = "/workspace") -> dict[str, str]:
    """The plain env the stack gives model `model`'s pod; `settings` changes its model settings."""
    models = copy.deepcopy(DEV_MODELS)
    models[model].update(settings or {})
    cfg = stack_config(models)
    return startup_env(model, cfg.models[model], cfg, workspace=workspace)


# The idle-stop watcher's line once RunPod accepted its stop request.
STOPPED = r"^runpod-deploy: idle stop: RunPod accepted the stop \("


class Metrics:
    """vLLM 0.11's /metrics text (the families the idle watcher reads, plus a _created line it must ignore),
    written atomically to the file the stub vLLM serves."""

    def __init__(self, path):
        self.path = path
        self.set(finished=0)

    def set(self, finished: int, running: int = 0, waiting: int = 0) -> None:
        labels = 'engine="0",model_name="olmocr"'
        text = "\n".join([
            "# HELP vllm:num_requests_running Number of requests in model execution batches.",
            "# TYPE vllm:num_requests_running gauge",
            f"vllm:num_requests_running{{{labels}}} {running}.0",
            "# TYPE vllm:num_requests_waiting gauge",
            f"vllm:num_requests_waiting{{{labels}}} {waiting}.0",
            "# HELP vllm:request_success_total Count of successfully processed requests.",
            "# TYPE vllm:request_success_total counter",
            f'vllm:request_success_total{{{labels},finished_reason="stop"}} {finished}.0',
            f'vllm:request_success_total{{{labels},finished_reason="length"}} 0.0',
            f'vllm:request_success_created{{{labels},finished_reason="stop"}} 1.7645e+09',
            "",
        ])
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.path)


PHASES = ["prepare", "install-vllm", "install-webui", "download-model", "start-vllm", "start-webui", "ready"]


def sha(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of an already-dead stub counts as dead
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return True


class Run:
    """One run of the agent: its process, and its stdout lines collected by a thread."""

    def __init__(self, proc: subprocess.Popen, vllm_port: int, webui_port: int):
        self.proc = proc
        self.vllm_port = vllm_port
        self.webui_port = webui_port
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 15, count: int = 1) -> re.Match:
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            matches = [m for line in list(self.lines) if (m := rx.search(line))]
            if len(matches) >= count:
                return matches[count - 1]
            if self.proc.poll() is not None and not self._thread.is_alive():
                break
            time.sleep(0.05)
        raise HarnessError(f"no {count}x /{pattern}/ within {timeout}s (rc={self.proc.poll()}); output:\n{self.output}")

    def wait_exit(self, timeout: float = 15) -> int:
        rc = self.proc.wait(timeout)
        self._thread.join(5)
        return rc

    def stop(self, timeout: float = 20) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def phases(self) -> list[str]:
        return [m.group(1) for line in self.lines if (m := re.fullmatch(r"runpod-deploy phase=(\S+)", line))]


# Runs "$@" (the agent) in its own mount namespace where the path $1 shows the directory $2.
_BIND_SH = 'mkdir -p "$1" "$2" && mount --bind "$2" "$1" && shift 2 && exec "$@"'


def shared_venv_root_unsupported() -> str | None:
    """Why `Harness(venv_root=...)` cannot run here (None if it can): it needs root, util-linux's
    `unshare` and the right to make a mount namespace and bind-mount in it (probed once)."""
    global _UNSUPPORTED
    if _UNSUPPORTED is None:
        if os.geteuid() != 0:
            _UNSUPPORTED = "not root: a per-agent bind mount of VENV_ROOT needs root"
        elif not shutil.which("unshare") or not shutil.which("mount"):
            _UNSUPPORTED = "no `unshare`/`mount` (util-linux) on PATH"
        else:
            import tempfile
            with tempfile.TemporaryDirectory() as d:
                (Path(d) / "own").mkdir()
                (Path(d) / "own" / "probe").touch()
                probe = subprocess.run(
                    ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _BIND_SH, "sh",
                     f"{d}/shared", f"{d}/own", "test", "-e", f"{d}/shared/probe"],
                    capture_output=True, text=True, timeout=30)
                _UNSUPPORTED = "" if probe.returncode == 0 else (
                    f"cannot bind-mount in a private mount namespace here (rc={probe.returncode}: "
                    f"{probe.stderr.strip()[:200]})")
    return _UNSUPPORTED or None


_UNSUPPORTED: str | None = None


class Harness:
    """`ws` is the network volume (kept across starts); `disk` the container disk (VENV_ROOT, HOME,
    RUN_DIR), which a pod stop wipes: `fresh_container_disk()`. `bin` stands for the image.

    `venv_root` (opt-in): the VENV_ROOT path the agent is given, as on real pods where every pod's
    venvs are at the same path (so pods on one volume compute the same archive key). Each agent runs
    in its own mount namespace where that path is a bind mount of this sandbox's own `disk/venvs`
    (`self.venv_root`, what the test reads), so two sandboxes can share the path, each with its own
    directory. Needs root and unshare: see `shared_venv_root_unsupported()`."""

    def __init__(self, tmp: Path, *, venv_root: Path | str | None = None):
        self.tmp = tmp
        self.ws = tmp / "ws"
        self.bin = tmp / "bin"
        self.disk = tmp / "disk"
        self.venv_root = self.disk / "venvs"
        self.agent_venv_root = Path(venv_root) if venv_root is not None else self.venv_root
        self.run_dir = self.disk / "run"
        self.stub_log = tmp / "stub-calls.jsonl"
        self.runs: list[Run] = []
        self.bin.mkdir()
        self.ws.mkdir()
        self.disk.mkdir()
        for tool in ("uv", "nvidia-smi", "tar"):
            p = self.bin / tool
            p.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STUB_PY}" {tool} "$@"\n')
            p.chmod(0o755)
        (self.bin / "python3").symlink_to(sys.executable)

    def env(self, model=OLMOCR, *, without=(), settings: dict | None = None, **overrides) -> dict[str, str]:
        env = pod_env(model, settings, workspace=str(self.ws))
        env.update(SECRETS)
        env.update(
            PATH=f"{self.bin}:/usr/local/bin:/usr/bin:/bin",
            HOME=str(self.disk / "home"),
            LANG="C.UTF-8",
            RUN_DIR=str(self.run_dir),
            VENV_ROOT=str(self.agent_venv_root),
            STUB_LOG=str(self.stub_log),
            RESTART_BACKOFF_S="1",
            HEALTH_INTERVAL_S="0.2",
            STOP_TIMEOUT_S="5",
            INSTALL_ATTEMPTS="1",
            # What the runpod/pytorch image sets (runpod/containers official-templates/base/Dockerfile):
            # no child may get these values (uv's cache and HF_HOME on the volume, hf_transfer on).
            HF_HUB_ENABLE_HF_TRANSFER="1",
            HF_HOME="/workspace/.cache/huggingface/",
            UV_CACHE_DIR="/workspace/.cache/uv/",
            PIP_CACHE_DIR="/workspace/.cache/pip/",
        )
        env.update({k: str(v) for k, v in overrides.items()})
        for key in without:
            env.pop(key, None)
        # The stubs' own knobs reach them through the agent's allowlist (its test knob AGENT_PASS_ENV).
        env["AGENT_PASS_ENV"] = ",".join(sorted(k for k in env if k.startswith("STUB_")))
        return env

    def start(self, model=OLMOCR, *, without=(), settings: dict | None = None, **overrides) -> Run:
        """Start the real agent for `model` of Pulumi.dev.yaml (`settings`: changed model settings;
        `overrides`: env on top, e.g. STUB_GPU; `without`: env removed), from the payload the pod
        gets: STARTUP_B64 decoded to a file and run with python3, as the bootstrap does."""
        vllm_port, webui_port = free_port(), free_port()
        env = self.env(model, without=without, settings=settings, VLLM_PORT=vllm_port, WEBUI_PORT=webui_port,
                       **overrides)
        payload = self.tmp / "runpod-deploy-agent.pyz"
        tmp = payload.with_suffix(".tmp")
        tmp.write_bytes(decode(env.get("STARTUP_B64") or script_b64()))
        os.replace(tmp, payload)
        argv = [sys.executable, str(payload)]
        if self.agent_venv_root != self.venv_root:
            if reason := shared_venv_root_unsupported():
                raise HarnessError(f"Harness(venv_root=...) is not supported here: {reason}")
            argv = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _BIND_SH, "sh",
                    str(self.agent_venv_root), str(self.venv_root), *argv]
        proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        run = Run(proc, vllm_port, webui_port)
        self.runs.append(run)
        return run

    def fresh_container_disk(self) -> None:
        """What a pod stop and start does to the container: an empty disk at the same paths (the
        venvs, uv's home and RUN_DIR are gone); the volume (`ws`) and the image (`bin`) stay."""
        assert all(run.proc.poll() is not None for run in self.runs), "stop the agent first"
        shutil.rmtree(self.disk)
        self.disk.mkdir()

    def venv(self, name: str) -> Path:
        """The venv `name` (vllm / openwebui) on the container disk (startup/agent/venvs.py's layout)."""
        (path,) = [p / "env" for p in self.venv_root.glob(f"{name}-*") if p.is_dir()]
        return path

    def records(self, *tools: str) -> list[dict]:
        if not self.stub_log.exists():
            return []
        text = self.stub_log.read_text()
        # A stub may be writing its line right now: only complete lines count.
        lines = text.split("\n")[:-1]
        recs = [json.loads(line) for line in lines if line.strip()]
        return [r for r in recs if not tools or r["tool"] in tools]

    def wait_records(self, tool: str, count: int, timeout: float = 15) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            recs = self.records(tool)
            if len(recs) >= count:
                return recs
            time.sleep(0.05)
        raise HarnessError(f"expected {count} {tool} call(s), got {self.records(tool)}; outputs:\n"
                    + "\n----\n".join(r.output for r in self.runs))

    def cleanup(self) -> None:
        for run in self.runs:
            if run.proc.poll() is None:
                run.proc.send_signal(signal.SIGTERM)
                try:
                    run.proc.wait(10)
                except subprocess.TimeoutExpired:
                    run.proc.kill()
                    run.proc.wait(5)
        # Stub servers this test started (checked by cmdline, so a reused pid is left alone).
        for rec in self.records("vllm", "open-webui"):
            try:
                if str(STUB_PY) in Path(f"/proc/{rec['pid']}/cmdline").read_text():
                    os.kill(rec["pid"], signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass
