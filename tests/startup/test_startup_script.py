"""The agent's acceptance suite: the real pod agent (the zipapp the pod gets), run against stubs
(devkit/stubs/stub.py) in a temp WORKSPACE and container disk (devkit/startup.py)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import time
import urllib.error
import urllib.request

import pytest

from devkit.startup import DEV_MODELS, OLMOCR, PHASES, QWEN, REPO, SECRETS, pid_alive, sha
from startup.agent import archive, lockfiles

READY = r"^runpod-deploy phase=ready$"
FP8 = "Qwen/Qwen3-VL-8B-Instruct-FP8"
BF16 = "Qwen/Qwen3-VL-8B-Instruct"
OLMOCR_EXTRA = ["--limit-mm-per-prompt", '{"video": 0}']
GATE = ["--middleware", "gate.Gate"]  # always last: startup/children/gate.py, in vLLM's process


def get(url: str, key: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, {}


def arg_after(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def served_names(argv: list[str]) -> list[str]:
    out = []
    for a in argv[argv.index("--served-model-name") + 1:]:
        if a.startswith("--"):
            break
        out.append(a)
    return out


def settled(run, timeout: float = 15) -> None:
    """Both phases that end a start: vLLM answers, and Open WebUI's venv is there and it was started."""
    run.wait_for(READY, timeout=timeout)
    run.wait_for(r"^runpod-deploy phase=start-webui$", timeout=timeout)


def assert_phases(run) -> None:
    """The phases in order; Open WebUI starts alongside vLLM's load, so `ready` may come before it."""
    got = run.phases()
    assert got[:5] == PHASES[:5] and sorted(got[5:]) == sorted(PHASES[5:]), got


def archive_dest(ws, venv: str):
    """The archive's base path on the volume (archive.py's `dest`): <venv>-<version>-<key hash>."""
    names = {m.group(1) for p in (ws / "venvs").iterdir()
             if (m := re.match(rf"^({re.escape(venv)}-[0-9a-f]{{12}})", p.name))}
    (name,) = names
    return ws / "venvs" / name


def uv_installs(h, records=None) -> list[list[str]]:
    """The `uv venv` / `uv pip install` calls."""
    return [r["argv"] for r in (h.records("uv") if records is None else records) if r["tool"] == "uv"]


def pip_install(root, venv: str) -> list[str]:
    """The install of venv `venv` (e.g. vllm-0.11.2) under VENV_ROOT `root`: from its lock, hashes required."""
    return ["pip", "install", "--require-hashes", "--compile-bytecode", "--python", f"{root}/{venv}/env/bin/python",
            "-r", f"{root}/{venv}/lock.txt"]


VENVS = (("vllm", "0.11.2", "3.12"), ("openwebui", "0.12.4", "3.11"), ("hf-hub", "0.36.2", "3.12"))


