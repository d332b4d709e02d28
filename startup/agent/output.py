"""What the agent prints and logs. stdout carries the protocol lines (protocol.py) and the children's
output prefixed ``[name] ``; files on the volume get the same lines, timestamped, through LogWriter,
whose thread does the writing: a stalled volume never blocks the agent or a service."""

from __future__ import annotations

import queue
import sys
import threading
import time
from pathlib import Path

from . import protocol


def stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class LogWriter:
    """Appends lines to `path` from its own thread. put() never blocks: while the queue is full (the
    volume stalls), lines are dropped and counted, and the count is written once the file takes
    writes again. stdout keeps every line anyway."""

    def __init__(self, path: Path, max_lines: int = 20000):
        self.path = path
        self._q: queue.Queue[str] = queue.Queue(max_lines)
        self._dropped = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True, name=f"log {path.name}").start()

    def put(self, line: str) -> None:
        try:
            self._q.put_nowait(f"{stamp()} {line}\n")
        except queue.Full:
            with self._lock:
                self._dropped += 1

    def flush(self, timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while self._q.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def _run(self) -> None:
        while True:
            batch = [self._q.get()]
            while len(batch) < 1000:
                try:
                    batch.append(self._q.get_nowait())
                except queue.Empty:
                    break
            with self._lock:
                dropped, self._dropped = self._dropped, 0
            if dropped:
                batch.insert(0, f"{stamp()} [{dropped} lines dropped here: the disk of this log was too slow]\n")
            try:  # opened per batch: a log rotated meanwhile (rotate()) gets a new file
                with open(self.path, "a", encoding="utf-8", errors="replace") as f:
                    f.writelines(batch)
            except OSError:
                pass  # an unwritable log must not stop anything; stdout has every line
            for _ in range(len(batch) - (1 if dropped else 0)):
                self._q.task_done()


def rotate(path: Path, max_bytes: int) -> None:
    """Keep one previous generation of a log once it is bigger than max_bytes."""
    try:
        if path.stat().st_size > max_bytes:
            path.replace(path.with_name(path.name + ".1"))
    except OSError:
        pass


class Out:
    """The agent's stdout (RunPod's log) and, once set, its own log file (startup.log)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.log: LogWriter | None = None
        self._early: list[str] = []  # lines before the log file is known (the boot line among them)

    def attach(self, log: LogWriter) -> None:
        for line in self._early:
            log.put(line)
        self._early, self.log = [], log

    def raw(self, line: str) -> None:
        with self._lock:
            try:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            except (OSError, ValueError):
                pass
        if self.log is not None:
            self.log.put(line)
        else:
            self._early.append(line)

    def phase(self, name: str) -> None:
        self.raw(protocol.phase_line(name))

    def error(self, text: str) -> None:
        self.raw(protocol.error_line(text))

    def say(self, text: str) -> None:
        self.raw(protocol.detail_line(text))

    def line(self, text: str) -> None:
        """A line from a module that may already speak the protocol (idle.py's log)."""
        self.raw(text if protocol.parse(text) else protocol.detail_line(text))

    def child(self, prefix: str, line: str, log: LogWriter | None) -> None:
        with self._lock:
            try:
                sys.stdout.write(f"[{prefix}] {line}\n")
                sys.stdout.flush()
            except (OSError, ValueError):
                pass
        if log is not None:
            log.put(line)
