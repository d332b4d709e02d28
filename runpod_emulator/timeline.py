"""A pod's timeline, as pure maths over its boots (no state, no lock): a status is never stored; it
is computed from the current boot's timestamps, so pollers see the walk PROVISIONING -> STARTING ->
RUNNING (runtime null) -> RUNNING (runtime) -> services ready without any background thread:

    create:           |-- provision_delay --|-- start_delay --|-- runtime_delay --|-- ready_delay --|
    start / restart:                        |-- start_delay --|-- runtime_delay --|-- ready_delay --|
                       PROVISIONING          STARTING          RUNNING, runtime   RUNNING, runtime,
                                                               null (live quirk)  proxy 502 -> 200

The world (state.py) begins and ends boots under its lock and asks these functions what a pod shows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .state import Pod


@dataclass
class Boot:
    """One run of the container: from create/start/restart until stop."""
    at: float
    provision: float  # PROVISIONING seconds (0 unless the boot is the create)
    start: float
    runtime_delay: float
    ready_delay: float
    public_ip: str
    public_ports: dict = field(default_factory=dict)  # private -> public port, drawn once per boot
    never_ready: bool = False  # the startup failed or hangs: services never come up
    shown_started: float | None = None  # opaque reset: the old boot's start, shown instead
    error_at: float | None = None  # the pod goes to ERROR then (World.error_after)

    @property
    def running_at(self) -> float:
        return self.at + self.provision + self.start

    @property
    def runtime_at(self) -> float:
        return self.running_at + self.runtime_delay

    @property
    def ready_at(self) -> float:
        return self.runtime_at + self.ready_delay


def live_boot(pod: Pod, now: float) -> Boot | None:
    """The boot the pod shows now. Before a new boot begins (reset lag) that is the old
    container of a PATCH, or none (EXITED) after a start."""
    if pod.boot is not None and now < pod.boot.at:
        return pod.old_boot
    return pod.boot

def status(pod: Pod, now: float) -> str:
    boot = live_boot(pod, now)
    if boot is None:
        return "EXITED"
    if boot.error_at is not None and now >= boot.error_at:
        return "ERROR"
    if boot.shown_started is not None:
        return "RUNNING"  # an opaque reset: RunPod's status never shows it
    if now < boot.at + boot.provision:
        return "PROVISIONING"
    if now < boot.running_at:
        return "STARTING"
    return "RUNNING"

def started_at(pod: Pod, now: float) -> float | None:
    boot = live_boot(pod, now)
    if boot is not None and boot.shown_started is not None:
        return boot.shown_started
    if boot is not None and now >= boot.running_at:
        return boot.running_at
    return pod.last_started_at