def test_cold_start_installs_and_downloads_once_then_warm_start_does_nothing(h):
    ws, disk = h.ws, h.venv_root
    run = h.start()
    run.wait_for(READY)
    run.wait_for(r"Open WebUI is up on port")
    assert_phases(run)
    assert run.lines[0].startswith("runpod-deploy boot=")  # first line of every boot

    # installs: three venvs on the container disk (vLLM, Open WebUI, the downloader's huggingface_hub),
    # each from its hashed lock in the pod's file bundle, bytecode compiled; each venv's own in order
    installs = uv_installs(h)
    assert len(installs) == 6
    for name, version, py in VENVS:
        venv = f"{name}-{version}"
        assert [a for a in installs if venv in str(a)] == [["venv", "--python", py, f"{disk}/{venv}/env"],
                                                            pip_install(disk, venv)]
        lock = lockfiles.repo_lock(name, version)
        digest = hashlib.sha256(lock).hexdigest()
        assert (disk / venv / "lock.txt").read_bytes() == lock
        # ... and one archive each on the volume, named after the release, the lock, the Python and the path
        key = lockfiles.archive_key(name, version, python=py, venv=f"{disk}/{venv}/env", lock_sha256=digest)
        assert archive_dest(ws, venv) == ws / "venvs" / key and archive.exists(ws / "venvs" / key)
        assert (disk / f"{venv}.complete").read_text().strip() == f"{key} lock=sha256:{digest}"
    assert not [p for p in (ws / "venvs").iterdir() if ".tmp" in p.name]

    # one download, with the hf CLI of that venv (alongside the installs), into the old /workspace/hf_cache layout
    (dl,) = h.records("hf", "huggingface-cli")
    assert dl["tool"] == "hf" and dl["argv"] == ["download", "allenai/olmOCR-2-7B-1025-FP8"]
    assert dl["env"]["HF_HOME"] == f"{ws}/hf_cache"
    assert dl["env"]["HF_HUB_CACHE"] == f"{ws}/hf_cache/hub"
    assert dl["env"]["HF_HUB_ENABLE_HF_TRANSFER"] == "0"
    assert "HF_HUB_OFFLINE" not in dl["env"]
    assert dl["env"]["HF_TOKEN"] == sha(SECRETS["HF_TOKEN"])
    assert list((ws / "hf_cache/hub/models--allenai--olmOCR-2-7B-1025-FP8").glob(".runpod-deploy-complete@*"))

    (vllm,) = h.records("vllm")
    assert vllm["argv"] == [
        "serve", "allenai/olmOCR-2-7B-1025-FP8", "--host", "0.0.0.0", "--port", str(run.vllm_port),
        "--served-model-name", "olmocr", "allenai/olmOCR-2-7B-1025-FP8",
        "--max-model-len", "16384", "--gpu-memory-utilization", "0.9", "--safetensors-load-strategy", "eager",
        "--max-cudagraph-capture-size", "256", *OLMOCR_EXTRA, *GATE,
    ]
    venv = vllm["env"]
    # the gate: the bundle's gate.py first on vLLM's PYTHONPATH
    assert venv["PYTHONPATH"] == str(h.run_dir / "pymods")
    assert (h.run_dir / "pymods/gate.py").read_bytes() == (REPO / "startup/children/gate.py").read_bytes()
    assert venv["VLLM_API_KEY"] == sha(SECRETS["VLLM_API_KEY"])  # by env, not argv
    assert venv["HF_HUB_OFFLINE"] == "1"
    assert venv["HF_HUB_CACHE"] == f"{ws}/hf_cache/hub"
    assert venv["VLLM_CACHE_ROOT"] == f"{ws}/vllm_cache/nvidia-l40s"
    assert venv["TRITON_CACHE_DIR"] == f"{ws}/vllm_cache/nvidia-l40s/triton_cache"  # Triton kernels on the volume
    assert venv["OMP_NUM_THREADS"] == "1"
    for absent in ("HF_TOKEN", "WEBUI_ADMIN_PASSWORD", "WEBUI_SECRET_KEY", "OPENAI_API_KEY", "STARTUP_B64"):
        assert absent not in venv, absent

    (webui,) = h.records("open-webui")
    data_dir = f"{ws}/open-webui/olmocr"
    assert webui["argv"] == ["serve", "--host", "0.0.0.0", "--port", str(run.webui_port)]
    assert webui["cwd"] == data_dir
    wenv = webui["env"]
    assert wenv["DATA_DIR"] == data_dir
    assert wenv["OPENAI_API_BASE_URL"] == f"http://127.0.0.1:{run.vllm_port}/v1"
    assert wenv["OPENAI_API_KEY"] == sha(SECRETS["VLLM_API_KEY"])
    assert (wenv["ENABLE_OLLAMA_API"], wenv["WEBUI_AUTH"], wenv["ENABLE_SIGNUP"]) == ("False", "True", "False")
    assert wenv["ENABLE_EVALUATION_ARENA_MODELS"] == "False"
    # every child gets a download setting that works without hf_transfer, and no Xet chunk cache
    for rec in (dl, vllm, webui):
        assert rec["env"]["HF_HUB_ENABLE_HF_TRANSFER"] == "0", rec["tool"]
        assert rec["env"]["HF_XET_CHUNK_CACHE_SIZE_BYTES"] == "0", rec["tool"]
    assert wenv["WEBUI_SECRET_KEY"] == sha(SECRETS["WEBUI_SECRET_KEY"])
    for absent in ("VLLM_API_KEY", "HF_TOKEN", "STARTUP_B64", "WEBUI_ADMIN_PASSWORD", "WEBUI_ADMIN_EMAIL"):
        assert absent not in wenv, absent
    # the admin step (Open WebUI's own code, its venv python) got the preset admin, before serve
    (admin,) = h.records("webui-admin")
    assert admin["env"]["WEBUI_ADMIN_PASSWORD"] == sha(SECRETS["WEBUI_ADMIN_PASSWORD"])
    assert admin["cwd"] == data_dir and admin["t"] < webui["t"]

    # the key reached vLLM: /v1/models needs it and lists both served names
    assert get(f"http://127.0.0.1:{run.vllm_port}/v1/models")[0] == 401
    status, body = get(f"http://127.0.0.1:{run.vllm_port}/v1/models", SECRETS["VLLM_API_KEY"])
    assert status == 200 and [m["id"] for m in body["data"]] == ["olmocr", "allenai/olmOCR-2-7B-1025-FP8"]
    assert get(f"http://127.0.0.1:{run.vllm_port}/metrics")[0] == 401  # the (stub) gate wants the key there too

    # logs: prefixed on stdout and in files per pod
    assert "[vllm] INFO stub vllm args: serve" in run.output
    assert "[vllm] WARNING stub vllm warming up" in run.output  # stderr too
    assert "stub vllm args: serve" in (ws / "logs/olmocr/vllm.log").read_text()
    assert "stub open-webui starting" in (ws / "logs/olmocr/openwebui.log").read_text()
    assert "runpod-deploy phase=ready" in (ws / "logs/olmocr/startup.log").read_text()
    assert f" {run.lines[0]}\n" in (ws / "logs/olmocr/startup.log").read_text()  # the boot line too

    assert run.stop() == 0
    assert not pid_alive(vllm["pid"]) and not pid_alive(webui["pid"])
    assert "runpod-deploy: stopped" in run.output

    # warm starts: ZERO installs and downloads; a restart that kept the container disk uses its
    # venvs, a start on a fresh container disk (a pod stop and start) restores them from the volume
    for fresh_disk in (False, True):
        if fresh_disk:
            h.fresh_container_disk()
        before = len(h.records())
        warm = h.start()
        warm.wait_for(READY)
        warm.wait_for(r"Open WebUI is up on port")  # its stub has recorded its call by then
        new = h.records()[before:]
        assert [r["tool"] for r in new if r["tool"] in ("uv", "hf", "huggingface-cli")] == []
        # the admin step runs before every start of Open WebUI
        assert sorted(r["tool"] for r in new if r["tool"] != "tar") == ["nvidia-smi", "open-webui", "vllm",
                                                                        "webui-admin"]
        restored = {v for r in new if r["tool"] == "tar" for v in ("vllm-0.11.2", "openwebui-0.12.4")
                    if v in str(r["argv"])}  # tar runs per part of an archive
        assert restored == ({"vllm-0.11.2", "openwebui-0.12.4"} if fresh_disk else set())
        (vllm2,) = [r for r in new if r["tool"] == "vllm"]
        assert vllm2["env"]["HF_HUB_OFFLINE"] == "1"
        assert vllm2["argv"][1] == "allenai/olmOCR-2-7B-1025-FP8"
        assert "warm start" in warm.output
        restored = [line for line in warm.lines if re.search(r": restored .* nothing installed$", line)]
        ready = [line for line in warm.lines if " is ready in " in line]
        assert (len(restored), len(ready)) == ((2, 0) if fresh_disk else (0, 2)), warm.output
        assert_phases(warm)
        assert warm.stop() == 0


