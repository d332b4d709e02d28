"""Benchmarks of runpod-deploy: `python bench/run.py` (or `make bench`). See bench/README.md.

Writes bench/results/<date>-<host>.md and .png. About 6–8 minutes with the defaults on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]


def _machine(started: float, load0: tuple[float, ...], d: float) -> dict[str, str]:
    cpu = "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass

    def cmd(*args: str) -> str:
        try:
            return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    dirty = " (uncommitted changes)" if cmd("git", "status", "--porcelain") else ""
    load1 = os.getloadavg()
    return {
        "host": socket.gethostname(),
        "CPU": f"{cpu}, {os.cpu_count()} cores",
        "load average (1/5/15 min) at start → end": f"{'/'.join(f'{x:.2f}' for x in load0)} → "
                                                     f"{'/'.join(f'{x:.2f}' for x in load1)} (shared machine)",
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "pulumi CLI / Python SDK": f"{cmd('pulumi', 'version')} / {_sdk_version()}",
        "commit": cmd("git", "rev-parse", "--short", "HEAD") + dirty,
        "D (create → serving, emulator)": f"{d:g} s",
        "bench duration": f"{time.monotonic() - started:.0f} s",
    }


def _sdk_version() -> str:
    from importlib import metadata

    return metadata.version("pulumi")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--warmstart" in argv:  # its own options (bench/warmstart_bench.py); no Pulumi, no emulator
        import warmstart_bench

        return warmstart_bench.main([a for a in argv if a != "--warmstart"])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--warmstart", action="store_true",
                    help="run only the warm-start bench (bench/warmstart_bench.py; its options follow)")
    ap.add_argument("--d", type=float, default=20.0,
                    help="seconds from create to serving for each emulated pod (default 20)")
    ap.add_argument("--models", default="2,4,6",
                    help="model counts to `up`, comma-separated (2 is always run; default 2,4,6: 4 is the most the "
                         "dynamic provider runs at once)")
    ap.add_argument("--preview-runs", type=int, default=3, help="runs of each preview in figure 4 (default 3)")
    ap.add_argument("--startup-runs", type=int, default=3, help="cold+warm pairs of the startup script (default 3)")
    ap.add_argument("--skip-polls", action="store_true", help="skip the 10-minute poll measurement (~40 s)")
    ap.add_argument("--no-plot", action="store_true", help="write the table without the PNG (no matplotlib needed)")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="results directory (default bench/results)")
    ap.add_argument("--from-raw", type=Path, help="only re-render the results of a run from its raw pickle "
                                                   "(bench/results/last-run.tmp)")
    args = ap.parse_args(argv)
    if args.from_raw:
        import pickle

        return _write(args, *pickle.loads(args.from_raw.read_bytes()))

    if not args.no_plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("bench/run.py draws its plot with matplotlib, which is not installed here "
                  "(`make bench` installs it):\n"
                  f"    {sys.executable} -m pip install -r {HERE / 'requirements.txt'}\n"
                  "(or run with --no-plot for the table only)", file=sys.stderr)
            return 2
    from shutil import which

    if which("pulumi") is None:
        print("no `pulumi` on PATH: run `. scripts/env.sh` first (or `make bench`)", file=sys.stderr)
        return 2
    ns = sorted({2, *(int(x) for x in args.models.split(",") if x.strip())})

    import polls
    import provisioning
    import startup_bench
    from common import Sandbox

    started = time.monotonic()
    load0 = os.getloadavg()

    def say(msg: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {msg}", flush=True)

    sandbox = Sandbox()
    try:
        say(f"1, 2, 4: provisioning, API calls, engine overhead (D = {args.d:g} s; models {ns})")
        prov = provisioning.run(sandbox, args.d, ns, args.preview_runs, say)
        poll_res = None
        if not args.skip_polls:
            poll_res = polls.run(sandbox, say)
        say(f"3: startup script, {args.startup_runs}× cold then warm")
        st = startup_bench.run(sandbox.tmp, args.startup_runs, say)
    finally:
        sandbox.cleanup()

    now = dt.datetime.now()
    host = socket.gethostname()
    meta = {"host": host, "date": f"{now:%Y-%m-%d %H:%M}", "stem": f"{now:%Y-%m-%d}-{host}",
            "machine": _machine(started, load0, args.d)}
    args.out.mkdir(parents=True, exist_ok=True)
    try:  # the raw figures, so a report change can be re-rendered without re-running (--from-raw)
        import pickle

        for op in [*prov.ups.values(), *prov.destroys.values(), *prov.ops.values()]:
            op.result = None
        if poll_res is not None and poll_res.env_op is not None:
            poll_res.env_op.result = None
        (args.out / "last-run.tmp").write_bytes(pickle.dumps((meta, prov, poll_res, st)))
    except Exception as e:  # noqa: BLE001 - a convenience only
        print(f"note: raw results not saved ({e})", file=sys.stderr)
    return _write(args, meta, prov, poll_res, st)


def _write(args, meta, prov, poll_res, st) -> int:
    import report

    png = None
    if not args.no_plot:
        png = args.out / f"{meta['stem']}.png"
        report.plot(png, prov)
    md = report.markdown(meta, prov, poll_res, st, png.name if png else None)
    out = args.out / f"{meta['stem']}.md"
    out.write_text(md + "\n")
    print(f"wrote {out}" + (f" and {png}" if png else ""))
    print()
    for t in report.targets(prov, poll_res, st):
        print(f"  {t['status']:>12}  {t['target']}: {t['measured']}")
    if prov.pods_left:
        print(f"warning: {prov.pods_left} pods left in the emulator after the bench", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
