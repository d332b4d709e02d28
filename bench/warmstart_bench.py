"""Warm start sized for RunPod's volume: bytes read before `vllm serve` and in total, before and after.

    python bench/run.py --warmstart --vllm-venv V --webui-venv W [--webui-cpu-venv C]   # measure (A)
    python bench/run.py --warmstart --from-raw bench/results/<stem>-warmstart.json       # re-render
    python bench/run.py --warmstart --agent --from-raw bench/results/<stem>-warmstart.json  # (B)

(A) Archives: packs each real venv with startup/agent/archive.py onto a scratch "volume" directory
and unpacks it onto a scratch "container disk", timing both and recording each archive's bytes,
against the old design (the former startup.sh's one plain tar per venv, whose size is measured by
streaming `tar -c`). The venvs measured in bench/results were installed as that script did: `uv
venv --python 3.12|3.11` + `uv pip install --compile-bytecode vllm==0.11.2` / `open-webui==0.7.2`
(add `--torch-backend cpu` for the CPU-torch one). Scratch archives are deleted at the end.

(B) `--agent`: one cold + warm pair of the real agent with the real packages through devkit's sandbox
(devkit/startup_real.RealHarness, as bench/realpkgs_bench.py runs it), reading from the start's own
log the bytes each restore read from the volume (archive.py's "archive: restored … <n> bytes read"
line) and where they fall against `phase=start-vllm`. The warm start's figures become one more
design row ("measured warm start (log)") next to (A)'s, which come from the --from-raw file (or
from this run's --vllm-venv …).

Estimate: the warm-start timeline of an L40S pod serving olmOCR-2-7B-1025-FP8, with the volume as one
pipe of B GB/s that every read shares (RunPod documents 200-400 MB/s "typical"; B = 0.3 and 1). The
non-I/O phases are the typical values of ../shared/reference/startup-review.md §1.3 (sources there);
I/O phases are bytes / B, floored by this machine's measured unpack time scaled to a pod's cores.
Writes bench/results/<date>-<host>-warmstart.md and .json (raw figures).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

GB = 1e9

# olmOCR-2-7B-1025-FP8 on the volume: ~10 GB (review §0; 7.6 B LM params in FP8 plus the BF16 vision
# tower, embeddings and head).
WEIGHTS_GB = 10.0
# Non-I/O phases on an L40S, seconds, typical (range) from startup-review.md §1.3.
CONTAINER_S = 10.0  # start action → our process (5–15, [U]: RunPod publishes none)
PREPARE_S = 1.5  # env, nvidia-smi, profile pick (1–2)
BEFORE_WEIGHTS_S = {"vLLM imports, CLI parse, config": 8.0,  # 6–10
                    "EngineCore fork, CUDA context, model init": 4.5}  # 3–6
AFTER_WEIGHTS_S = {"weights to the GPU, beyond the read": 2.0,  # §1.3 row 5c: 11–14 s for 10 GB at ~1 GB/s
                   "torch.compile cache hit": 9.5,  # 7–12
                   "memory profiling, dummy MM-encoder run": 3.5,  # 2–5
                   "CUDA graphs (35 sizes, olmOCR)": 7.5,  # 5–10
                   "API server init, /health": 3.5}  # 2–5
# A pod has ≥ 8 vCPUs (RunPod's L40S pods: 8–16) against this machine's 2 shared cores; the 4 parts
# are extracted in parallel, so the pod's CPU floor is this machine's / POD_SPEEDUP (a guess, [U]).
POD_SPEEDUP = 2.0
SPEEDS = (0.3, 1.0)
GOAL_BEFORE_VLLM_GB = 6.0
GOAL_WARM_S = 75.0

# archive.py's line per restore: the bytes it read from the volume, and its seconds. (venvs.py's
# summary of the same restore, "<name>: restored … (<n> bytes)", follows it: not counted twice.)
RESTORED = re.compile(r"archive: restored (\S+) from (\S+): (\d+) bytes read .* in ([\d.]+)s")


# ------------------------------------------------------------------ (A) measure archives


def plain_tar_bytes(venv: Path) -> int:
    """The old archive: `tar -cf` of the venv (and its .python dir), streamed to a counter, not written."""
    names = [venv.name] + ([venv.name + ".python"] if (venv.parent / (venv.name + ".python")).is_dir() else [])
    tar = subprocess.Popen(["nice", "-n", "10", "tar", "-cf", "-", "-C", str(venv.parent), *names],
                           stdout=subprocess.PIPE)
    n = 0
    while chunk := tar.stdout.read(1 << 20):
        n += len(chunk)
    if tar.wait() != 0:
        raise RuntimeError(f"tar of {venv} failed")
    return n


def count_files(venv: Path) -> tuple[int, int]:
    files = size = 0
    for root, _dirs, names in os.walk(venv):
        for n in names:
            files += 1
            size += os.lstat(os.path.join(root, n)).st_size
    return files, size


def measure(venvs: dict[str, Path], scratch: Path, say) -> dict:
    from startup.agent import archive

    out = {}
    for name, venv in venvs.items():
        files, size = count_files(venv)
        say(f"{name}: {venv}: {files} files, {size / GB:.2f} GB; streaming a plain tar (the old archive)")
        t0 = time.monotonic()
        plain = plain_tar_bytes(venv)
        t_plain = time.monotonic() - t0
        dest = scratch / "volume" / "venvs" / name
        logs: list[str] = []
        say(f"{name}: archive.pack (zstd -{archive.ZSTD_LEVEL}, {archive.PARTS} parts), nice 10")
        t0 = time.monotonic()
        archive.pack(venv, dest, log=logs.append)
        t_pack = time.monotonic() - t0
        man = json.loads((dest.parent / (dest.name + ".manifest.json")).read_text())
        target = scratch / "disk" / name
        say(f"{name}: archive.unpack into a fresh directory")
        t0 = time.monotonic()
        read = archive.unpack(dest, target, log=logs.append)
        t_unpack = time.monotonic() - t0
        ok = count_files(target) == (files, size)
        shutil.rmtree(target)
        for p in dest.parent.glob(dest.name + ".*"):
            p.unlink()
        out[name] = {"venv": str(venv), "files": files, "bytes": size, "plain_tar": plain, "plain_tar_s": t_plain,
                     "packed": sum(p["size"] for p in man["parts"]), "parts": len(man["parts"]),
                     "format": man["format"], "pack_s": t_pack, "unpack_s": t_unpack, "read": read,
                     "round_trip_ok": ok, "log": logs}
        say(f"{name}: {plain / GB:.2f} GB plain → {out[name]['packed'] / GB:.2f} GB; pack {t_pack:.0f}s, "
            f"unpack {t_unpack:.0f}s, same files after: {ok}")
    return out


# ------------------------------------------------------------------ (B) the agent through devkit


def agent_run(say) -> dict:
    """Cold + warm start of whatever devkit/startup_real runs (the agent once integrated), bytes read
    per restore from the start's own output, split at phase=start-vllm."""
    import realpkgs_bench

    from devkit.startup_real import OLMOCR, RealHarness, stack_config

    res = {}
    with tempfile.TemporaryDirectory(prefix="warmstart-bench-") as tmp:
        h = RealHarness(Path(tmp))
        h.seed_model(stack_config().models[OLMOCR].model_id)
        try:
            for kind in ("cold", "warm"):
                if kind == "warm":
                    h.fresh_container_disk()
                r = realpkgs_bench.one_start(h, kind, 1800)
                res[kind] = {"both": r["both"], "phases": r["phases"], **restored_bytes(r["output"])}
                say(f"{kind}: both up after {r['both']:.1f}s; read before start-vllm "
                    f"{res[kind]['before_vllm'] / GB:.2f} GB, total {res[kind]['total'] / GB:.2f} GB")
        finally:
            h.cleanup()
    return res