def test_a_restored_venv_keeps_the_python_uv_downloaded(h):
    # uv puts a Python it downloads under ~/.local/share/uv by default: on the container disk, so a
    # pod stop would leave the restored venv pointing to a missing interpreter. The agent keeps it
    # next to the venv, in the archive.
    run = h.start(STUB_UV_MANAGED_PYTHON="1")
    settled(run)
    assert run.stop() == 0
    h.fresh_container_disk()
    before = len(h.records())
    warm = h.start(STUB_UV_MANAGED_PYTHON="1")
    settled(warm)
    assert uv_installs(h, h.records()[before:]) == []
    for name in ("vllm", "openwebui"):
        python = (h.venv(name) / "bin" / "python").resolve()
        assert python.is_file() and h.venv_root in (h.venv(name) / "bin" / "python").readlink().parents
    assert not (h.disk / "home" / ".local/share/uv").exists()
    warm.stop()


@pytest.mark.parametrize("damage", ["missing", "truncated", "corrupt", "checksum-missing", "moved"])
def test_a_missing_or_corrupt_archive_is_rebuilt(h, damage):
    run = h.start()
    settled(run)
    assert run.stop() == 0
    h.fresh_container_disk()
    dest = archive_dest(h.ws, "vllm-0.11.2")
    files = sorted(h.ws.glob("venvs/vllm-0.11.2-*"), key=lambda p: p.stat().st_size)
    data, others = files[-1], [f for f in files[:-1] if not f.name.endswith(".lock")]
    overrides = {}
    if damage == "missing":
        for f in files:
            f.unlink()
    elif damage == "truncated":
        data.write_bytes(data.read_bytes()[:1000])
    elif damage == "corrupt":  # same size, not what was written
        data.write_bytes(b"x" * data.stat().st_size)
    elif damage == "checksum-missing":  # e.g. a pod stopped while writing the archive
        for f in others:
            f.unlink()
    else:  # a venv only works at the path it was created at
        overrides["VENV_ROOT"] = str(h.disk / "elsewhere")
    before = len(h.records())
    warm = h.start(**overrides)
    settled(warm)
    installs = uv_installs(h, h.records()[before:])
    venv_root = overrides.get("VENV_ROOT", str(h.venv_root))
    assert pip_install(venv_root, "vllm-0.11.2") in installs
    assert ("openwebui-0.12.4" in str(installs)) == (damage == "moved")
    assert "vllm: archived" in warm.output
    if damage == "corrupt":  # a part of the recorded size but other bytes: its checksum says so
        assert re.search(r"^runpod-deploy error=vllm: .*: rebuilding it$", warm.output, re.M)
    elif damage == "truncated":  # a part shorter than recorded: archive.exists() sees an unfinished archive
        assert "vllm: no archive of vllm==0.11.2 on the volume" in warm.output
    assert archive.exists(archive_dest(h.ws, "vllm-0.11.2") if damage != "moved" else dest)
    assert warm.stop() == 0


def test_the_download_runs_alongside_the_installs_and_vllm_does_not_wait_for_open_webui(h):
    run = h.start(STUB_UV_SLEEP="2", STUB_HF_SLEEP="1")  # each `uv pip install` takes 2 s (the downloader's: 0)
    settled(run, timeout=30)
    (dl,) = h.records("hf")
    # `tar -c` of a venv runs once its install is done (the archive for the next starts)
    packed = {name: min(r["t"] for r in h.records("tar") if "-cf" in r["argv"] and name in str(r["argv"]))
              for name in ("vllm-0.11.2", "openwebui-0.12.4")}
    (vllm,) = h.records("vllm")
    assert dl["t"] < packed["vllm-0.11.2"], "the download waited for the installs"
    assert vllm["t"] < packed["openwebui-0.12.4"], "vLLM waited for Open WebUI's install"
    assert run.output.index("downloading allenai/olmOCR-2-7B-1025-FP8 alongside the installs") < \
        run.output.index("runpod-deploy phase=install-vllm")
    assert_phases(run)
    run.stop()


def test_a_failing_download_stops_the_setup_at_once(h):
    run = h.start(STUB_HF_FAIL="1", STUB_UV_SLEEP="60")
    assert run.wait_exit(timeout=30) == 1
    assert "runpod-deploy error=download of allenai/olmOCR-2-7B-1025-FP8 failed; see " in run.output
    assert [r for r in h.records("uv") if "openwebui-0.12.4" in str(r["argv"])] == []  # the installs stopped
    assert h.records("vllm", "open-webui") == []
    for rec in h.records("uv"):
        assert not pid_alive(rec["pid"]), "the install that was running is stopped too"


