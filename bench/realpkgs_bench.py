"""Cold and warm start of the REAL pod agent with the REAL packages: `python bench/realpkgs_bench.py`.

The agent (startup/agent/) installs vLLM and Open WebUI from their locks (startup/locks/) with the
real uv onto an empty temp container disk and archives them on an empty temp WORKSPACE (cold), is
stopped, and starts again on the same WORKSPACE with a fresh container disk, as after a pod stop
(warm: the venvs are restored from the archives). Measured per start: seconds from launch to each
phase line and to both services answering /health (the time users wait), the seconds each restore
took, and what real uv installed. The sandbox is devkit.startup_real's: a stand-in `nvidia-smi`, the
model's weights marked present (no Hub here), and — no GPU here — vLLM's entry point replaced by the
OpenAI-compatible stand-in as soon as the agent has put the real vLLM on the container disk. Open
WebUI is the real one.

What this machine cannot show: a GPU's weight load, torch.compile and CUDA-graph capture, and the
network volume's per-file latency (the WORKSPACE is a local disk here). startup/README.md has the
budget for those. uv's cache (~/.cache/runpod-deploy/uv) is warm after the first run; `--empty-uv-cache`
uses an empty one for a first-ever cold start (downloads ~17 GB: minutes, and that much disk).

Prints a table; writes nothing. About 3 minutes with a warm uv cache on 2 cores.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devkit.startup_real import OLMOCR, UV_CACHE, RealHarness, stack_config, uv_installed_counts, wait_http_ok  # noqa: E402

PHASES = ["install-vllm", "install-webui", "download-model", "start-vllm", "start-webui", "ready"]


def one_start(h: RealHarness, kind: str, timeout: float) -> dict:
    t0 = time.monotonic()
    run = h.start(OLMOCR)
    seen: dict[str, float] = {}
    both = None
    while time.monotonic() - t0 < timeout:
        now = time.monotonic() - t0
        for line in list(run.lines):
            if (m := re.fullmatch(r"runpod-deploy phase=(\S+)", line)) and m.group(1) not in seen:
                seen[m.group(1)] = now
        if "ready" in seen:  # vLLM answers; Open WebUI's own /health says when it does (any agent wording)
            wait_http_ok(f"http://127.0.0.1:{run.webui_port}/health", max(5.0, timeout - now))
            both = time.monotonic() - t0
            break
        if run.proc.poll() is not None:
            break
        time.sleep(0.05)
    out = run.output
    rc = run.stop(timeout=120)
    if both is None:
        raise RuntimeError(f"{kind}: services not both up within {timeout}s (stop rc {rc}); output:\n{out[-3000:]}")
    restores = {m.group(1): int(m.group(2)) for m in
                re.finditer(r"runpod-deploy: (\w+): restored .* in (\d+)s; nothing installed", out)}
    archives = {m.group(1): int(m.group(2)) for m in re.finditer(r"runpod-deploy: (\w+): archived.* in (\d+)s", out)}
    return {"kind": kind, "both": both, "phases": seen, "installed": uv_installed_counts(out),
            "downloads": out.count("runpod-deploy: downloading "), "restores": restores, "archives": archives,
            "output": out}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1, help="cold+warm pairs (default 1)")
    ap.add_argument("--empty-uv-cache", action="store_true", help="first-ever cold start: download everything")
    ap.add_argument("--timeout", type=float, default=1800)
    args = ap.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory(prefix="realpkgs-bench-") as tmp:
        for i in range(args.runs):
            d = Path(tmp) / f"run-{i}"
            d.mkdir()
            uv_cache = Path(tmp) / f"uv-cache-{i}" if args.empty_uv_cache else UV_CACHE
            h = RealHarness(d, uv_cache=uv_cache)
            h.seed_model(stack_config().models[OLMOCR].model_id)
            try:
                for kind in ("cold", "warm"):
                    if kind == "warm":
                        h.fresh_container_disk()  # a pod stop: the venvs come back from the archives
                    r = one_start(h, kind, args.timeout)
                    rows.append(r)
                    print(f"run {i + 1} {kind}: both services up after {r['both']:.1f} s", file=sys.stderr)
            finally:
                h.cleanup()

    cache = "empty (first-ever start)" if args.empty_uv_cache else f"warm ({UV_CACHE})"
    cfg = stack_config()
    print(f"\nReal vLLM {cfg.vllm_version_for(cfg.models[OLMOCR])} + Open WebUI {cfg.openwebui_version} via the "
          f"agent; uv cache {cache}; WORKSPACE and container disk both on local disk\n")
    head = (["start", "both up (s)"] + [f"{p} (s)" for p in PHASES]
            + ["uv installed", "archived vllm/webui (s)", "restored vllm/webui (s)", "downloads"])
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        cells = [r["kind"], f"{r['both']:.1f}"] + [f"{r['phases'][p]:.1f}" if p in r["phases"] else "–" for p in PHASES]
        cells += ["+".join(map(str, r["installed"])) or "0"]
        cells += ["/".join(str(r[k].get(n, "–")) for n in ("vllm", "openwebui")) for k in ("archives", "restores")]
        cells += [str(r["downloads"])]
        print("| " + " | ".join(cells) + " |")
    print("\nPhase columns: seconds from launch to that phase line. `both up`: vLLM (stand-in) ready and "
          "Open WebUI's /health 200.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