def restored_bytes(output: str) -> dict:
    """Bytes each restore read from the volume, and how many of them came before phase=start-vllm."""
    before = total = 0
    before_s = after_s = 0.0
    seen_vllm = False
    per: dict[str, int] = {}
    for line in output.splitlines():
        if line.strip() == "runpod-deploy phase=start-vllm":
            seen_vllm = True
        if m := RESTORED.search(line):
            n, secs, name = int(m.group(3)), float(m.group(4)), Path(m.group(1)).name
            per[name] = n
            total += n
            before += 0 if seen_vllm else n
            if seen_vllm:
                after_s += secs
            else:
                before_s += secs
    return {"before_vllm": before, "total": total, "per_venv": per, "before_vllm_s": before_s,
            "after_vllm_s": after_s}


# ------------------------------------------------------------------ the estimate


def timeline(speed: float, vllm_gb: float, webui_gb: float, webui_before_vllm: bool, vllm_floor_s: float,
             webui_floor_s: float, prefetch: bool) -> tuple[float, list[tuple[str, float]]]:
    """Seconds from the start action to vLLM's /health 200, with the volume one pipe of `speed` GB/s.
    Rows: (phase, seconds on the critical path)."""
    rows = [("container start", CONTAINER_S), ("prepare", PREPARE_S)]
    t = CONTAINER_S + PREPARE_S
    if webui_before_vllm:  # the old design: both restores, one after the other, before vLLM starts
        a = max(vllm_gb / speed, vllm_floor_s)
        b = max(webui_gb / speed, webui_floor_s)
        rows += [("restore vLLM venv", a), ("restore Open WebUI venv (before vLLM)", b)]
        t += a + b
        t1 = t
        webui_gb_left = 0.0
    else:
        a = max(vllm_gb / speed, vllm_floor_s)
        rows.append(("restore vLLM venv", a))
        t += a
        t1 = t  # Open WebUI's restore starts now, alongside vLLM's imports
        webui_gb_left = webui_gb
    pre = sum(BEFORE_WEIGHTS_S.values())
    rows += list(BEFORE_WEIGHTS_S.items())
    t2 = t1 + pre  # vLLM starts reading weights
    if prefetch:
        # A reader pulls the weights into the page cache from t1, ahead of Open WebUI's restore; vLLM's
        # own read then comes from RAM: the weights are in when the volume has delivered them.
        done = max(t2, t1 + WEIGHTS_GB / speed)
    else:
        # vLLM reads them itself from t2; Open WebUI's restore (from t1) shares the volume meanwhile.
        done = max(t2 + WEIGHTS_GB / speed, t1 + (webui_gb_left + WEIGHTS_GB) / speed)
    rows.append((f"weights ({WEIGHTS_GB:.0f} GB), beyond the imports", done - t2))
    post = sum(AFTER_WEIGHTS_S.values())
    rows += list(AFTER_WEIGHTS_S.items())
    return done + post, rows


