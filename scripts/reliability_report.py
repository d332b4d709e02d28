"""Regenerate docs/reliability.md from the tests: `python scripts/reliability_report.py`.

Runs the engine tier (tests/engine: the real Pulumi CLI against the RunPod emulator) with env
RELIABILITY_REPORT set, so each behaviour test appends its row (behaviour, case, what the program did,
pods leaked as measured on the emulator) to a JSON-lines file; then renders those rows, one table per
behaviour, below the marker in docs/reliability.md. The hand-written text above the marker is kept.
If any test fails, the document is left as it was and the exit status is pytest's.

Extra arguments go to pytest (e.g. `-k killed` for a quick look; the document then holds only
those rows, so regenerate in full before committing).

`--from-rows FILE` renders rows already recorded (e.g. by a whole-suite run with
RELIABILITY_REPORT=FILE that passed) without running the tests again.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devkit.cli import search_path  # noqa: E402

DOC = ROOT / "docs" / "reliability.md"
TESTS = ["tests/engine"]
MARKER = "<!-- Generated below by scripts/reliability_report.py from the tests' measurements: do not edit by hand. -->"
# The behaviours, in the document's order: section name (as the tests record it) -> what it covers.
SECTIONS = {
    "deploy": "the team's flow: preview, up, outputs read by another stack, destroy (tests/engine/test_deploy.py)",
    "placement": "the GPU walk: every refusal moves it on, except those no other GPU cures (test_placement.py)",
    "cost": "price ceilings, the worst case, idle stop (test_cost.py)",
    "updates": "a changed config or pod agent: one PATCH, then proof of the new boot (test_updates.py)",
    "wake": "stopping and starting pods: idle stop, `running`, a wake onto a full host (test_wake.py)",
    "drift": "the world changed outside Pulumi, or reported in RunPod's ways; a teammate's pods (test_drift.py)",
    "failures": "a create, start or `up` that fails: one line, nothing billing outside state (test_failures.py)",
    "rate limits": "per-account quotas and hour-long windows on every call (test_rate_limits.py)",
    "secrets": "secrets never in plain text; set the wrong way, refused with the fix (test_secrets.py)",
    "config": "bad configuration refused at `preview`, naming the key and the fix (test_config.py)",
}

DEFAULT_INTRO = f"""# Reliability

What the program does when RunPod, the network, the operator or the configuration misbehaves.
Each row is one end-to-end test (`tests/engine/`): the plain Pulumi CLI and engine, the real program,
against the local RunPod emulator's fault injection. *Pods leaked* is measured from the emulator at
the end of the test: pods alive on "RunPod" that the stack's state does not hold (they would bill,
and `pulumi destroy` would not remove them).

{MARKER}
"""


def run_tests(report: Path, pytest_args: list[str]) -> int:
    env = dict(os.environ, RELIABILITY_REPORT=str(report), PATH=search_path())  # as `. scripts/env.sh` would
    cmd = [sys.executable, "-m", "pytest", *TESTS, "-q", "-p", "no:cacheprovider", *pytest_args]
    print("+", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=ROOT, env=env)


def cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def leaked_cell(row: dict) -> str:
    before = row.get("leaked_before_recovery")
    if before:
        return f"{row['leaked']} ({before} before the recovery step)"
    return str(row["leaked"])


def render(rows: list[dict]) -> str:
    """One table per behaviour, in SECTIONS' order (an unknown section last, under its own name)."""
    sections = list(SECTIONS) + sorted({r["section"] for r in rows} - set(SECTIONS))
    out = []
    for s in sections:
        mine = [r for r in rows if r["section"] == s]
        if not mine:
            continue
        about = SECTIONS.get(s, "")
        out += [f"### {s[:1].upper() + s[1:]}", "", about[:1].upper() + about[1:] + ".", "",
                "| case | what the program did | pods leaked (must be 0) |", "|---|---|---|"]
        out += [f"| {cell(r['case'])} | {cell(r['outcome'])} | {leaked_cell(r)} |" for r in mine]
        out.append("")
    total = sum(r["leaked"] for r in rows)
    counts = ", ".join(f"{sum(r['section'] == s for r in rows)} {s}" for s in sections if any(
        r["section"] == s for r in rows))
    when = datetime.date.today().isoformat()
    return ("\n".join(out) + f"\n{len(rows)} cases ({counts}); pods leaked in total: {total}. "
            f"Generated on {when} by `python scripts/reliability_report.py`.\n")


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(argv: list[str]) -> int:
    if argv[:1] == ["--from-rows"] and len(argv) == 2:
        rc, rows = 0, read_rows(Path(argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "reliability.jsonl"
            report.touch()
            rc = run_tests(report, argv)
            rows = read_rows(report)
    if rc != 0:
        print(f"tests failed (exit {rc}): {DOC.relative_to(ROOT)} left unchanged", file=sys.stderr)
        return rc
    if not rows:
        print("no rows recorded: nothing to write", file=sys.stderr)
        return 1
    text = DOC.read_text() if DOC.exists() else DEFAULT_INTRO
    head = text.split(MARKER, 1)[0] if MARKER in text else text.rstrip("\n") + "\n\n"
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(head + MARKER + "\n\n" + render(rows))
    print(f"wrote {DOC.relative_to(ROOT)}: {len(rows)} rows, {sum(r['leaked'] for r in rows)} pods leaked")
    return 0 if all(r["leaked"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
