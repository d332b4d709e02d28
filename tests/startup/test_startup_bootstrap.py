"""bootstrap_command() (the pod's start command) and startup_env() (the pod's plain env), both in
runpod_deploy/pod_env.py."""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from devkit.startup import DEV_MODELS, REPO, SCRIPT_PATH, stack_config

from runpod_deploy import pod_env
from runpod_deploy.pod_env import bootstrap_command, startup_env

# Everything an API or a shell could mangle: $-expansions, quotes, backslashes, a heredoc, tabs,
# non-ASCII, and an exit status that must come back through the bootstrap.
TRICKY_SCRIPT = r"""#!/usr/bin/env bash
set -u
printf '%s\n' 'dollars: $HOME ${PATH} $(echo no) `echo no` $1 $@'
printf '%s\n' "double \"quotes\" and 'single' and \\backslash\\ and \$escaped"
v='a b  c'; printf '[%s]\n' "$v"
printf 'tab:\tend\n'
echo 'ünïcödé → ✓ 日本語 🚀'
cat <<'EOF'
heredoc $NOT_EXPANDED \n `nope` '"'
EOF
printf 'env: %s\n' "${RT_VALUE}"
exit 7
"""
TRICKY_OUTPUT = (
    "dollars: $HOME ${PATH} $(echo no) `echo no` $1 $@\n"
    "double \"quotes\" and 'single' and \\backslash\\ and $escaped\n"
    "[a b  c]\n"
    "tab:\tend\n"
    "ünïcödé → ✓ 日本語 🚀\n"
    "heredoc $NOT_EXPANDED \\n `nope` '\"'\n"
    "env: value with $dollar and 'quotes'\n"
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def run_bootstrap(argv: list[str], script: str, tmp_path: Path, **env) -> subprocess.CompletedProcess:
    full_env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "STARTUP_B64": b64(script),
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
    assert "STARTUP_B64" in argv[2] and "/start.sh" in argv[2] and "/tmp/runpod-deploy-startup.sh" in argv[2]
    assert len(args) < 600


@pytest.mark.skipif(Path("/start.sh").exists(), reason="this host has a /start.sh; the absent-branch test needs none")
def test_real_bootstrap_runs_the_decoded_script_byte_exact(tmp_path):
    res = run_bootstrap(bootstrap_command(), TRICKY_SCRIPT, tmp_path)
    assert res.stdout.decode() == TRICKY_OUTPUT, res.stderr.decode()
    assert res.returncode == 7  # without /start.sh our script is exec'd: its status is the pod's
    assert Path("/tmp/runpod-deploy-startup.sh").read_bytes() == TRICKY_SCRIPT.encode()


def test_real_args_string_via_a_shell_tokenizer(tmp_path):
    # The provider's string, split back the way a shell-like tokenizer would, then run.
    dest = tmp_path / "decoded.sh"
    args = shlex.join(bootstrap_command(script_dest=str(dest), start_sh=str(tmp_path / "absent.sh")))
    res = run_bootstrap(shlex.split(args), TRICKY_SCRIPT, tmp_path)
    assert (res.stdout.decode(), res.returncode) == (TRICKY_OUTPUT, 7), res.stderr.decode()
    assert dest.read_bytes() == TRICKY_SCRIPT.encode()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("tmp")] == []  # temp file renamed