def estimate(arch: dict, raw_agent: dict | None = None) -> dict:
    v, w = arch["vllm"], arch["webui"]
    wc = arch.get("webui_cpu", w)
    designs = {
        "before": dict(vllm_gb=v["plain_tar"] / GB, webui_gb=w["plain_tar"] / GB, webui_before_vllm=True,
                       vllm_floor_s=v.get("plain_unpack_s", 0) / POD_SPEEDUP,
                       webui_floor_s=w.get("plain_unpack_s", 0) / POD_SPEEDUP, prefetch=False),
        "after": dict(vllm_gb=v["packed"] / GB, webui_gb=wc["packed"] / GB, webui_before_vllm=False,
                      vllm_floor_s=v["unpack_s"] / POD_SPEEDUP, webui_floor_s=wc["unpack_s"] / POD_SPEEDUP,
                      prefetch=False),
    }
    designs["after + weight prefetch"] = {**designs["after"], "prefetch": True}
    warm = (raw_agent or {}).get("warm")
    if warm and warm["total"]:
        # What the start itself read and how long its restores took here (its log), in place of the
        # archive figures: whatever it restored before start-vllm counts as "the vLLM venv".
        designs["measured warm start (log)"] = dict(
            vllm_gb=warm["before_vllm"] / GB, webui_gb=(warm["total"] - warm["before_vllm"]) / GB,
            webui_before_vllm=False, vllm_floor_s=warm.get("before_vllm_s", 0) / POD_SPEEDUP,
            webui_floor_s=warm.get("after_vllm_s", 0) / POD_SPEEDUP, prefetch=False)
    # For scale: startup-review.md §2 (a), both venvs in the pod's image (cached on the host), nothing
    # of them read from the volume.
    designs["image + weight prefetch"] = dict(vllm_gb=0.0, webui_gb=0.0, webui_before_vllm=False, vllm_floor_s=0.0,
                                              webui_floor_s=0.0, prefetch=True)
    out = {}
    for name, d in designs.items():
        before_gb = d["vllm_gb"] + (d["webui_gb"] if d["webui_before_vllm"] else 0)
        total_gb = d["vllm_gb"] + d["webui_gb"] + WEIGHTS_GB
        out[name] = {"before_vllm_gb": before_gb, "total_gb": total_gb, "params": d,
                     "speeds": {str(s): timeline(s, **d) for s in SPEEDS}}
    return out


