"""Children: each runs in its own process group (so uv's or vLLM's own children stop with it), with
an env built by childenv.py, its output pumped line by line to stdout (prefixed) and to a log file
(LogWriter: never blocks). Supervisor restarts a service with capped exponential backoff."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .output import LogWriter, Out, rotate


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def end_group(proc: subprocess.Popen, grace: float) -> None:
    """What is left of a child's process group once the child itself exited (vLLM's engine process,
    which would keep the GPU from the restarted vLLM): SIGTERM, then SIGKILL after `grace`."""
    if not group_alive(proc.pid):
        return
    signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    signal_group(proc, signal.SIGKILL)


def stop(proc: subprocess.Popen, grace: float) -> int:
    """SIGTERM to its group, SIGKILL after `grace` seconds; its exit status."""
    signal_group(proc, signal.SIGTERM)
    t0 = time.monotonic()
    try:
        rc = proc.wait(grace)
    except subprocess.TimeoutExpired:
        signal_group(proc, signal.SIGKILL)
        return proc.wait()
    end_group(proc, max(0.0, grace - (time.monotonic() - t0)))
    return rc


def spawn(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)


def pump(proc: subprocess.Popen, prefix: str, out: Out, log: LogWriter | None) -> None:
    """Reads the child's output to its end: its pipe is always drained, whatever the log's disk does."""
    for raw in proc.stdout:
        out.child(prefix, raw.decode("utf-8", "replace").rstrip("\r\n"), log)
    proc.stdout.close()


def exit_status(rc: int) -> int:
    return 128 - rc if rc < 0 else rc  # killed by signal N: 128+N, as a shell reports it


class Children:
    """The setup's running children. abort() stops them all and records why: every wait of the setup
    then ends, and check() raises that reason (a failed download stops the installs, a signal stops
    everything)."""

    def __init__(self, grace: float = 10):
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self.failure: Exception | None = None
        self.aborted = threading.Event()
        self.grace = grace

    def run(self, argv: list[str], *, env: dict[str, str], out: Out, prefix: str, log: LogWriter | None,
            cwd: Path | None = None) -> int:
        self.check()
        try:
            proc = spawn(argv, env, cwd)
        except OSError as e:
            out.child(prefix, f"cannot run {argv[0]}: {e}", log)
            return 127
        with self._lock:
            self._procs.add(proc)
        try:
            if self.aborted.is_set():
                signal_group(proc, signal.SIGTERM)
            pump(proc, prefix, out, log)
            return exit_status(proc.wait())
        finally:
            with self._lock:
                self._procs.discard(proc)

    def abort(self, failure: Exception) -> None:
        with self._lock:
            if self.failure is None:
                self.failure = failure
            self.aborted.set()
            procs = list(self._procs)
        for p in procs:
            signal_group(p, signal.SIGTERM)

    def check(self) -> None:
        if self.failure is not None:
            raise self.failure

    def nap(self, seconds: float) -> None:
        self.aborted.wait(seconds)
        self.check()


class Supervisor:
    """Runs one service and restarts it when it exits: after backoff * 2^(n-1) s, capped; after
    max_restarts consecutive crashes (a run of reset_s seconds resets the count) it gives up with an
    error= line. `before()` may run a step first (Open WebUI's admin step) and returns extra env for
    this start; if it raises, the service is not started this time (a failed run: error= line,
    backoff); `after(rc, ran_s)` sees each exit."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], *, out: Out, log_path: Path,
                 knobs, cwd: Path | None = None, pid_file: Path | None = None,
                 before: Callable[[], dict[str, str]] | None = None,
                 after: Callable[[int, float], None] | None = None):
        self.name, self.argv, self.env, self.cwd = name, argv, env, cwd
        self.out, self.log_path, self.k = out, log_path, knobs
        self.log = LogWriter(log_path)
        self.pid_file, self.before, self.after = pid_file, before, after
        self.stopping = threading.Event()
        self.steps = Children()  # children of `before` (the admin step): stopped with the service
        self.proc: subprocess.Popen | None = None
        self.gave_up = False
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"supervise {name}")

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        restarts = 0
        while not self.stopping.is_set():
            rotate(self.log_path, self.k.LOG_MAX_BYTES)
            started = time.monotonic()
            try:
                extra = self.before() if self.before else {}
            except Exception as e:  # noqa: BLE001  stopped meanwhile (steps aborted), or the step failed
                if self.stopping.is_set():
                    return
                self.out.error(f"{self.name} not started: {e}")
                extra, rc = None, 1  # counted as a failed run: retried with backoff, given up after MAX_RESTARTS
            if extra is not None:
                rc = self._once(extra)
            if self.stopping.is_set():
                return
            ran = time.monotonic() - started
            if self.after:
                self.after(rc, ran)
            if ran >= self.k.RESTART_RESET_S:
                restarts = 0
            restarts += 1
            if restarts > self.k.MAX_RESTARTS:
                self.gave_up = True
                self.out.error(f"{self.name} keeps failing (exit status {rc} after {self.k.MAX_RESTARTS:g} restarts): "
                               f"no more restarts; the pod stays up for inspection, see {self.log_path}")
                self.out.phase("failed")  # the provider stops waiting for a service that will not come
                return
            delay = min(self.k.RESTART_BACKOFF_S * 2 ** (restarts - 1), self.k.RESTART_BACKOFF_MAX_S)
            self.out.error(f"{self.name} exited with status {rc}; restart {restarts}/{self.k.MAX_RESTARTS:g} "
                           f"in {delay:g}s")
            self.stopping.wait(delay)

    def _once(self, extra: dict[str, str]) -> int:
        """One run of the service: its exit status (the caller checks `stopping` after it)."""
        if self.stopping.is_set():
            return 0
        try:
            self.proc = spawn(self.argv, {**self.env, **extra}, self.cwd)
        except OSError as e:
            self.out.error(f"{self.name}: cannot run {self.argv[0]}: {e}")
            return 127
        if self.stopping.is_set():  # stop() came while it was starting
            stop(self.proc, self.k.STOP_TIMEOUT_S)
            return 0
        if self.pid_file:
            try:
                self.pid_file.write_text(f"{self.proc.pid}\n")
            except OSError:
                pass
        self.out.say(f"{self.name} started (pid {self.proc.pid})")
        pumper = threading.Thread(target=pump, args=(self.proc, self.name, self.out, self.log), daemon=True)
        pumper.start()
        rc = exit_status(self.proc.wait())
        if not self.stopping.is_set():
            end_group(self.proc, self.k.STOP_TIMEOUT_S)
        pumper.join(2)
        return rc

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; returns once the service is gone."""
        self.stopping.set()
        self.steps.abort(RuntimeError(f"{self.name} is stopping"))
        proc = self.proc
        if proc is not None and proc.poll() is None:
            stop(proc, self.k.STOP_TIMEOUT_S)
            self.out.say(f"{self.name} stopped")
        self._thread.join(self.k.STOP_TIMEOUT_S + 5)
        self.log.flush()
