"""bootstrap_command() (the pod's start command), startup_env() (the pod's plain env) and the payload
(the agent's zipapp in STARTUP_B64, and its budget), all in runpod_deploy/pod_env.py."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from devkit.startup import DEV_MODELS, REPO, stack_config

from runpod_deploy import config, pod_env
from runpod_deploy.pod_env import bootstrap_command, startup_env

# Everything an API or a shell could mangle: $-expansions, quotes, backslashes, tabs, non-ASCII, and
# an exit status that must come back through the bootstrap.
TRICKY_MAIN = r"""import os, sys
print('dollars: $HOME ${PATH} $(echo no) `echo no` $1 $@')
print("double \"quotes\" and 'single' and \\backslash\\")
print('tab:\tend')
print('\u00fcn\u00efc\u00f6d\u00e9 \u2192 \u2713')
print('env: ' + os.environ['RT_VALUE'])
sys.exit(7)
"""
TRICKY_OUTPUT = (
    "dollars: $HOME ${PATH} $(echo no) `echo no` $1 $@\n"
    "double \"quotes\" and 'single' and \\backslash\\\n"
    "tab:\tend\n"
    "\u00fcn\u00efc\u00f6d\u00e9 \u2192 \u2713\n"
    "env: value with $dollar and 'quotes'\n"
)


def zipapp(main: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(zipfile.ZipInfo("__main__.py", date_time=(1980, 1, 1, 0, 0, 0)), main)
    return buf.getvalue()


def run_bootstrap(argv: list[str], payload: bytes, tmp_path: Path, **env) -> subprocess.CompletedProcess:
    full_env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "STARTUP_B64": pod_env.encode(payload),
                "RT_VALUE": "value with $dollar and 'quotes'", **env}
    return subprocess.run(argv, env=full_env, capture_output=True, timeout=30, cwd=tmp_path)


def test_argv_shape_and_the_args_string_round_trips_through_shlex():
    argv = bootstrap_command()
    assert argv[:2] == ["bash", "-c"] and len(argv) == 3
    args = shlex.join(argv)  # what the provider sends as v2 `args`
    assert shlex.split(args) == argv
    # nothing an API could expand or mangle, and no quote-in-quote: a plain single-quoted token
    assert not set("$'\\`") & set(argv[2])
    assert args == "bash -c '" + argv[2] + "'"
    assert "STARTUP_B64" in argv[2] and "/start.sh" in argv[2] and "/tmp/runpod-deploy-agent.pyz" in argv[2]
    assert len(args) < 600


@pytest.mark.skipif(Path("/start.sh").exists(), reason="this host has a /start.sh; the absent-branch test needs none")
def test_real_bootstrap_runs_the_decoded_payload_byte_exact(tmp_path):
    payload = zipapp(TRICKY_MAIN)
    res = run_bootstrap(bootstrap_command(), payload, tmp_path)
    assert res.stdout.decode() == TRICKY_OUTPUT, res.stderr.decode()
    assert res.returncode == 7  # without /start.sh the agent is exec'd: its status is the pod's
    assert Path("/tmp/runpod-deploy-agent.pyz").read_bytes() == payload


def test_real_args_string_via_a_shell_tokenizer(tmp_path):
    # The provider's string, split back the way a shell-like tokenizer would, then run.
    dest = tmp_path / "decoded.pyz"
    args = shlex.join(bootstrap_command(script_dest=str(dest), start_sh=str(tmp_path / "absent.sh")))
    res = run_bootstrap(shlex.split(args), zipapp(TRICKY_MAIN), tmp_path)
    assert (res.stdout.decode(), res.returncode) == (TRICKY_OUTPUT, 7), res.stderr.decode()
    assert dest.read_bytes() == zipapp(TRICKY_MAIN)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("tmp")] == []  # temp file renamed


def test_with_start_sh_the_agent_runs_in_background_and_start_sh_takes_over(tmp_path):
    out = tmp_path / "ours.txt"
    start_sh = tmp_path / "start.sh"
    start_sh.write_text(
        "#!/bin/sh\n"
        'i=0; while [ ! -s "$OUT" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done\n'
        'echo "start.sh is pid $$, saw: $(cat "$OUT")"\n'
        "exit 0\n"
    )
    start_sh.chmod(0o755)
    dest = tmp_path / "decoded.pyz"
    argv = bootstrap_command(script_dest=str(dest), start_sh=str(start_sh))
    main = "import os, sys\nopen(os.environ['OUT'], 'w').write('ours ran')\nsys.exit(3)\n"
    proc = subprocess.Popen(argv, env={"PATH": os.environ["PATH"], "OUT": str(out),
                                       "STARTUP_B64": pod_env.encode(zipapp(main))},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    stdout, stderr = proc.communicate(timeout=30)
    # exec: /start.sh replaced the bash that runs the command (same pid, its exit status)
    assert stdout.decode() == f"start.sh is pid {proc.pid}, saw: ours ran\n", stderr.decode()
    assert proc.returncode == 0


def test_missing_startup_b64_fails(tmp_path):
    argv = bootstrap_command(script_dest=str(tmp_path / "x.pyz"), start_sh=str(tmp_path / "absent"))
    res = subprocess.run(argv, env={"PATH": os.environ["PATH"]}, capture_output=True, timeout=30)
    assert res.returncode == 1 and b"STARTUP_B64" in res.stderr


@pytest.mark.parametrize("bad", ["relative/path.pyz", "/tmp/with space.pyz", "/tmp/$HOME.pyz", "/tmp/q'.pyz"])
def test_bootstrap_rejects_paths_that_would_need_quoting(bad):
    with pytest.raises(ValueError):
        bootstrap_command(script_dest=bad)


def test_startup_env_is_plain_and_carries_the_agent():
    cfg = stack_config()
    env = startup_env("qwen3vl", cfg.models["qwen3vl"], cfg)
    assert set(env) == {"POD_LABEL", "MODEL_ID", "SERVED_MODEL_NAME", "GPU_PROFILES_JSON", "VLLM_EXTRA_ARGS_JSON",
                        "VLLM_VERSION", "OPENWEBUI_VERSION", "WEBUI_ADMIN_EMAIL", "WORKSPACE", "MODEL_LOCAL_DIR",
                        "STARTUP_B64", "PYTHONUNBUFFERED", "RUNPOD_DEPLOY_FILES"}
    assert all(isinstance(v, str) for v in env.values())
    assert not set(pod_env.SECRET_ENV_VARS) & set(env)
    assert "\n" not in env["STARTUP_B64"]
    assert pod_env.decode(env["STARTUP_B64"]) == pod_env.payload()
    assert env["PYTHONUNBUFFERED"] == "1"
    assert (env["POD_LABEL"], env["MODEL_ID"], env["SERVED_MODEL_NAME"]) == (
        "qwen3vl", "Qwen/Qwen3-VL-8B-Instruct", "qwen3-vl")
    # the stack's values, whose defaults live in the schema only
    assert (env["VLLM_VERSION"], env["OPENWEBUI_VERSION"]) == (cfg.vllm_version, cfg.openwebui_version)
    assert (env["WEBUI_ADMIN_EMAIL"], env["WORKSPACE"]) == (cfg.webui_admin_email, "/workspace")
    assert env["MODEL_LOCAL_DIR"] == DEV_MODELS["qwen3vl"]["localDir"]
    assert json.loads(env["VLLM_EXTRA_ARGS_JSON"]) == []
    assert env["GPU_PROFILES_JSON"].isascii()


def test_every_env_string_of_every_pod_fits_linux_limit():
    # Linux refuses one "NAME=value" string over 128 KiB (MAX_ARG_STRLEN): the file bundle is the big one.
    cfg = stack_config()
    for name, model in cfg.models.items():
        env = startup_env(name, model, cfg)
        sizes = {k: len(f"{k}={v}".encode()) for k, v in env.items()}
        assert max(sizes.values()) < 128 * 1024, sizes
        assert sizes["RUNPOD_DEPLOY_FILES"] < 96 * 1024, sizes  # room for a bigger lock


def test_gpu_profiles_json_carries_each_profile_laid_over_default_under_the_config_names():
    cfg = stack_config()
    env = startup_env("olmocr", cfg.models["olmocr"], cfg)
    default = DEV_MODELS["olmocr"]["gpuProfiles"]["default"]
    rtx4090 = DEV_MODELS["olmocr"]["gpuProfiles"]["NVIDIA GeForce RTX 4090"]
    assert json.loads(env["GPU_PROFILES_JSON"]) == {
        "default": {"modelId": "allenai/olmOCR-2-7B-1025-FP8", **default},
        # Pulumi.dev.yaml's 4090 profile gives only extraArgs and the capture size; the rest is default's
        "NVIDIA GeForce RTX 4090": {"modelId": "allenai/olmOCR-2-7B-1025-FP8", **default,
                                    "extraArgs": rtx4090["extraArgs"], "maxCudagraphCaptureSize": 64},
    }


def test_startup_env_optional_fields(tmp_path, monkeypatch):
    from startup.agent import lockfiles
    # Other releases need their locks (the pod env carries them): stand-ins, for this test only.
    for name, version in (("vllm", "0.11.0"), ("openwebui", "0.7.1"), ("hf-hub", lockfiles.HF_HUB_VERSION)):
        (tmp_path / lockfiles.filename(name, version)).write_text(f"# {name} {version}\n")
    monkeypatch.setattr(lockfiles, "LOCKS_DIR", tmp_path)
    models = json.loads(json.dumps(DEV_MODELS))
    models["olmocr"].update(revision="0123abc", localDir="/workspace/models/olmocr-7b",
                            vllmArgs=["--max-num-seqs", "64"])
    cfg = stack_config(models, vllmVersion="0.11.0", openwebuiVersion="0.7.1")
    env = startup_env("olmocr", cfg.models["olmocr"], cfg, workspace="/mnt/ws")
    assert env["MODEL_LOCAL_DIR"] == "/workspace/models/olmocr-7b"
    assert (env["VLLM_VERSION"], env["OPENWEBUI_VERSION"], env["WORKSPACE"]) == ("0.11.0", "0.7.1", "/mnt/ws")
    assert json.loads(env["VLLM_EXTRA_ARGS_JSON"]) == ["--max-num-seqs", "64"]
    # the model's revision goes with its own checkpoint, in every profile that serves it
    assert {p["revision"] for p in json.loads(env["GPU_PROFILES_JSON"]).values()} == {"0123abc"}


def test_the_agent_requires_the_stack_settings_and_has_no_defaults_for_them():
    from startup.agent import settings
    assert settings.REQUIRED == ("WORKSPACE", "POD_LABEL", "MODEL_ID", "SERVED_MODEL_NAME", "GPU_PROFILES_JSON",
                                 "VLLM_VERSION", "OPENWEBUI_VERSION")
    assert not set(settings.REQUIRED) & set(settings.KNOBS)


def test_the_version_defaults_are_written_once():
    # vllmVersion / openwebuiVersion: only the schema (and the docs generated from it) name them.
    from runpod_deploy.schema import StackConfig
    versions = {StackConfig.model_fields["vllm_version"].default, StackConfig.model_fields["openwebui_version"].default}
    files = [REPO / "Pulumi.yaml", REPO / "startup" / "README.md", *pod_env.agent_files(),
             *(REPO / "runpod_deploy").glob("*.py")]
    for f in files:
        if f.name != "schema.py":
            for v in versions:
                assert f'"{v}"' not in f.read_text() and f"`{v}`" not in f.read_text(), (f, v)


def test_package_imports_without_pulumi():
    code = "import sys, runpod_deploy.pod_env; sys.exit('pulumi' in sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_the_payload_decodes_back_to_the_exact_agent_sources():
    with zipfile.ZipFile(io.BytesIO(pod_env.decode(pod_env.script_b64()))) as zf:
        names = zf.namelist()
        assert names == sorted(names)
        sources = {f"agent/{p.name}": p.read_bytes() for p in pod_env.agent_files()}
        assert set(names) == {*sources, "__main__.py"}
        for name, data in sources.items():
            assert zf.read(name) == data, name
        assert zf.read("__main__.py") == (pod_env.AGENT_DIR / "__main__.py").read_bytes()
        for info in zf.infolist():  # nothing of this checkout's clock or umask
            assert (info.date_time, info.external_attr >> 16, info.compress_type) == (
                (1980, 1, 1, 0, 0, 0), 0o644, zipfile.ZIP_STORED), info


def test_two_builds_are_the_same_bytes(tmp_path):
    first = pod_env.payload()
    # Another checkout: the same sources with other mtimes and modes give the same bytes.
    copy = tmp_path / "agent"
    copy.mkdir()
    for p in pod_env.agent_files():
        (copy / p.name).write_bytes(p.read_bytes())
        (copy / p.name).chmod(0o600)
    code = ("import sys; from pathlib import Path; from runpod_deploy import pod_env; "
            f"pod_env.AGENT_DIR = Path({str(copy)!r}); sys.stdout.buffer.write(pod_env.payload())")
    other = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, check=True).stdout
    assert first == pod_env.payload() == other
    assert pod_env.script_b64() == pod_env.encode(other)


def test_the_payload_is_within_its_budget_and_config_refuses_one_over_it(monkeypatch):
    assert len(pod_env.script_b64()) <= pod_env.PAYLOAD_BUDGET_B64 == 49152
    assert pod_env.payload_problems() == []
    monkeypatch.setattr(pod_env, "script_b64", lambda: "A" * 49156)
    with pytest.raises(config.ConfigError) as err:
        stack_config()
    assert "STARTUP_B64" in str(err.value) and "49156 bytes" in str(err.value)
    assert "budget of 49152 bytes (48 KiB)" in str(err.value)


def test_the_agent_runs_on_the_standard_library_alone(tmp_path):
    # -I -S: no site-packages, no PYTHON* env; an empty env: it stops at its first check, importing it all
    payload = tmp_path / "agent.pyz"
    payload.write_bytes(pod_env.payload())
    res = subprocess.run([sys.executable, "-I", "-S", str(payload)], env={}, capture_output=True, text=True, timeout=30)
    lines = res.stdout.splitlines()
    assert res.returncode == 2, res.stderr
    assert re.fullmatch(r"runpod-deploy boot=[0-9a-f]{16}", lines[0])
    assert lines[1:] == ["runpod-deploy phase=prepare",
                         "runpod-deploy error=VLLM_API_KEY is not set: refusing to start vLLM without an API key "
                         "(pass it as a pod secret)", "runpod-deploy phase=failed"]


def test_the_bootstrap_one_liner_is_shellcheck_clean(tmp_path):
    # The only bash left: the start command.
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install -y shellcheck); CI installs it")
    script = tmp_path / "bootstrap.sh"
    script.write_text("#!/usr/bin/env bash\n" + bootstrap_command()[2] + "\n")
    res = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_readme_shows_the_real_args_string():
    readme = (REPO / "startup" / "README.md").read_text()
    assert shlex.join(bootstrap_command()) in readme