def test_killed_vllm_is_restarted(h):
    run = h.start()
    run.wait_for(READY)
    run.wait_for(r"Open WebUI is up")  # started after its admin step
    first = h.records("vllm")[0]["pid"]
    os.kill(first, signal.SIGKILL)
    run.wait_for(r"^runpod-deploy error=vllm exited with status 137; restart 1/5 in 1s$")
    second = h.wait_records("vllm", 2)[1]
    assert second["pid"] != first and pid_alive(second["pid"])
    assert second["argv"] == h.records("vllm")[0]["argv"]
    run.wait_for(READY, count=2)  # ready again once the new vLLM answers /health
    assert len(h.records("open-webui")) == 1  # the other service was left alone
    assert run.stop() == 0
    assert not pid_alive(second["pid"])


def test_service_that_keeps_failing_is_given_up_but_pod_stays_up(h):
    run = h.start(STUB_VLLM_FAIL="1", MAX_RESTARTS="2")
    run.wait_for(r"^runpod-deploy error=vllm keeps failing \(exit status 3 after 2 restarts\): no more restarts",
                 timeout=20)
    assert len(h.records("vllm")) == 3  # first run + 2 restarts (after 1 s, then 2 s)
    assert "restart 1/2 in 1s" in run.output and "restart 2/2 in 2s" in run.output
    time.sleep(1)
    assert run.proc.poll() is None, "the script must stay alive for inspection"
    assert len(h.records("vllm")) == 3
    assert "phase=ready" not in run.output
    assert run.lines[-1] == "runpod-deploy phase=failed" or "runpod-deploy phase=failed" in run.lines
    assert run.stop() == 0


def test_missing_vllm_api_key_stops_with_a_clear_message(h):
    run = h.start(without=["VLLM_API_KEY"])
    assert run.wait_exit() == 2
    assert "runpod-deploy error=VLLM_API_KEY is not set: refusing to start vLLM" in run.output
    assert h.records() == []  # nothing installed, downloaded or started


# What each GPU of the preference list (and a card not in it) gets, per model of Pulumi.dev.yaml:
# the exact `vllm` argv after `--served-model-name <name>`. Written out by hand, on purpose: this is
# what the config means (an exact profile key, else `default`), not a copy of the selection logic.
# Every GPU: the weights are read whole from the network volume (`--safetensors-load-strategy eager`).
OLMOCR_BASE = ["olmocr", "allenai/olmOCR-2-7B-1025-FP8", "--max-model-len", "16384",
               "--gpu-memory-utilization", "0.9", "--safetensors-load-strategy", "eager"]
OLMOCR_DEFAULT = [*OLMOCR_BASE, "--max-cudagraph-capture-size", "256", "--limit-mm-per-prompt", '{"video": 0}']
QWEN_DEFAULT = ["qwen3-vl", BF16, "--max-model-len", "32768", "--gpu-memory-utilization", "0.9",
                "--safetensors-load-strategy", "eager", "--max-cudagraph-capture-size", "128",
                "--limit-mm-per-prompt", '{"image": 4, "video": 0}', "--async-scheduling"]
GPUS = {  # nvidia-smi's line -> the GPU slug of the compile cache
    "NVIDIA L40S, 46068 MiB": "nvidia-l40s",
    "NVIDIA A100 80GB PCIe, 81920 MiB": "nvidia-a100-80gb-pcie",
    "NVIDIA GeForce RTX 4090, 24564 MiB": "nvidia-geforce-rtx-4090",
    "NVIDIA H100 80GB HBM3, 81559 MiB": "nvidia-h100-80gb-hbm3",  # not in the preference list
}
EXPECTED = {
    (OLMOCR, "NVIDIA L40S"): OLMOCR_DEFAULT,
    (OLMOCR, "NVIDIA A100 80GB PCIe"): OLMOCR_DEFAULT,
    (OLMOCR, "NVIDIA GeForce RTX 4090"): [*OLMOCR_BASE, "--max-cudagraph-capture-size", "64",
                                          "--limit-mm-per-prompt", '{"video": 0}', "--max-num-seqs", "64"],
    (OLMOCR, "NVIDIA H100 80GB HBM3"): OLMOCR_DEFAULT,
    (QWEN, "NVIDIA L40S"): QWEN_DEFAULT,
    (QWEN, "NVIDIA A100 80GB PCIe"): QWEN_DEFAULT,
    (QWEN, "NVIDIA GeForce RTX 4090"): ["qwen3-vl", FP8, "--max-model-len", "16384", "--gpu-memory-utilization",
                                        "0.92", "--safetensors-load-strategy", "eager",
                                        "--max-cudagraph-capture-size", "128",
                                        "--limit-mm-per-prompt", '{"image": 2, "video": 0}', "--async-scheduling"],
    (QWEN, "NVIDIA H100 80GB HBM3"): QWEN_DEFAULT,
}


def test_the_expectations_cover_every_model_and_preferred_gpu():
    from runpod_deploy.schema import DEFAULT_GPU_TYPES
    assert {m for m, _ in EXPECTED} == set(DEV_MODELS)
    assert [g.split(",")[0] for g in GPUS][:3] == DEFAULT_GPU_TYPES


@pytest.mark.parametrize(("model", "gpu"), [(m, g) for m in (OLMOCR, QWEN) for g in GPUS])
def test_each_gpu_gets_the_exact_vllm_command_its_profile_means(h, model, gpu):
    run = h.start(model, STUB_GPU=gpu)
    (vllm,) = h.wait_records("vllm", 1)
    expected = EXPECTED[(model, gpu.split(",")[0])]
    served = expected[1]
    assert vllm["argv"] == ["serve", served, "--host", "0.0.0.0", "--port", str(run.vllm_port),
                            "--served-model-name", *expected, *GATE]
    assert vllm["env"]["VLLM_CACHE_ROOT"] == f"{h.ws}/vllm_cache/{GPUS[gpu]}"
    assert [r["argv"] for r in h.records("hf")] == [["download", served]]
    assert h.records("nvidia-smi")[0]["argv"] == ["--query-gpu=name,memory.total", "--format=csv,noheader"]
    run.stop()