def test_with_start_sh_our_script_runs_in_background_and_start_sh_takes_over(tmp_path):
    out = tmp_path / "ours.txt"
    start_sh = tmp_path / "start.sh"
    start_sh.write_text(
        "#!/bin/sh\n"
        'i=0; while [ ! -s "$OUT" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done\n'
        'echo "start.sh is pid $$, saw: $(cat "$OUT")"\n'
        "exit 0\n"
    )
    start_sh.chmod(0o755)
    dest = tmp_path / "decoded.sh"
    argv = bootstrap_command(script_dest=str(dest), start_sh=str(start_sh))
    proc = subprocess.Popen(argv, env={"PATH": os.environ["PATH"], "OUT": str(out),
                                       "STARTUP_B64": b64('printf "ours ran\\n" > "$OUT"\nexit 3\n')},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    stdout, stderr = proc.communicate(timeout=30)
    # exec: /start.sh replaced the bash that runs the command (same pid, its exit status)
    assert stdout.decode() == f"start.sh is pid {proc.pid}, saw: ours ran\n", stderr.decode()
    assert proc.returncode == 0


def test_missing_startup_b64_fails(tmp_path):
    argv = bootstrap_command(script_dest=str(tmp_path / "x.sh"), start_sh=str(tmp_path / "absent"))
    res = subprocess.run(argv, env={"PATH": os.environ["PATH"]}, capture_output=True, timeout=30)
    assert res.returncode == 1 and b"STARTUP_B64" in res.stderr


@pytest.mark.parametrize("bad", ["relative/path.sh", "/tmp/with space.sh", "/tmp/$HOME.sh", "/tmp/q'.sh"])
def test_bootstrap_rejects_paths_that_would_need_quoting(bad):
    with pytest.raises(ValueError):
        bootstrap_command(script_dest=bad)


def test_startup_env_is_plain_and_carries_the_script():
    cfg = stack_config()
    env = startup_env("qwen3vl", cfg.models["qwen3vl"], cfg)
    assert set(env) == {"POD_LABEL", "MODEL_ID", "SERVED_MODEL_NAME", "GPU_PROFILES_JSON", "VLLM_EXTRA_ARGS_JSON",
                        "VLLM_VERSION", "OPENWEBUI_VERSION", "WEBUI_ADMIN_EMAIL", "WORKSPACE", "MODEL_LOCAL_DIR",
                        "STARTUP_B64", "PYTHONUNBUFFERED"}
    assert all(isinstance(v, str) for v in env.values())
    assert not set(pod_env.SECRET_ENV_VARS) & set(env)
    assert "\n" not in env["STARTUP_B64"]
    assert base64.b64decode(env["STARTUP_B64"], validate=True) == SCRIPT_PATH.read_bytes()
    assert env["PYTHONUNBUFFERED"] == "1"
    assert (env["POD_LABEL"], env["MODEL_ID"], env["SERVED_MODEL_NAME"]) == (
        "qwen3vl", "Qwen/Qwen3-VL-8B-Instruct", "qwen3-vl")
    # the stack's values, whose defaults live in the schema only
    assert (env["VLLM_VERSION"], env["OPENWEBUI_VERSION"]) == (cfg.vllm_version, cfg.openwebui_version)
    assert (env["WEBUI_ADMIN_EMAIL"], env["WORKSPACE"]) == (cfg.webui_admin_email, "/workspace")
    assert env["MODEL_LOCAL_DIR"] == DEV_MODELS["qwen3vl"]["localDir"]
    assert json.loads(env["VLLM_EXTRA_ARGS_JSON"]) == []
    assert env["GPU_PROFILES_JSON"].isascii()


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


def test_startup_env_optional_fields():
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


def test_the_script_carries_no_defaults_for_stack_settings():
    text = SCRIPT_PATH.read_text()
    for var in ("WORKSPACE", "POD_LABEL", "MODEL_ID", "SERVED_MODEL_NAME", "GPU_PROFILES_JSON", "VLLM_VERSION",
                "OPENWEBUI_VERSION"):
        assert re.search(rf'^{var}="\$\{{{var}:-\}}"', text, re.M), var  # read, with no fallback value
        assert re.search(rf"^REQUIRED_VARS=\(.*\b{var}\b", text, re.M), var


def test_the_version_defaults_are_written_once():
    # vllmVersion / openwebuiVersion: only the schema (and the docs generated from it) name them.
    from runpod_deploy.schema import StackConfig
    versions = {StackConfig.model_fields["vllm_version"].default, StackConfig.model_fields["openwebui_version"].default}
    files = [REPO / "Pulumi.yaml", SCRIPT_PATH, REPO / "startup" / "README.md",
             *(REPO / "runpod_deploy").glob("*.py")]
    for f in files:
        if f.name != "schema.py":
            for v in versions:
                assert f'"{v}"' not in f.read_text() and f"`{v}`" not in f.read_text(), (f, v)


def test_package_imports_without_pulumi():
    code = "import sys, runpod_deploy.pod_env; sys.exit('pulumi' in sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_script_is_ascii_and_never_traces_commands():
    text = SCRIPT_PATH.read_text()
    assert text.isascii()
    assert not re.search(r"^\s*set\s+-[a-z]*x", text, re.M)
    assert text.startswith("#!/usr/bin/env bash\n")


def test_readme_shows_the_real_args_string():
    readme = (REPO / "startup" / "README.md").read_text()
    assert shlex.join(bootstrap_command()) in readme