def _speed_text(speed: float) -> str:
    return "none (the restores' CPU floor alone exceeds it)" if speed > 19.0 else f"{speed:.2f} GB/s"


def speed_for(goal_s: float, d: dict) -> float:
    lo, hi = 0.05, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if timeline(mid, **d)[0] > goal_s else (lo, mid)
    return hi


# ------------------------------------------------------------------ report


def render(raw: dict) -> str:
    arch = raw["archives"]
    est = estimate(arch, raw.get("agent"))
    md = [f"# Warm start vs RunPod's volume ({raw['date']}, {raw['host']})", "",
         f"Machine: {raw['machine']}. Made by `python bench/run.py --warmstart` (bench/warmstart_bench.py).", "",
         "## Archives of the real venvs (measured here)", "",
         "Local disk to local disk, 2 cores shared with other jobs (load at start "
         f"{raw['load']}); pack and unpack once each, `nice -n 10`.", "",
         "| venv | files | bytes | old: plain tar | new: archive.py | ratio | parts | pack (s) | unpack (s) |",
         "|---|---|---|---|---|---|---|---|---|"]
    for name, a in arch.items():
        md.append(f"| {name} | {a['files']:,} | {a['bytes'] / GB:.2f} GB | {a['plain_tar'] / GB:.2f} GB | "
                 f"{a['packed'] / GB:.2f} GB ({a['format']}) | {a['plain_tar'] / a['packed']:.2f}× | {a['parts']} | "
                 f"{a['pack_s']:.0f} | {a['unpack_s']:.0f} |")
    md += ["", "Each round trip restored the same files and bytes: "
          + ", ".join(f"{n} {'yes' if a['round_trip_ok'] else 'NO'}" for n, a in arch.items()) + ".", ""]
    if raw.get("agent"):
        md += ["## Measured through devkit/startup_real (the agent)", ""]
        for kind, r in raw["agent"].items():
            md.append(f"- {kind}: both up after {r['both']:.0f} s; read from the volume before `start-vllm` "
                     f"{r['before_vllm'] / GB:.2f} GB, in total {r['total'] / GB:.2f} GB "
                     f"({', '.join(f'{k} {v / GB:.2f} GB' for k, v in r['per_venv'].items()) or 'no restore'})")
        md.append("")
    md += ["## Bytes read from the volume on a warm start (olmOCR FP8, ~10 GB of weights)", "",
          "| design | before `vllm serve` starts | in total | "
          + " | ".join(f"warm start at {s} GB/s" for s in SPEEDS) + " |",
          "|---|---|---|" + "---|" * len(SPEEDS)]
    for name, e in est.items():
        cells = [f"{e['speeds'][str(s)][0]:.0f} s" for s in SPEEDS]
        md.append(f"| {name} | {e['before_vllm_gb']:.1f} GB | {e['total_gb']:.1f} GB | " + " | ".join(cells) + " |")
    after = est["after"]
    md += ["", f"Goals (issue 19): ≤ {GOAL_BEFORE_VLLM_GB:.0f} GB before vLLM starts: "
          f"{'met' if after['before_vllm_gb'] <= GOAL_BEFORE_VLLM_GB else 'MISSED'} ({after['before_vllm_gb']:.1f} GB, "
          f"old {est['before']['before_vllm_gb']:.1f} GB). Warm start ≤ {GOAL_WARM_S:.0f} s for olmOCR at 0.3 GB/s: "
          + ", ".join(f"{n} {e['speeds']['0.3'][0]:.0f} s "
                      f"({'met' if e['speeds']['0.3'][0] <= GOAL_WARM_S else 'missed'})"
                      for n, e in est.items() if n != "before")
          + "; the volume speed at which each design reaches it: "
          + ", ".join(f"{n} {_speed_text(speed_for(GOAL_WARM_S, e['params']))}" for n, e in est.items()) + ".", "",
          "## The arithmetic, phase by phase (seconds on vLLM's critical path)", ""]
    for s in SPEEDS:
        md += [f"At {s} GB/s:", "", "| phase | " + " | ".join(est) + " |", "|---|" + "---|" * len(est)]
        rows = {n: dict(e["speeds"][str(s)][1]) for n, e in est.items()}
        names = list(dict.fromkeys(k for n in est for k, _ in est[n]["speeds"][str(s)][1]))
        for k in names:
            md.append(f"| {k} | " + " | ".join(f"{rows[n][k]:.1f}" if k in rows[n] else "–" for n in est) + " |")
        md.append("| **vLLM /health 200** | " + " | ".join(f"**{e['speeds'][str(s)][0]:.0f}**" for e in est.values())
                 + " |")
        md.append("")
    md += ["Model: the volume is one pipe that every read shares; a restore takes max(bytes / speed, this "
          f"machine's unpack time / {POD_SPEEDUP:g} for a pod's cores); before: both restores in series before "
          "vLLM; after: Open WebUI's restore starts when vLLM's venv is in, alongside vLLM's imports, and shares "
          "the volume with the weight read; prefetch: a reader pulls the weights into the page cache from the "
          "moment vLLM's venv is in, ahead of Open WebUI. Non-I/O phases: startup-review.md §1.3, typical values.",
          ""]
    return "\n".join(md)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vllm-venv", type=Path)
    ap.add_argument("--webui-venv", type=Path, help="Open WebUI's venv (installed with CUDA torch)")
    ap.add_argument("--webui-cpu-venv", type=Path, help="Open WebUI's venv installed with --torch-backend cpu")
    ap.add_argument("--plain-unpack-s", default="30,17",
                    help="the old plain tars' restore times here, vLLM,Open WebUI (startup/WARM_START.md: 30,17)")
    ap.add_argument("--agent", action="store_true", help="also run a cold+warm pair of the agent via devkit")
    ap.add_argument("--scratch", type=Path, default=None, help="where the scratch archives go (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--from-raw", type=Path)
    args = ap.parse_args(argv)
    t00 = time.monotonic()

    def say(msg: str) -> None:
        print(f"[{time.monotonic() - t00:6.1f}s] {msg}", file=sys.stderr, flush=True)

    if args.from_raw:
        raw = json.loads(args.from_raw.read_text())
        if args.agent:  # the archive figures of that run, the agent measured now: a new results file
            now = dt.datetime.now()
            raw.update(date=f"{now:%Y-%m-%d %H:%M}", stem=f"{now:%Y-%m-%d}-{socket.gethostname()}-warmstart-devkit",
                       load="/".join(f"{x:.1f}" for x in os.getloadavg()), agent=agent_run(say))
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"{raw['stem']}.json").write_text(json.dumps(raw, indent=1) + "\n")
    else:
        venvs = {k: v for k, v in (("vllm", args.vllm_venv), ("webui", args.webui_venv),
                                   ("webui_cpu", args.webui_cpu_venv)) if v}
        if not {"vllm", "webui"} <= venvs.keys():
            ap.error("--vllm-venv and --webui-venv are required (or --from-raw)")
        now = dt.datetime.now()
        raw = {"date": f"{now:%Y-%m-%d %H:%M}", "host": socket.gethostname(),
               "stem": f"{now:%Y-%m-%d}-{socket.gethostname()}-warmstart",
               "machine": f"{os.cpu_count()} cores", "load": "/".join(f"{x:.1f}" for x in os.getloadavg())}
        scratch = Path(tempfile.mkdtemp(prefix="warmstart-", dir=args.scratch))
        try:
            raw["archives"] = measure(venvs, scratch, say)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        for name, s in zip(("vllm", "webui"), args.plain_unpack_s.split(","), strict=True):
            raw["archives"][name]["plain_unpack_s"] = float(s)
        if args.agent:
            raw["agent"] = agent_run(say)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{raw['stem']}.json").write_text(json.dumps(raw, indent=1) + "\n")
    md = render(raw)
    out = args.out / f"{raw['stem']}.md"
    out.write_text(md + "\n")
    print(md)
    print(f"\nwrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