def test_unknown_gpu_uses_default_profile_and_extra_args_come_last(h):
    profiles = {**DEV_MODELS[QWEN]["gpuProfiles"],
                "default": {"maxModelLen": 8192, "gpuMemoryUtilization": 0.8, "extraArgs": ["--enforce-eager"]}}
    run = h.start(QWEN, settings={"gpuProfiles": profiles, "vllmArgs": ["--max-num-seqs", "32"],
                                  "revision": "abc123"},
                  STUB_GPU="NVIDIA RTX A4000, 16376 MiB")
    (vllm,) = h.wait_records("vllm", 1)
    argv = vllm["argv"]
    assert argv[1] == BF16
    assert argv[argv.index("--revision"):] == [
        "--revision", "abc123", "--max-model-len", "8192", "--gpu-memory-utilization", "0.8",
        "--safetensors-load-strategy", "eager", "--enforce-eager", "--max-num-seqs", "32", *GATE,
    ]
    assert [r["argv"] for r in h.records("hf")] == [["download", BF16, "--revision", "abc123"]]
    assert "-> profile 'default' (no profile named after this GPU)" in run.output
    run.stop()


def test_a_profile_inheriting_from_default_is_served_with_the_merged_values(h):
    # The 4090 profile gives only its checkpoint: context, memory share and args come from default;
    # the model's revision is not applied to another checkpoint.
    run = h.start(QWEN, settings={"revision": "abc123", "gpuProfiles": {
        "default": {"maxModelLen": 12288, "gpuMemoryUtilization": 0.85, "extraArgs": ["--enforce-eager"]},
        "NVIDIA GeForce RTX 4090": {"modelId": FP8}}}, STUB_GPU="NVIDIA GeForce RTX 4090, 24564 MiB")
    (vllm,) = h.wait_records("vllm", 1)
    assert vllm["argv"][vllm["argv"].index("--served-model-name"):] == [
        "--served-model-name", "qwen3-vl", FP8, "--max-model-len", "12288", "--gpu-memory-utilization", "0.85",
        "--safetensors-load-strategy", "eager", "--enforce-eager", *GATE]
    assert [r["argv"] for r in h.records("hf")] == [["download", FP8]]
    run.stop()


def test_no_matching_profile_and_no_default_is_an_error(h):
    # Config refuses a model whose GPU types lack a profile and a default; this pod's GPU is outside them.
    profiles = {g: {"maxModelLen": 8192} for g in ("NVIDIA L40S", "NVIDIA A100 80GB PCIe", "NVIDIA GeForce RTX 4090")}
    run = h.start(QWEN, settings={"gpuProfiles": profiles}, STUB_GPU="NVIDIA RTX A4000, 16376 MiB")
    assert run.wait_exit() == 2
    assert re.search(r'runpod-deploy error=no GPU profile for .NVIDIA RTX A4000. \(16376 MiB\)', run.output)
    assert h.records("uv", "hf", "vllm") == []


@pytest.mark.parametrize("var", ["WORKSPACE", "POD_LABEL", "MODEL_ID", "SERVED_MODEL_NAME", "GPU_PROFILES_JSON",
                                 "VLLM_VERSION", "OPENWEBUI_VERSION"])
def test_a_missing_required_setting_stops_the_agent_naming_it(h, var):
    run = h.start(without=[var])
    assert run.wait_exit() == 2
    assert f"runpod-deploy error={var} is not set: the pod env must give it" in run.output
    assert h.records() == []


def test_a_profile_field_the_agent_does_not_use_stops_it(h):
    # A field added to the schema but not to the agent must not be dropped silently.
    env = json.loads(h.env()["GPU_PROFILES_JSON"])
    env["default"]["maxNumSeqs"] = 8
    run = h.start(GPU_PROFILES_JSON=json.dumps(env))
    assert run.wait_exit() == 2
    assert "does not use: ['maxNumSeqs']" in run.output
    assert "runpod-deploy phase=failed" in run.lines
    assert h.records("uv", "hf", "vllm") == []


def make_local_copy(path, *, shards=("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")):
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    for shard in shards:
        (path / shard).write_text("w")
    return path


def test_complete_model_local_dir_is_served_without_download(h):
    local = make_local_copy(h.ws / "models/qwen3-vl-8b")
    run = h.start(QWEN, settings={"localDir": str(local)})
    run.wait_for(READY)
    (vllm,) = h.records("vllm")
    assert vllm["argv"][:2] == ["serve", str(local)]
    assert served_names(vllm["argv"]) == ["qwen3-vl", BF16]
    assert h.records("hf", "huggingface-cli") == []
    assert "serving the complete local copy" in run.output
    run.stop()


@pytest.mark.parametrize("defect", ["missing-shard", "incomplete-download", "no-config"])
def test_incomplete_model_local_dir_falls_back_to_the_hub_cache(h, defect):
    local = h.ws / "models/qwen3-vl-8b"
    if defect == "missing-shard":
        make_local_copy(local, shards=("model-00001-of-00002.safetensors",))
    else:
        make_local_copy(local)
        if defect == "incomplete-download":
            (local / ".cache/huggingface/download").mkdir(parents=True)
            (local / ".cache/huggingface/download/model-00002-of-00002.safetensors.incomplete").write_text("")
        else:
            (local / "config.json").unlink()
    run = h.start(QWEN, settings={"localDir": str(local)})
    (vllm,) = h.wait_records("vllm", 1)
    assert vllm["argv"][1] == BF16
    assert [r["argv"] for r in h.records("hf")] == [["download", BF16]]
    run.stop()


