"""The reliability table's data: tests record one row each (case, what the program did, pods leaked)
when env RELIABILITY_REPORT names a file; `scripts/reliability_report.py` renders docs/reliability.md.

Rows are JSON lines, appended, so several pytest processes may share one file. Without the env var
`record` does nothing.
"""

from __future__ import annotations

import json
import os

REPORT_ENV = "RELIABILITY_REPORT"


def live_pod_ids(emu) -> set[str]:
    return {p["id"] for p in emu.pods()}


def state_pod_ids(d) -> set[str]:
    """The pods the state stands for: each Pod's `pod_id` output (a wake onto a full host replaces the
    pod and moves it; the resource's own id stays the first pod's), else its id."""
    return {(r.get("outputs") or {}).get("pod_id") or r["id"] for r in d.resources()}


def leaked(d, emu) -> int:
    """Pods alive on the (emulated) RunPod that the stack's state does not know: they bill, and no
    `pulumi destroy` would remove them."""
    return len(live_pod_ids(emu) - state_pod_ids(d))


def record(section: str, case: str, outcome: str, leaked_pods: int, before_recovery: int | None = None) -> None:
    """One row: `leaked_pods` measured at the test's end; `before_recovery`, where the test runs a
    recovery step, measured just before it (what a user who stopped there would be left with)."""
    path = os.environ.get(REPORT_ENV)
    if not path:
        return
    row = {"section": section, "case": case, "outcome": outcome, "leaked": leaked_pods,
           "leaked_before_recovery": before_recovery}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def record_rejection(case: str, msg: str, expected: list[str], d, emu) -> None:
    """The bad-input table's hook (tests/engine/test_config.py): the message line the user sees."""
    if not os.environ.get(REPORT_ENV):
        return
    lines = [ln.strip() for ln in msg.splitlines() if expected[0] in ln]
    line = (lines[0] if lines else expected[0]).removeprefix("- ").removeprefix("error: ")
    head, got, value = line.partition(" (got ")
    if got and len(value) > 80:  # some messages echo a whole config map: keep the table readable
        line = f"{head} (got …)"
    mutating = [r for r in emu.requests if r["method"] in ("POST", "PATCH", "DELETE")]
    record("config", case, f"rejected at `preview` ({len(mutating)} create/update/delete calls): {line}",
           leaked(d, emu))
