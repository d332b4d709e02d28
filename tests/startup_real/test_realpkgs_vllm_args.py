"""vLLM 0.11.2's own parser accepts every command line the pod agent builds from Pulumi.dev.yaml."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from devkit.startup import Harness
from devkit.startup_real import DEV_MODELS, GPU_LINES, RealHarness, gpu_types_to_check, stack_config

ARGCHECK_PY = Path(__file__).resolve().parent / "vllm_argcheck.py"

pytestmark = pytest.mark.timeout(2400)


def recorded_command_lines(tmp_path) -> dict[tuple[str, str], list[str]]:
    """(model, GPU type) -> the argv the agent runs `vllm` with, recorded by the stub harness (the
    agent's payload with a stub vllm; the real vLLM only parses them here)."""
    out = {}
    for name in DEV_MODELS:
        for gpu in gpu_types_to_check(name):
            d = tmp_path / f"{name}-{len(out)}"
            d.mkdir()
            h = Harness(d)
            try:
                run = h.start(name, STUB_GPU=GPU_LINES[gpu])
                (rec,) = h.wait_records("vllm", 1, timeout=30)
                out[(name, gpu)] = rec["argv"]
                run.stop()
            finally:
                h.cleanup()
    return out


def vllm_parse(real: RealHarness, argvs: list[list[str]]) -> list[dict]:
    proc = subprocess.run([str(real.venv("vllm") / "bin" / "python"), str(ARGCHECK_PY)],
                          input=json.dumps(argvs), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_vllm_parser_accepts_every_command_line_the_agent_builds(real, tmp_path):
    lines = recorded_command_lines(tmp_path)
    cases = list(lines.items())
    # Canaries: the check itself must reject what vLLM rejects, or a pass would prove nothing.
    canaries = [["serve", "m", "--no-such-flag", "1"],
                ["serve", "m", "--limit-mm-per-prompt", '{"video": 0']]
    results = vllm_parse(real, [argv for _, argv in cases] + canaries)

    assert [r["ok"] for r in results[len(cases):]] == [False, False], results[len(cases):]
    failures = [f"{name} on {gpu}: {res['error']}\n    vllm {' '.join(argv)}"
                for ((name, gpu), argv), res in zip(cases, results[:len(cases)], strict=True) if not res["ok"]]
    assert not failures, "vLLM 0.11.2 rejects command lines the agent builds:\n" + "\n".join(failures)

    # vLLM reads the values the config means (e.g. the JSON of --limit-mm-per-prompt as a dict).
    for ((name, gpu), _argv), res in zip(cases, results[:len(cases)], strict=True):
        args = res["args"]
        assert args["served_model_name"][0] == stack_config().models[name].served_model_name, (name, gpu)
        assert args["api_key"] is None, "the key must travel in env VLLM_API_KEY, not on argv"
        mm = args["limit_mm_per_prompt"]
        assert isinstance(mm, dict) and mm.get("video") == 0, (name, gpu)
        assert args["safetensors_load_strategy"] == "eager", (name, gpu)  # vLLM takes any string here
        assert args["middleware"] == ["gate.Gate"], (name, gpu)  # the key gate, vLLM's outermost middleware
        profile = stack_config().models[name].resolved_profiles()
        expected = (profile.get(gpu) or profile["default"]).max_cudagraph_capture_size
        assert args["max_cudagraph_capture_size"] == expected, (name, gpu)