def test_model_local_dir_is_not_used_when_the_gpu_profile_serves_another_model(h):
    local = make_local_copy(h.ws / "models/qwen3-vl-8b")
    run = h.start(QWEN, settings={"localDir": str(local)}, STUB_GPU="NVIDIA GeForce RTX 4090, 24564 MiB")
    (vllm,) = h.wait_records("vllm", 1)
    assert vllm["argv"][1] == FP8
    assert [r["argv"] for r in h.records("hf")] == [["download", FP8]]
    run.stop()


def test_no_secret_in_stdout_logs_or_argv(h):
    run = h.start()
    run.wait_for(READY)
    run.wait_for(r"Open WebUI is up")
    os.kill(h.records("vllm")[0]["pid"], signal.SIGKILL)  # the restart path logs too
    run.wait_for(READY, count=2)
    assert run.stop() == 0
    texts = {"stdout": run.output}
    for root in (h.ws / "logs", h.run_dir):
        for f in root.rglob("*"):
            if f.is_file():
                texts[str(f)] = f.read_text(errors="replace")
    assert any(name.endswith("vllm.log") for name in texts) and any(name.endswith("openwebui.log") for name in texts)
    for name, text in texts.items():
        for key, value in SECRETS.items():
            assert value not in text, f"{key} leaked into {name}"
    for rec in h.records():
        for key, value in SECRETS.items():
            assert not any(value in a for a in rec["argv"]), f"{key} on the argv of {rec['tool']}"


def test_phase_lines_are_exact_and_in_order(h):
    run = h.start()
    settled(run)
    phase_lines = [line for line in run.lines if line.startswith("runpod-deploy phase")]
    assert all(line in [f"runpod-deploy phase={p}" for p in PHASES] for line in phase_lines)
    assert_phases(run)
    run.stop()


def test_unfinished_install_is_redone(h):
    venv = h.venv_root / "vllm-0.11.2"
    (venv / "env/bin").mkdir(parents=True)
    (venv / "half-written").write_text("x")
    run = h.start()
    h.wait_records("vllm", 1)
    assert f"removing the unfinished install in {venv}" in run.output
    assert not (venv / "half-written").exists()
    assert ["venv", "--python", "3.12", f"{venv}/env"] in [r["argv"] for r in h.records("uv")]
    run.stop()


def test_failed_download_is_retried_then_reported(h):
    run = h.start(STUB_HF_FAIL="1", INSTALL_ATTEMPTS="2")
    assert run.wait_exit() == 1
    assert len(h.records("hf")) == 2
    assert "runpod-deploy error=download of allenai/olmOCR-2-7B-1025-FP8 failed" in run.output
    assert h.records("vllm") == []
    assert not list((h.ws / "hf_cache/hub").rglob(".runpod-deploy-complete@*"))


def test_open_webui_is_not_started_without_a_preset_admin(h):
    run = h.start(without=["WEBUI_ADMIN_PASSWORD"])
    run.wait_for(READY)
    assert "runpod-deploy error=WEBUI_ADMIN_EMAIL and WEBUI_ADMIN_PASSWORD are not both set" in run.output
    assert h.records("open-webui") == []
    assert all("openwebui-0.12.4" not in str(r["argv"]) for r in h.records("uv"))
    run.stop()


def test_a_second_copy_in_the_same_container_leaves_the_first_alone(h):
    first = h.start()
    first.wait_for(READY)
    second = h.start()
    assert second.wait_exit() == 0
    assert "already runs in this container" in second.output
    assert second.lines[0].startswith("runpod-deploy boot=")
    assert len(h.records("vllm")) == 1 and first.proc.poll() is None
    first.stop()


# ------------------------------------------------------------------ what each child gets, and the shared volume
# Keys every child gets (the harness passes the stubs' STUB_* knobs through AGENT_PASS_ENV, a test knob).
COMMON = {"PATH", "HOME", "LANG", "PYTHONUNBUFFERED", "PWD"}
SECRET_NAMES = {"VLLM_API_KEY", "HF_TOKEN", "WEBUI_ADMIN_PASSWORD", "WEBUI_SECRET_KEY", "WEBUI_ADMIN_EMAIL",
                "OPENAI_API_KEY", "RUNPOD_API_KEY"}


def own_keys(rec) -> set[str]:
    return {k for k in rec["env"] if k not in COMMON and not k.startswith("STUB_")}


