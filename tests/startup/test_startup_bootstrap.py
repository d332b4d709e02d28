"""bootstrap_command() (the pod's start command) and startup_env() (the pod's plain env)."""

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
from startup_harness import REPO, SCRIPT_PATH

import startup
from startup import bootstrap_command, startup_env

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


KW = dict(pod_label="qwen3vl", model_id="Qwen/Qwen3-VL-8B-Instruct", served_model_name="qwen3-vl",
          gpu_profiles=startup.QWEN3_VL_GPU_PROFILES)


def test_startup_env_is_plain_and_carries_the_script():
    env = startup_env(**KW)
    assert set(env) == {"POD_LABEL", "MODEL_ID", "SERVED_MODEL_NAME", "GPU_PROFILES_JSON", "VLLM_EXTRA_ARGS_JSON",
                        "VLLM_VERSION", "OPENWEBUI_VERSION", "WORKSPACE", "STARTUP_B64", "PYTHONUNBUFFERED"}
    assert all(isinstance(v, str) for v in env.values())
    assert not set(startup.SECRET_ENV_VARS) & set(env)
    assert "\n" not in env["STARTUP_B64"]
    assert base64.b64decode(env["STARTUP_B64"], validate=True) == SCRIPT_PATH.read_bytes()
    assert env["PYTHONUNBUFFERED"] == "1"
    assert (env["POD_LABEL"], env["MODEL_ID"], env["SERVED_MODEL_NAME"]) == ("qwen3vl", KW["model_id"], "qwen3-vl")
    assert (env["VLLM_VERSION"], env["OPENWEBUI_VERSION"], env["WORKSPACE"]) == ("0.11.2", "0.7.2", "/workspace")
    profiles = json.loads(env["GPU_PROFILES_JSON"])
    assert profiles == startup.QWEN3_VL_GPU_PROFILES
    assert list(profiles) == list(startup.QWEN3_VL_GPU_PROFILES)  # order kept (memory-fallback ties)
    assert json.loads(env["VLLM_EXTRA_ARGS_JSON"]) == []
    assert env["GPU_PROFILES_JSON"].isascii()


def test_startup_env_optional_fields():
    env = startup_env(**KW, model_revision="0123abc", model_local_dir="/workspace/models/qwen3-vl-8b",
                      vllm_version="0.11.0", openwebui_version="0.7.1", vllm_extra_args=["--max-num-seqs", "64"],
                      workspace="/mnt/ws")
    assert env["MODEL_REVISION"] == "0123abc"
    assert env["MODEL_LOCAL_DIR"] == "/workspace/models/qwen3-vl-8b"
    assert (env["VLLM_VERSION"], env["OPENWEBUI_VERSION"], env["WORKSPACE"]) == ("0.11.0", "0.7.1", "/mnt/ws")
    assert json.loads(env["VLLM_EXTRA_ARGS_JSON"]) == ["--max-num-seqs", "64"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pod_label": "bad label"}, "pod_label"),
        ({"pod_label": "../x"}, "pod_label"),
        ({"model_id": ""}, "model_id"),
        ({"workspace": "workspace"}, "workspace"),
        ({"vllm_version": "0.11.2; rm -rf /"}, "vllm_version"),
        ({"model_local_dir": "models/x"}, "model_local_dir"),
        ({"vllm_extra_args": "--enforce-eager"}, "vllm_extra_args"),
        ({"gpu_profiles": {}}, "non-empty"),
        ({"gpu_profiles": {"NVIDIA L40S": {"max_model_len": 4096}}}, "gpu_memory_utilization"),
        ({"gpu_profiles": {"NVIDIA L40S": {"max_model_len": "4096", "gpu_memory_utilization": 0.9}}}, "max_model_len"),
        ({"gpu_profiles": {"NVIDIA L40S": {"max_model_len": 4096, "gpu_memory_utilization": 1.5}}}, "gpu_memory_utilization"),
        ({"gpu_profiles": {"NVIDIA L40S": {"max_model_len": 4096, "gpu_memory_utilization": 0.9, "max_len": 1}}}, "unknown"),
        ({"gpu_profiles": {"NVIDIA L40S": {"max_model_len": 4096, "gpu_memory_utilization": 0.9, "extra_args": "--x"}}}, "extra_args"),
    ],
)
def test_startup_env_rejects_what_the_script_would_refuse(change, message):
    with pytest.raises(ValueError, match=message):
        startup_env(**{**KW, **change})


def test_default_profile_fills_missing_fields():
    startup_env(**{**KW, "gpu_profiles": {"default": {"max_model_len": 8192, "gpu_memory_utilization": 0.9},
                                          "NVIDIA GeForce RTX 4090": {"model_id": "Qwen/Qwen3-VL-8B-Instruct-FP8"}}})


def test_python_defaults_match_the_script_defaults():
    text = SCRIPT_PATH.read_text()
    assert re.search(r'^VLLM_VERSION="\$\{VLLM_VERSION:-([^}]+)\}"', text, re.M).group(1) == startup.DEFAULT_VLLM_VERSION
    assert re.search(r'^OPENWEBUI_VERSION="\$\{OPENWEBUI_VERSION:-([^}]+)\}"', text, re.M).group(1) == startup.DEFAULT_OPENWEBUI_VERSION
    assert re.search(r'^WORKSPACE="\$\{WORKSPACE:-([^}]+)\}"', text, re.M).group(1) == startup.DEFAULT_WORKSPACE


def test_package_imports_without_pulumi():
    code = "import sys, startup; sys.exit('pulumi' in sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_script_is_ascii_and_never_traces_commands():
    text = SCRIPT_PATH.read_text()
    assert text.isascii()
    assert not re.search(r"^\s*set\s+-[a-z]*x", text, re.M)
    assert text.startswith("#!/usr/bin/env bash\n")


def test_readme_shows_the_real_args_string():
    readme = (REPO / "startup" / "README.md").read_text()
    assert shlex.join(bootstrap_command()) in readme
