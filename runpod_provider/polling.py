"""One way to wait for RunPod: look, and if it is not there yet, sleep the schedule's next delay,
until a deadline. Used by the readiness wait, the wait for a deleted pod to go, and the create
adoption's search of the pod list; each passes its own schedule."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Delays `first_s`, then each one `factor` times the last, capped at `cap_s`. Endless: the
    caller's deadline ends the wait."""

    first_s: float
    factor: float = 1.0
    cap_s: float | None = None

    def delays(self) -> Iterator[float]:
        delay = self.first_s
        while True:  # endless by design: poll_until's deadline bounds every loop over it
            yield delay
            delay *= self.factor
            if self.cap_s is not None:
                delay = min(delay, self.cap_s)


def poll_delays(initial: float | None = None, factor: float = 1.5, cap_ratio: float = 30.0) -> Iterator[float]:
    """The readiness schedule: 1, 1.5, 2.25, … capped at 30 s. `RUNPOD_DEPLOY_POLL_S` scales the
    whole schedule (start and cap) for tests and benches, so a shortened run polls the way
    production does."""
    first = initial if initial is not None else float(os.environ.get("RUNPOD_DEPLOY_POLL_S", "1.0"))
    return Backoff(first, factor, first * cap_ratio).delays()


def poll_until(
    look: Callable[[], T | None],
    *,
    timeout_s: float,
    delays: Iterator[float],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T | None:
    """`look()` until it returns something other than None, and return that; None once `timeout_s`
    has passed. The first look is immediate, the last one falls on the deadline (the final sleep is
    cut short to reach it). `look` may raise to end the wait early."""
    deadline = clock() + timeout_s
    for delay in delays:
        found = look()
        if found is not None:
            return found
        remaining = deadline - clock()
        if remaining <= 0:
            break
        sleep(min(delay, remaining))
    return None