def test_each_child_gets_only_the_env_it_needs(h):
    run = h.start(RUNPOD_POD_ID="pod1", RUNPOD_API_KEY="rpa_pod_SECRET_77",
                  settings={"allowedMediaDomains": ["images.example.com"]})
    settled(run)
    run.wait_for(r"Open WebUI is up")
    assert run.stop() == 0
    by_tool: dict[str, list[dict]] = {}
    for rec in h.records():
        by_tool.setdefault(rec["tool"], []).append(rec)
    uv_env = {"UV_CACHE_DIR", "UV_LINK_MODE"}
    hf = {"HF_HOME", "HF_HUB_CACHE", "HF_HUB_ENABLE_HF_TRANSFER", "HF_XET_CHUNK_CACHE_SIZE_BYTES"}
    for rec in [r for r in by_tool["uv"] if r["argv"][0] != "tool"]:  # installers: no secret at all
        assert own_keys(rec) == uv_env | {"UV_PYTHON_INSTALL_DIR"}, rec["argv"]
        # uv's cache on the container disk, never the image's /workspace/.cache/uv
        assert rec["env"]["UV_CACHE_DIR"] == str(h.disk / "uv-cache") and rec["env"]["UV_LINK_MODE"] == "hardlink"
    (dl,) = by_tool["hf"]
    assert own_keys(dl) == hf | {"HF_TOKEN", "HF_XET_HIGH_PERFORMANCE", "HF_HUB_DISABLE_PROGRESS_BARS"}
    (vllm,) = by_tool["vllm"]
    assert own_keys(vllm) & SECRET_NAMES == {"VLLM_API_KEY"}
    # the gate's settings reach vLLM's process only
    assert vllm["env"]["GATE_MEDIA_DOMAINS"] == "images.example.com"
    assert [r["tool"] for r in h.records() if "GATE_MEDIA_DOMAINS" in r["env"]] == ["vllm"]
    (webui,) = by_tool["open-webui"]
    assert own_keys(webui) & SECRET_NAMES == {"OPENAI_API_KEY", "WEBUI_SECRET_KEY"}
    (admin,) = by_tool["webui-admin"]
    # (FROM_INIT_PY: webui_admin.py sets it in its own process, as `open-webui serve` does)
    assert own_keys(admin) - own_keys(webui) == {"WEBUI_ADMIN_EMAIL", "WEBUI_ADMIN_PASSWORD", "FROM_INIT_PY"}
    for rec in by_tool["tar"] + by_tool["nvidia-smi"]:  # started without an allowlist: still no secret
        assert not own_keys(rec) & SECRET_NAMES and "STARTUP_B64" not in rec["env"], rec["tool"]
    for rec in h.records():  # the pod-scoped key reaches no child at all, nor the image's volume paths
        assert "RUNPOD_API_KEY" not in rec["env"] and "rpa_pod_SECRET_77" not in json.dumps(rec), rec["tool"]
        assert not rec["env"].get("UV_CACHE_DIR", "").startswith("/workspace"), rec["tool"]
        assert not rec["env"].get("HF_HOME", "").startswith("/workspace/.cache"), rec["tool"]


def test_the_admin_step_runs_before_every_start_and_sets_a_changed_password(h):
    data = h.ws / "open-webui/olmocr"
    users = data / "stub-users.json"
    starts = 0
    for i, password in enumerate(["Pw-SECRET-44b0!", "Pw-SECRET-44b0!", "Pw-NEW-SECRET-9"]):
        run = h.start(WEBUI_ADMIN_PASSWORD=password)
        settled(run)
        run.wait_for(r"Open WebUI is up")
        starts += 1
        (user,) = json.loads(users.read_text()).values()
        assert user["role"] == "admin" and user["password"] == "stub:" + sha(password).split(":")[1]
        assert len(h.records("webui-admin")) == len(h.records("open-webui")) == starts, run.output
        # webui_admin.py changes the password only when it no longer signs in
        assert ("password set from WEBUI_ADMIN_PASSWORD" in run.output) == (i == 2), run.output
        assert ("admin created" in run.output) == (i == 0)
        if i == 0:  # a restart of Open WebUI runs the step again, before it
            os.kill(h.records("open-webui")[0]["pid"], signal.SIGKILL)
            second = h.wait_records("open-webui", 2)[1]
            starts += 1
            admin = h.records("webui-admin")
            assert len(admin) == 2 and admin[1]["t"] < second["t"]
        assert run.stop() == 0
        assert password not in run.output


def test_a_failing_admin_step_keeps_open_webui_down(h):
    # A fresh data dir without its admin would let the first visitor sign up as admin.
    run = h.start(STUB_WEBUI_ADMIN_FAIL="1", MAX_RESTARTS="1")
    run.wait_for(r"^runpod-deploy error=openwebui not started: its admin step failed \(exit status 1", timeout=20)
    run.wait_for(r"^runpod-deploy error=openwebui keeps failing", timeout=20)
    assert h.records("open-webui") == []
    assert len([line for line in run.lines if "openwebui not started: its admin step failed" in line]) == 2
    assert run.proc.poll() is None and "runpod-deploy phase=ready" in run.lines  # vLLM serves on
    run.stop()


def test_a_damaged_compile_cache_index_is_moved_aside_before_vllm_starts(h):
    index = h.ws / "vllm_cache/nvidia-l40s/torch_compile_cache/abc/rank_0_0/backbone/vllm_compile_cache.py"
    index.parent.mkdir(parents=True)
    index.write_text("{(1, 'x'): 'cut sho")
    run = h.start()
    run.wait_for(READY)
    assert not index.exists() and list(index.parent.glob("vllm_compile_cache.py.bad-*"))
    assert run.output.index("compile-cache index") < run.output.index("runpod-deploy phase=start-vllm")
    run.stop()


def test_two_quick_vllm_crashes_retry_once_without_the_compile_cache(h):
    run = h.start(STUB_VLLM_FAIL="1", MAX_RESTARTS="3")
    run.wait_for(r"^runpod-deploy error=vllm keeps failing", timeout=30)
    flags = [r["env"].get("VLLM_DISABLE_COMPILE_CACHE") for r in h.records("vllm")]
    assert flags == [None, None, "1", None]
    run.stop()


def test_open_webui_skips_the_hub_once_its_embedding_model_is_on_the_volume(h):
    snap = h.ws / "hf_cache/hub/models--sentence-transformers--all-MiniLM-L6-v2/snapshots/abc"
    run = h.start()
    settled(run)
    assert "RAG_EMBEDDING_MODEL_AUTO_UPDATE" not in h.wait_records("open-webui", 1)[0]["env"]  # first: fetch it
    assert run.stop() == 0
    snap.mkdir(parents=True)
    run = h.start()
    settled(run)
    assert h.wait_records("open-webui", 2)[1]["env"]["RAG_EMBEDDING_MODEL_AUTO_UPDATE"] == "False"
    run.stop()


