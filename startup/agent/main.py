"""The pod agent: one start of the pod, phase by phase (contract: startup/README.md).

prepare (env, instance lock, GPU profile, the download starts) -> install-vllm (its venv: kept,
restored or installed) -> install-webui (Open WebUI's venv, in a thread: alongside, never before
vLLM) -> download-model (wait for the weights) -> start-vllm -> start-webui -> ready (vLLM answers
/health). A failure that ends setup prints error= then phase=failed and exits non-zero; a crashing
service is restarted (proc.Supervisor); SIGTERM stops the children (grace, then SIGKILL)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from . import childenv, idle, lockfiles, protocol, services
from .locks import try_instance_lock
from .model import Download, local_dir_complete, marker
from .output import LogWriter, Out, rotate
from .proc import Children, Supervisor
from .profile import choose, read_gpu, vllm_argv
from .settings import Settings, SetupFailed, load
from .venvs import InstallFailed, Spec, Venvs


class Agent:
    def __init__(self, env: dict[str, str], out: Out):
        self.env, self.out = env, out
        self.children = Children()
        self.stop = threading.Event()
        self.services: list[Supervisor] = []
        self.webui: Supervisor | None = None
        self.started = False  # the services run: a signal stops them (else it aborts the setup)

    # -------------------------------------------------------------- signals
    def on_signal(self, signum, _frame) -> None:
        if self.started:
            self.stop.set()
        else:
            self.children.abort(SetupFailed(128 + signum, "stopped by a signal during setup", quiet=True))
            self.stop.set()

    # -------------------------------------------------------------- the start
    def run(self) -> int:
        out = self.out
        out.phase("prepare")
        try:
            s = load(self.env)
            return self._run(s)
        except SetupFailed as e:
            self.children.abort(e)
            out.error(e.text)
            if not e.quiet:
                out.phase("failed")  # the provider stops waiting at once
            self._stop_services()
            if out.log:
                out.log.flush()
            return e.code

    def _run(self, s: Settings) -> int:
        out = self.out
        s.env.pop(protocol.RUNPOD_POD_KEY_ENV, None)  # kept in s.pod_key, for the idle stopper only
        try:
            s.log_dir.mkdir(parents=True, exist_ok=True)
            s.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SetupFailed(1, f"cannot create {s.log_dir} or {s.run_dir}: {e}") from None
        rotate(s.log_dir / "startup.log", s.LOG_MAX_BYTES)
        out.attach(LogWriter(s.log_dir / "startup.log"))
        # RunPod may run the start command twice: a second copy in the same container leaves at once.
        self._lock_fd = try_instance_lock(s.run_dir / f"{s.label}.lock")
        if self._lock_fd is None:
            out.say(f"another agent for '{s.label}' already runs in this container; this copy exits")
            return 0
        out.say(f"pod '{s.label}': model {s.model_id} served as '{s.served_name}'; workspace {s.workspace}; "
                f"vLLM {s.vllm_version}; Open WebUI {s.webui_version}")
        idle_on = self._idle_wanted(s)
        webui_on = s.webui_enabled
        if not webui_on:
            out.error("WEBUI_ADMIN_EMAIL and WEBUI_ADMIN_PASSWORD are not both set: Open WebUI will not start "
                      "(first signup would become admin)")
        elif not s.env.get("WEBUI_SECRET_KEY"):
            out.say(f"WEBUI_SECRET_KEY is not set: Open WebUI keeps a generated key in "
                    f"{s.webui_data_dir}/.webui_secret_key")

        gpu = read_gpu()
        if not gpu:
            out.error('nvidia-smi reported no GPU; only a "default" profile can apply')
        c = choose(s.profiles_json, s.extra_args_json, gpu)
        rev = f"@{c.revision}" if c.revision else ""
        out.say(f"GPU '{c.gpu_name}' ({c.gpu_mib if c.gpu_mib is not None else '?'} MiB) -> profile '{c.key}' "
                f"({c.reason}): model {c.model_id}{rev}, max_model_len {c.max_model_len}, "
                f"gpu_memory_utilization {c.gpu_mem_util}")

        # gate.py (from the file bundle) now: without it vLLM does not start, so say so before any install
        gate_env, gate_args = services.gate_wiring(s.env, s.run_dir)
        install_log = LogWriter(s.log_dir / "install.log")
        venvs = Venvs(s, out, self.children, install_log)
        serve_ref, download = self._model(s, c, venvs, install_log)

        out.phase("install-vllm")
        try:
            vllm_env_dir = venvs.ensure(Spec("vllm", s.vllm_version, s.vllm_python))
        except InstallFailed as e:
            raise SetupFailed(1, f"vLLM {s.vllm_version}: {e.text}") from None

        out.phase("install-webui")
        webui_box: dict[str, Path | None] = {}
        webui_thread = threading.Thread(target=self._webui_venv, args=(s, venvs, webui_on, webui_box), daemon=True)
        webui_thread.start()

        out.phase("download-model")
        if download is not None:
            download.wait()
        self.children.check()

        cache_root = s.workspace / "vllm_cache" / c.slug  # per GPU: compiled kernels are arch-specific
        try:
            cache_root.mkdir(parents=True, exist_ok=True)
            s.webui_data_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(s.webui_data_dir, 0o700)
        except OSError as e:
            raise SetupFailed(1, f"cannot create {cache_root} or {s.webui_data_dir}: {e}") from None
        services.guard_compile_cache(cache_root, out.say)

        out.phase("start-vllm")
        argv = vllm_argv(c, serve_ref=serve_ref, served_name=s.served_name, port=int(s.VLLM_PORT)) + gate_args
        out.say("vllm " + " ".join(argv))
        fallback = services.CompileCacheFallback(s.QUICK_CRASH_S, out.say)
        vllm = Supervisor("vllm", [str(vllm_env_dir / "bin" / "vllm"), *argv],
                          {**childenv.vllm(s, cache_root), **gate_env}, out=out, log_path=s.log_dir / "vllm.log",
                          knobs=s, pid_file=s.run_dir / f"{s.label}.vllm.pid", before=fallback.before,
                          after=fallback.after)
        self.started = True
        self.services.append(vllm)
        vllm.start()
        health = services.Health(out, vllm_port=int(s.VLLM_PORT), webui_port=int(s.WEBUI_PORT),
                                 interval=s.HEALTH_INTERVAL_S, serving=f"'{s.served_name}' ({c.model_id})",
                                 webui=lambda: self.webui, on_ready=lambda: self._start_idle(s, idle_on))
        health.start()

        while webui_thread.is_alive() and not self.stop.wait(0.2):
            pass
        if not self.stop.is_set():
            out.phase("start-webui")
            if webui_box.get("env_dir") is not None:
                self._start_webui(s, webui_box["env_dir"])
            else:
                out.error("Open WebUI not started (disabled: see the lines above)")

        # Never exit on our own: a service that gave up stays down, but the pod stays inspectable.
        while not self.stop.wait(1):
            pass
        health.stop.set()
        self.children.abort(SetupFailed(143, "stopping", quiet=True))  # an Open WebUI install still running
        out.say("stopping: SIGTERM to the services")
        self._stop_services()
        out.say("stopped")
        out.log.flush()
        return 0

    # -------------------------------------------------------------- pieces
    def _idle_wanted(self, s: Settings) -> bool:
        if s.idle_minutes is None:
            return False
        if not (s.env.get(protocol.RUNPOD_POD_ID_ENV) and s.pod_key):
            self.out.error("idle stop is off: RUNPOD_POD_ID and RUNPOD_API_KEY, which RunPod sets in every pod, "
                           "are not both set")
            return False
        return True

    def _start_idle(self, s: Settings, wanted: bool) -> None:
        if not wanted:
            return
        stopper = idle.PodStopper(pod_id=s.env[protocol.RUNPOD_POD_ID_ENV], pod_key=s.pod_key,
                                  **idle.api_urls(s.env), log=self.out.line)
        watcher = idle.IdleWatcher(minutes=s.idle_minutes, minute_s=s.IDLE_STOP_MINUTE_S,
                                   check_s=s.IDLE_STOP_CHECK_S, metrics_url=f"http://127.0.0.1:{s.VLLM_PORT}/metrics",
                                   metrics_key=s.vllm_key,  # the gate wants the key on /metrics too
                                   retry_s=s.IDLE_STOP_RETRY_S, stopper=stopper, log=self.out.line)
        threading.Thread(target=watcher.run, args=(self.stop,), daemon=True, name="idle").start()

    def _model(self, s: Settings, c, venvs: Venvs, log: LogWriter):
        """What vLLM serves (a local dir or the repo id) and the Download running, if any."""
        if s.local_dir:
            if c.model_id != s.model_id:
                self.out.say(f"MODEL_LOCAL_DIR not used: it holds {s.model_id}, but this GPU's profile serves "
                             f"{c.model_id}")
            elif local_dir_complete(Path(s.local_dir)):
                self.out.say(f"serving the complete local copy {s.local_dir}; no download")
                return s.local_dir, None
            else:
                self.out.say(f"MODEL_LOCAL_DIR {s.local_dir} is missing or incomplete; using the Hub cache")
        if marker(s.hf_hub_cache, c.model_id, c.revision).is_file():
            rev = f"@{c.revision}" if c.revision else ""
            self.out.say(f"warm start: {c.model_id}{rev} is complete in {s.hf_hub_cache}; no download, vLLM runs "
                         "offline")
            return c.model_id, None
        hf_spec = Spec("hf-hub", lockfiles.HF_HUB_VERSION, s.vllm_python)
        download = Download(s, self.out, self.children, log, lambda: venvs.ensure(hf_spec) / "bin" / "hf",
                            c.model_id, c.revision)
        download.start()
        return c.model_id, download

    def _webui_venv(self, s: Settings, venvs: Venvs, enabled: bool, box: dict) -> None:
        box["env_dir"] = None
        if not enabled:
            self.out.say("Open WebUI install skipped (disabled)")
            return
        try:
            box["env_dir"] = venvs.ensure(Spec("openwebui", s.webui_version, s.webui_python))
        except InstallFailed as e:
            self.out.error(f"Open WebUI {s.webui_version}: {e.text}; going on with vLLM only")
        except SetupFailed as e:
            if self.children.failure is None:  # the setup's own failure is reported by the main thread
                self.out.error(f"{e.text}; going on with vLLM only")
        except Exception as e:  # noqa: BLE001  whatever it was, vLLM serves on and the reason is said
            self.out.error(f"Open WebUI's venv failed ({type(e).__name__}: {e}); going on with vLLM only")

    def _start_webui(self, s: Settings, env_dir: Path) -> None:
        out = self.out
        env = childenv.webui(s, embedding_ready=services.embedding_ready(s.hf_hub_cache))
        if "RAG_EMBEDDING_MODEL_AUTO_UPDATE" in env:
            out.say("Open WebUI's embedding model is on the volume: no Hub call for it at start")
        try:
            admin_script = services.child_script(s.env, "webui_admin.py", s.run_dir / "webui_admin.py")
        except SetupFailed as e:
            out.error(f"Open WebUI not started: {e.text}")
            return

        def before() -> dict[str, str]:
            # Before EVERY start (webui_admin.py: why): the preset admin exists and its password works,
            # with Open WebUI's own code, before the port answers; else a fresh data dir has open
            # sign-up. It changes the password only when it no longer works. Failing: not started.
            rc = self.webui.steps.run([str(env_dir / "bin" / "python"), str(admin_script)],
                                      env=childenv.webui_admin(s, env), out=out, prefix="openwebui",
                                      log=self.webui.log, cwd=s.webui_data_dir)
            if rc:
                raise RuntimeError(f"its admin step failed (exit status {rc}, see above); without a working "
                                   "admin its first visitor could sign up as admin")
            return {}

        out.say(f"open-webui serve --host 0.0.0.0 --port {s.WEBUI_PORT} (DATA_DIR {s.webui_data_dir})")
        # cwd DATA_DIR: without WEBUI_SECRET_KEY, `open-webui serve` writes .webui_secret_key into cwd.
        self.webui = Supervisor("openwebui", [str(env_dir / "bin" / "open-webui"), "serve", "--host", "0.0.0.0",
                                              "--port", str(s.WEBUI_PORT)], env, out=out,
                                log_path=s.log_dir / "openwebui.log", knobs=s, cwd=s.webui_data_dir,
                                pid_file=s.run_dir / f"{s.label}.openwebui.pid", before=before)
        self.services.append(self.webui)
        self.webui.start()

    def _stop_services(self) -> None:
        threads = [threading.Thread(target=sv.stop, daemon=True) for sv in self.services]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def main() -> int:
    out = Out()
    out.raw(protocol.boot_line(protocol.new_boot_id()))
    agent = Agent(dict(os.environ), out)
    # Children get envs built from allowlists (childenv.py). A process started without one (tar in
    # archive.py, nvidia-smi) inherits this process's env: cut down to the same base allowlist.
    keep = {*childenv.BASE, "AGENT_PASS_ENV", *(os.environ.get("AGENT_PASS_ENV") or "").split(",")} - {
        *protocol.SECRET_ENV_VARS, protocol.RUNPOD_POD_KEY_ENV}
    for name in set(os.environ) - keep:
        del os.environ[name]
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, agent.on_signal)
    return agent.run()


if __name__ == "__main__":
    sys.exit(main())
