"""flock-based locks. The instance lock (container disk) keeps a second copy of the agent in the same
container out; a volume lock keeps two pods sharing the network volume from installing or downloading
the same thing at once. Whether flock excludes across hosts on RunPod's volume is unconfirmed, so
the archives do not rely on it (unique temp names, checksums: archive.py); a volume that refuses
flock, or a lock held too long, lets the work go on without it, said so."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path


def try_instance_lock(path: Path) -> int | None:
    """The fd holding the lock (kept open for the agent's life; never inherited), or None if held."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError:
        return fd  # no flock on this filesystem: go on
    return fd


@contextmanager
def volume_lock(path: Path, *, wait_s: float, say: Callable[[str], None], nap: Callable[[float], None]):
    """Hold `path`'s lock for the block, waiting up to wait_s for another pod (nap: abortable sleep)."""
    fd = None
    try:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another pod holding {path} (up to {wait_s:g}s)")
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        say(f"{path} is still locked after {wait_s:g}s; going on without the lock")
                        break
                    nap(0.5)
        except OSError:
            pass  # no flock (or no file) on the volume: go on without
        yield
    finally:
        if fd is not None:
            os.close(fd)