def test_without_the_file_bundle_the_agent_stops_before_installing(h):
    # gate.py and the locks come in RUNPOD_DEPLOY_FILES: vLLM never starts without its gate.
    run = h.start(without=["RUNPOD_DEPLOY_FILES"])
    assert run.wait_exit() == 1
    assert re.search(r"^runpod-deploy error=cannot provide gate.py: env RUNPOD_DEPLOY_FILES is not set", run.output,
                     re.M)
    assert h.records("uv", "hf", "vllm") == []


@pytest.mark.parametrize("flock", ["excludes", "does-not-exclude"])
def test_two_pods_cold_starting_on_one_volume_download_once_and_leave_one_valid_archive(tmp_path, flock):
    """As on RunPod: both pods' venvs are at the same VENV_ROOT path (each on its own container disk),
    so they compute the same archive key and race to write the same archive on the shared volume.
    `does-not-exclude`: the volume's flock does not hold across hosts (unconfirmed on RunPod), played by
    LOCK_WAIT_S=0, so both pods install and pack the same archive at once (archive.py's no-lock race)."""
    from devkit.startup import Harness, shared_venv_root_unsupported
    if reason := shared_venv_root_unsupported():
        pytest.skip(f"two sandboxes with the same VENV_ROOT path need a bind mount each: {reason}")
    shared = tmp_path / "opt-runpod-deploy-venvs"  # the one path both agents see as VENV_ROOT
    (tmp_path / "pod1").mkdir()
    (tmp_path / "pod2").mkdir()
    pods = [Harness(tmp_path / "pod1", venv_root=shared), Harness(tmp_path / "pod2", venv_root=shared)]
    pods[1].ws.rmdir()
    pods[1].ws.symlink_to(pods[0].ws)  # the same network volume, another container disk
    vol = pods[0].ws / "venvs"
    try:
        # without the lock, slower installs keep the two pods' installs overlapping even on a loaded runner
        knobs = {"LOCK_WAIT_S": "0", "STUB_UV_SLEEP": "2"} if flock == "does-not-exclude" else {"STUB_UV_SLEEP": "1"}
        runs = [pod.start(STUB_HF_SLEEP="1", **knobs) for pod in pods]
        for run in runs:
            settled(run, timeout=60)
        for run in runs:
            assert run.stop() == 0
        # each pod installed into its own disk, at the shared path (nothing landed at the path itself)
        assert all(pod.venv("vllm").is_dir() and pod.venv("openwebui").is_dir() for pod in pods)
        assert not shared.exists() or list(shared.iterdir()) == []
        files = sorted(p.name for p in vol.iterdir())
        for venv in ("vllm-0.11.2", "openwebui-0.12.4"):
            mine = [n for n in files if n.startswith(venv + "-")]
            # the same key: one archive (one manifest), whose parts are all there is besides it
            manifests = [n for n in mine if n.endswith(".manifest.json")]
            assert len(manifests) == 1, files
            dest = vol / manifests[0].removesuffix(".manifest.json")
            assert archive.exists(dest), files
            named = {part["name"] for part in json.loads((vol / manifests[0]).read_text())["parts"]}
            parts = {n for n in mine if re.fullmatch(re.escape(dest.name) + r"\..+\.p\d+\.tar(\.zst)?", n)}
            # without the lock both pods pack the key: the one that commits second drops its own parts
            assert parts == named, f"parts no manifest names (another writer's) left on the volume: {files}"
            assert [n for n in mine if ".tmp" in n] == [], files
            # and it unpacks (every part's sha256 checked)
            archive.unpack(dest, tmp_path / f"unpacked-{venv}", log=lambda _: None)
            assert (tmp_path / f"unpacked-{venv}" / "env" / "bin" / "python").exists()
            installs = [pod for pod in pods if pip_install(shared, venv) in uv_installs(pod)]
            if flock == "excludes":  # one pod installs and packs, the other waits and restores
                assert len(installs) == 1, [uv_installs(pod) for pod in pods]
            else:  # both went on without the lock: both installed and packed, one manifest won
                assert len(installs) == 2, [uv_installs(pod) for pod in pods]
        if flock == "excludes":
            # the same model: one pod downloads it, the other waits for the lock and finds it complete
            assert sum(len(pod.records("hf")) for pod in pods) == 1
            assert "was downloaded meanwhile (another pod)" in runs[0].output + runs[1].output
        # a third start on a fresh disk (same VENV_ROOT path, so the same key) restores: no install
        pods[0].fresh_container_disk()
        before = len(pods[0].records())
        warm = pods[0].start()
        settled(warm)
        assert uv_installs(pods[0], pods[0].records()[before:]) == []
        assert "runpod-deploy phase=failed" not in warm.lines
        warm.stop()
    finally:
        for pod in pods:
            pod.cleanup()


def test_a_signal_during_setup_stops_every_child_and_the_agent(h):
    hold = h.tmp / "hold"
    hold.write_text("installing")
    run = h.start(STUB_HOLD=hold)
    run.wait_for(r"^runpod-deploy phase=install-vllm$")
    (install,) = h.wait_records("uv", 2)[-1:]  # the vLLM install (and the download) waiting on the hold
    assert run.stop() == 143
    assert "runpod-deploy error=stopped by a signal during setup" in run.lines
    assert "runpod-deploy phase=failed" not in run.lines  # not a failure of the pod: it was stopped
    time.sleep(0.5)
    assert all(not pid_alive(r["pid"]) for r in h.records("uv", "hf")), "a child outlived the agent"
    assert install["argv"][0] in ("venv", "tool")
