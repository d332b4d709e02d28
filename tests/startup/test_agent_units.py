"""Unit tests of the pod agent's small parts (startup/agent/): settings, GPU profile, each child's env,
supervision (a failing step before a start), the log writer, the venv restore's failure paths and
locks, the compile-cache guard, the file bundle, and the gate and idle wiring."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest

from startup.agent import archive, bundle, childenv, lockfiles, main, output, proc, profile, services, settings, venvs
from startup.agent.settings import SetupFailed

SECRET_VALUES = {"VLLM_API_KEY": "vk-1", "HF_TOKEN": "hf-1", "WEBUI_ADMIN_PASSWORD": "pw-1",
                 "WEBUI_SECRET_KEY": "wsk-1", "RUNPOD_API_KEY": "rpa-1"}
# The pod's file bundle, as the provider renders it for these versions (bundle.py).
FILES = bundle.encode_env([("vllm", "0.11.2"), ("openwebui", "0.12.4"), ("hf-hub", lockfiles.HF_HUB_VERSION)])
PROFILES = {"default": {"modelId": "org/m", "maxModelLen": 8192, "gpuMemoryUtilization": 0.9, "extraArgs": ["--x"]},
            "NVIDIA GeForce RTX 4090": {"modelId": "org/m-FP8", "maxModelLen": 4096, "gpuMemoryUtilization": 0.92,
                                        "extraArgs": [], "maxCudagraphCaptureSize": 64, "revision": ""}}


def pod_env(**over) -> dict[str, str]:
    env = {"WORKSPACE": "/ws", "POD_LABEL": "m", "MODEL_ID": "org/m", "SERVED_MODEL_NAME": "m",
           "GPU_PROFILES_JSON": json.dumps(PROFILES), "VLLM_VERSION": "0.11.2", "OPENWEBUI_VERSION": "0.12.4",
           "WEBUI_ADMIN_EMAIL": "a@b.c", "PATH": "/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
           "UV_CACHE_DIR": "/workspace/.cache/uv", "HF_HOME": "/workspace/.cache/huggingface",
           "HF_HUB_ENABLE_HF_TRANSFER": "1", "STARTUP_B64": "x", "RUNPOD_POD_ID": "p1",
           bundle.FILES_ENV: FILES, **SECRET_VALUES}
    env.update(over)
    return {k: v for k, v in env.items() if v is not None}


# ------------------------------------------------------------------ settings and profile
def test_settings_defaults_and_knobs():
    s = settings.load(pod_env(RESTART_BACKOFF_S="0.5"))
    assert (s.RESTART_BACKOFF_S, s.MAX_RESTARTS, s.VLLM_PORT, s.STOP_TIMEOUT_S) == (0.5, 5, 8000, 30)
    assert s.uv_cache == Path("/opt/runpod-deploy/uv-cache") and s.venv_root == Path("/opt/runpod-deploy/venvs")
    assert s.hf_home == Path("/ws/hf_cache") and s.log_dir == Path("/ws/logs/m")
    assert s.pod_key == "rpa-1" and s.idle_minutes is None and s.webui_enabled


@pytest.mark.parametrize(("over", "message"), [
    ({"VLLM_API_KEY": None}, "VLLM_API_KEY is not set"),
    ({"MODEL_ID": ""}, "MODEL_ID is not set: the pod env must give it"),
    ({"POD_LABEL": "a b"}, "POD_LABEL must be a short name"),
    ({"VENV_ROOT": "rel"}, "VENV_ROOT must be an absolute path"),
    ({"MAX_RESTARTS": "2.5"}, "MAX_RESTARTS must be a whole number"),
    ({"HEALTH_INTERVAL_S": "soon"}, "HEALTH_INTERVAL_S must be a number of seconds"),
    ({"VLLM_VERSION": "0.11;rm"}, "VLLM_VERSION is not a version"),
    ({"IDLE_STOP_MINUTES": "0"}, "IDLE_STOP_MINUTES must be a whole number of minutes (1 or more)"),
    ({"AGENT_PASS_ENV": "STUB_LOG,HF_TOKEN"}, "AGENT_PASS_ENV must not name a secret"),
])
def test_settings_refuse_what_is_wrong_naming_it(over, message):
    with pytest.raises(SetupFailed) as err:
        settings.load(pod_env(**over))
    assert err.value.code == 2 and message in err.value.text


def test_profile_by_exact_gpu_name_else_default():
    c = profile.choose(json.dumps(PROFILES), '["--y"]', "NVIDIA GeForce RTX 4090, 24564 MiB")
    assert (c.key, c.gpu_mib, c.slug, c.model_id) == ("NVIDIA GeForce RTX 4090", 24564, "nvidia-geforce-rtx-4090",
                                                       "org/m-FP8")
    assert c.args == ["--max-cudagraph-capture-size", "64", "--y"]
    d = profile.choose(json.dumps(PROFILES), "[]", "NVIDIA L40S, 46068 MiB")
    assert (d.key, d.reason) == ("default", "no profile named after this GPU")
    assert profile.vllm_argv(d, serve_ref="org/m", served_name="m", port=1) == [
        "serve", "org/m", "--host", "0.0.0.0", "--port", "1", "--served-model-name", "m", "org/m", "--max-model-len",
        "8192", "--gpu-memory-utilization", "0.9", "--safetensors-load-strategy", "eager", "--x"]


@pytest.mark.parametrize(("profiles", "message"), [
    ("{", "GPU_PROFILES_JSON is not valid JSON"),
    ('{"default": {"modelId": "m", "maxModelLen": 1, "gpuMemoryUtilization": 0.5, "extraArgs": [], "new": 1}}',
     "fields this agent does not use: ['new']"),
    ('{"default": {"modelId": "m", "maxModelLen": 0, "gpuMemoryUtilization": 0.5, "extraArgs": []}}',
     "maxModelLen must be a positive integer"),
    ('{"A": {"modelId": "m", "maxModelLen": 1, "gpuMemoryUtilization": 0.5, "extraArgs": []}}',
     "no GPU profile for 'NVIDIA L40S' (46068 MiB)"),
])
def test_profile_errors(profiles, message):
    with pytest.raises(SetupFailed) as err:
        profile.choose(profiles, "[]", "NVIDIA L40S, 46068 MiB")
    assert message in err.value.text


# ------------------------------------------------------------------ each child's env
COMMON = {"PATH", "HOME", "LANG", "PYTHONUNBUFFERED"}


def test_each_child_env_is_its_allowlist():
    s = settings.load(pod_env(SSL_CERT_FILE="/ca.pem", LD_LIBRARY_PATH="/cuda", GATE_MEDIA_DOMAINS="i.example.com"))
    inst = childenv.installer(s, Path("/opt/x/python"))
    assert set(inst) == COMMON | {"SSL_CERT_FILE", "UV_CACHE_DIR", "UV_LINK_MODE", "UV_PYTHON_INSTALL_DIR"}
    assert (inst["UV_CACHE_DIR"], inst["UV_LINK_MODE"]) == ("/opt/runpod-deploy/uv-cache", "hardlink")
    dl = childenv.downloader(s)
    assert set(dl) == set(inst) - {"UV_PYTHON_INSTALL_DIR", "UV_CACHE_DIR", "UV_LINK_MODE"} | {
        "HF_TOKEN", "HF_HOME", "HF_HUB_CACHE", "HF_HUB_ENABLE_HF_TRANSFER", "HF_XET_CHUNK_CACHE_SIZE_BYTES",
        "HF_XET_HIGH_PERFORMANCE", "HF_HUB_DISABLE_PROGRESS_BARS"}
    assert dl["HF_HOME"] == "/ws/hf_cache" and dl["HF_HUB_ENABLE_HF_TRANSFER"] == "0"
    vl = childenv.vllm(s, Path("/ws/vllm_cache/g"))
    assert {k for k in vl if k in SECRET_VALUES or k in ("OPENAI_API_KEY",)} == {"VLLM_API_KEY"}
    assert "LD_LIBRARY_PATH" in vl and "SSL_CERT_FILE" not in vl and vl["GATE_MEDIA_DOMAINS"] == "i.example.com"
    wu = childenv.webui(s, embedding_ready=False)
    assert {k for k in wu if k in SECRET_VALUES or k == "OPENAI_API_KEY"} == {"OPENAI_API_KEY", "WEBUI_SECRET_KEY"}
    assert wu["OPENAI_API_KEY"] == "vk-1" and "RAG_EMBEDDING_MODEL_AUTO_UPDATE" not in wu
    assert childenv.webui(s, embedding_ready=True)["RAG_EMBEDDING_MODEL_AUTO_UPDATE"] == "False"
    adm = childenv.webui_admin(s, wu)
    assert set(adm) - set(wu) == {"WEBUI_ADMIN_EMAIL", "WEBUI_ADMIN_PASSWORD"}
    for env in (inst, dl, vl, wu, adm):  # never the pod key, the payloads or the image's volume caches
        assert not {"RUNPOD_API_KEY", "STARTUP_B64", bundle.FILES_ENV} & set(env)
        assert env is vl or "GATE_MEDIA_DOMAINS" not in env
        assert env.get("UV_CACHE_DIR", "/opt").startswith("/opt") and env.get("HF_HOME", "/ws").startswith("/ws")


# ------------------------------------------------------------------ supervision and logs
class Knobs:
    RESTART_BACKOFF_S, RESTART_BACKOFF_MAX_S, MAX_RESTARTS, RESTART_RESET_S = 0.05, 0.1, 3, 900
    STOP_TIMEOUT_S, LOG_MAX_BYTES = 2, 10_000


def lines_of(capsys) -> list[str]:
    return capsys.readouterr().out.splitlines()


def test_supervisor_backs_off_capped_then_gives_up(tmp_path, capsys):
    sup = proc.Supervisor("svc", ["/bin/sh", "-c", "echo out; exit 3"], {"PATH": "/usr/bin:/bin"}, out=output.Out(),
                          log_path=tmp_path / "svc.log", knobs=Knobs)
    sup.start()
    sup._thread.join(10)
    out = lines_of(capsys)
    assert [line for line in out if "error=" in line] == [
        "runpod-deploy error=svc exited with status 3; restart 1/3 in 0.05s",
        "runpod-deploy error=svc exited with status 3; restart 2/3 in 0.1s",
        "runpod-deploy error=svc exited with status 3; restart 3/3 in 0.1s",  # capped
        f"runpod-deploy error=svc keeps failing (exit status 3 after 3 restarts): no more restarts; the pod stays up "
        f"for inspection, see {tmp_path / 'svc.log'}"]
    assert out.count("[svc] out") == 4 and sup.gave_up and out[-1] == "runpod-deploy phase=failed"
    sup.log.flush()
    assert (tmp_path / "svc.log").read_text().count(" out\n") == 4


def test_supervisor_stop_sends_sigterm_then_sigkill(tmp_path, capsys):
    # A service that ignores SIGTERM gets SIGKILL after the grace period.
    sup = proc.Supervisor("svc", ["/bin/sh", "-c", "trap '' TERM; echo up; while :; do sleep 0.1; done"],
                          {"PATH": "/usr/bin:/bin"}, out=output.Out(), log_path=tmp_path / "svc.log", knobs=Knobs)
    sup.start()
    deadline = time.monotonic() + 5
    while "[svc] up" not in capsys.readouterr().out and time.monotonic() < deadline:
        time.sleep(0.05)
    t0 = time.monotonic()
    sup.stop()
    assert 1.5 < time.monotonic() - t0 < 6 and sup.proc.returncode == -9


def test_log_writer_never_blocks_and_counts_what_it_dropped(tmp_path, monkeypatch):
    gate = threading.Event()
    real_open = open

    def slow_open(*a, **kw):  # the volume stalls until the test lets it go
        gate.wait(10)
        return real_open(*a, **kw)

    monkeypatch.setattr(output, "open", slow_open, raising=False)
    w = output.LogWriter(tmp_path / "x.log", max_lines=10)
    t0 = time.monotonic()
    for i in range(100):
        w.put(f"line {i}")
    assert time.monotonic() - t0 < 1  # never waited for the disk
    gate.set()
    time.sleep(0.5)  # the disk takes writes again
    w.put("after")
    w.flush()
    time.sleep(0.2)
    text = (tmp_path / "x.log").read_text()
    assert "lines dropped here" in text and "line 0\n" in text and "after\n" in text
    dropped = int(text.split(" lines dropped")[0].rsplit("[", 1)[1])
    assert dropped + text.count(" line ") == 100


def test_children_abort_stops_the_running_child_and_raises_the_reason(capsys):
    kids = proc.Children()
    reason = SetupFailed(1, "download failed")
    threading.Timer(0.3, kids.abort, args=(reason,)).start()
    t0 = time.monotonic()
    rc = kids.run(["/bin/sh", "-c", "sleep 30"], env={"PATH": "/usr/bin:/bin"}, out=output.Out(), prefix="x", log=None)
    assert rc == 143 and time.monotonic() - t0 < 5
    with pytest.raises(SetupFailed):
        kids.check()


# ------------------------------------------------------------------ venv restore failures
class FakeArchive:
    ArchiveMissing, ArchiveCorrupt, DiskFull, ArchiveError = (archive.ArchiveMissing, archive.ArchiveCorrupt,
                                                               archive.DiskFull, archive.ArchiveError)

    def __init__(self, *errors):
        self.errors, self.unpacks, self.packs = list(errors), 0, 0

    def exists(self, dest):
        return True

    def unpack(self, dest, target, *, log):
        self.unpacks += 1
        if self.errors:
            raise self.errors.pop(0)
        (target / "env" / "bin").mkdir(parents=True)
        (target / "env" / "bin" / "python").symlink_to(sys.executable)
        return 123

    def pack(self, src, dest, *, log):
        self.packs += 1


def make_venvs(tmp_path, arc, monkeypatch):
    s = settings.load(pod_env(WORKSPACE=str(tmp_path / "ws"), VENV_ROOT=str(tmp_path / "disk/venvs"),
                              PATH=f"{tmp_path / 'nobin'}:/usr/bin:/bin", INSTALL_ATTEMPTS="1"))
    v = venvs.Venvs(s, output.Out(), proc.Children(), output.LogWriter(tmp_path / "install.log"), arc=arc)
    installs = []
    monkeypatch.setattr(v, "_install", lambda spec: installs.append(spec.name))
    return v, installs


SPEC = venvs.Spec("vllm", "0.11.2", "3.12")


def test_a_release_without_a_lock_is_not_installed_and_the_lock_is_in_the_key(tmp_path, monkeypatch):
    v, installs = make_venvs(tmp_path, FakeArchive(), monkeypatch)
    with pytest.raises(venvs.InstallFailed) as err:
        v.ensure(venvs.Spec("vllm", "9.9.9", "3.12"))
    assert "no lock for vllm==9.9.9" in err.value.text and "RUNPOD_DEPLOY_FILES has no locks/vllm-9.9.9.txt" in \
        err.value.text and installs == []
    sha = lockfiles.lock_for("vllm", "0.11.2", environ=v.s.env)[1]
    assert v.key(SPEC) == lockfiles.archive_key("vllm", "0.11.2", python="3.12", venv=str(v.env_dir(SPEC)),
                                                lock_sha256=sha) + f" lock=sha256:{sha}"
    assert v.dest(SPEC).name == v.key(SPEC).split()[0]


def test_a_full_container_disk_is_said_with_the_fix_and_nothing_is_rebuilt(tmp_path, monkeypatch, capsys):
    arc = FakeArchive(archive.DiskFull("needs 10.8 GB, 3.0 GB are free"))
    v, installs = make_venvs(tmp_path, arc, monkeypatch)
    with pytest.raises(SetupFailed) as err:
        v.ensure(SPEC)
    assert "container disk is too small" in err.value.text and "containerDiskGb" in err.value.text
    assert installs == [] and arc.packs == 0


def test_a_corrupt_archive_is_rebuilt_and_a_transient_error_retried_once(tmp_path, monkeypatch, capsys):
    arc = FakeArchive(archive.ArchiveCorrupt("checksum mismatch"))
    v, installs = make_venvs(tmp_path, arc, monkeypatch)
    v.ensure(SPEC)
    assert installs == ["vllm"] and arc.packs == 1 and "rebuilding it" in capsys.readouterr().out
    assert arc.unpacks == 1  # a corrupt archive is read once, not again under the lock

    arc = FakeArchive(archive.ArchiveError("read error"))
    v, installs = make_venvs(tmp_path / "2", arc, monkeypatch)
    assert v.ensure(SPEC) == v.env_dir(SPEC)
    assert installs == [] and arc.unpacks == 2 and "trying once more" in capsys.readouterr().out


def test_a_restored_venv_is_kept_for_the_next_start(tmp_path, monkeypatch, capsys):
    arc = FakeArchive()
    v, installs = make_venvs(tmp_path, arc, monkeypatch)
    v.ensure(SPEC)
    v.ensure(SPEC)
    assert arc.unpacks == 1 and installs == [] and "container disk kept" in capsys.readouterr().out


# ------------------------------------------------------------------ vLLM: compile cache, gate
def test_a_damaged_compile_cache_index_is_moved_aside(tmp_path):
    good = tmp_path / "torch_compile_cache/a/rank_0_0/backbone/vllm_compile_cache.py"
    bad = tmp_path / "torch_compile_cache/b/rank_0_0/backbone/vllm_compile_cache.py"
    for p in (good, bad):
        p.parent.mkdir(parents=True)
    good.write_text("{(1, 'x'): 'artifact'}")
    bad.write_text("{(1, 'x'): 'artif")  # cut short mid-write
    said = []
    assert services.guard_compile_cache(tmp_path, said.append) == 1
    assert good.exists() and not bad.exists() and len(list(bad.parent.glob("vllm_compile_cache.py.bad-*"))) == 1
    assert "damaged" in said[0]


def test_two_quick_crashes_retry_once_without_the_compile_cache():
    said = []
    fb = services.CompileCacheFallback(60, said.append)
    fb.after(1, 5)
    assert fb.before() == {}
    fb.after(1, 5)
    assert fb.before() == {"VLLM_DISABLE_COMPILE_CACHE": "1"} and len(said) == 1
    fb.after(1, 5)
    fb.after(1, 5)
    assert fb.before() == {}  # once only


def test_gate_wiring_takes_gate_py_from_the_file_bundle_or_stops_the_setup(tmp_path):
    env, args = services.gate_wiring(pod_env(), tmp_path)
    assert env == {"PYTHONPATH": str(tmp_path / "pymods")} and args == ["--middleware", "gate.Gate"]
    assert (tmp_path / "pymods/gate.py").read_bytes() == (bundle.STARTUP_DIR / "children/gate.py").read_bytes()
    with pytest.raises(SetupFailed, match="cannot provide gate.py: env RUNPOD_DEPLOY_FILES is not set"):
        services.gate_wiring(pod_env(**{bundle.FILES_ENV: None}), tmp_path)
    with pytest.raises(SetupFailed, match="not an xz zip in base64"):
        services.gate_wiring(pod_env(**{bundle.FILES_ENV: "bm90IHh6"}), tmp_path)


def test_the_file_bundle_is_deterministic_and_holds_the_locks_and_the_childrens_scripts():
    again = bundle.encode_env([("hf-hub", lockfiles.HF_HUB_VERSION), ("openwebui", "0.12.4"), ("vllm", "0.11.2")])
    assert again == FILES  # any order, the same string: `up` changes no pod for nothing
    env = {bundle.FILES_ENV: FILES}
    for name in bundle.CHILDREN:
        assert bundle.read(f"children/{name}", environ=env) == (bundle.STARTUP_DIR / "children" / name).read_bytes()
    assert bundle.read("locks/vllm-0.11.2.txt", environ=env) == lockfiles.repo_lock("vllm", "0.11.2")


# ------------------------------------------------------------------ Open WebUI's admin step
def test_a_failing_step_before_a_start_keeps_the_service_down(tmp_path, capsys):
    ran = tmp_path / "ran"

    def before():
        raise RuntimeError("its admin step failed (exit status 1)")

    sup = proc.Supervisor("svc", ["/bin/sh", "-c", f"touch {ran}"], {"PATH": "/usr/bin:/bin"}, out=output.Out(),
                          log_path=tmp_path / "svc.log", knobs=Knobs, before=before)
    sup.start()
    sup._thread.join(20)
    out = lines_of(capsys)
    assert sup.gave_up and not ran.exists()
    assert out.count("runpod-deploy error=svc not started: its admin step failed (exit status 1)") == 4


# ------------------------------------------------------------------ idle stop wiring
def test_idle_watcher_gets_the_pod_key_and_the_documented_defaults(monkeypatch):
    made = {}

    class PodStopper:
        def __init__(self, **kw):
            made["stopper"] = kw

    class IdleWatcher:
        def __init__(self, **kw):
            made["watcher"] = kw

        def run(self, stop):
            made["ran"] = stop

    monkeypatch.setattr(main.idle, "PodStopper", PodStopper)  # only the classes: idle.api_urls owns the defaults
    monkeypatch.setattr(main.idle, "IdleWatcher", IdleWatcher)
    agent = main.Agent({}, output.Out())
    s = settings.load(pod_env(IDLE_STOP_MINUTES="30", IDLE_STOP_MINUTE_S="1", VLLM_PORT="8123"))
    assert agent._idle_wanted(s)
    agent._start_idle(s, True)
    time.sleep(0.2)
    assert {k: v for k, v in made["stopper"].items() if k != "log"} == {
        "pod_id": "p1", "pod_key": "rpa-1", "api_url": "https://api.runpod.io/v2",
        "graphql_url": "https://api.runpod.io/graphql"}
    w = made["watcher"]
    assert (w["minutes"], w["minute_s"], w["check_s"], w["metrics_url"]) == (30, 1.0, 30.0,
                                                                           "http://127.0.0.1:8123/metrics")
    assert w["metrics_key"] == "vk-1"  # the gate wants the key on /metrics
    assert made["ran"] is agent.stop


def test_idle_stop_is_off_without_the_pod_identity(capsys):
    agent = main.Agent({}, output.Out())
    assert not agent._idle_wanted(settings.load(pod_env(IDLE_STOP_MINUTES="5", RUNPOD_POD_ID=None)))
    assert "idle stop is off: RUNPOD_POD_ID and RUNPOD_API_KEY" in capsys.readouterr().out


def test_a_service_that_exits_leaves_nothing_of_its_group_behind(tmp_path, capsys):
    # vLLM's engine process outliving a crashed API server would hold the GPU from the restart.
    orphans = tmp_path / "orphans"
    sup = proc.Supervisor("svc", ["/bin/sh", "-c", f"sleep 30 & echo $! >> {orphans}; exit 3"],
                          {"PATH": "/usr/bin:/bin"}, out=output.Out(), log_path=tmp_path / "svc.log", knobs=Knobs)
    sup.start()
    sup._thread.join(20)
    assert sup.gave_up  # four runs, each leaving a `sleep` behind in its group
    pids = [int(p) for p in orphans.read_text().split()]
    assert len(pids) == 4
    for pid in pids:
        stat_file = Path(f"/proc/{pid}/stat")
        assert not stat_file.exists() or stat_file.read_text().split(") ")[1][0] == "Z", pid
