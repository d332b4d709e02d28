"""Run by the REAL vLLM venv's python: does vLLM's own `vllm serve` parser accept these command lines?

stdin: a JSON list of argv lists, each as the agent runs it (`["serve", <model>, "--host", ...]`).
stdout (last line): a JSON list, per argv, of {"ok": true, "args": {...parsed values...}} or
{"ok": false, "error": "<vLLM's own message>"}.

It builds the parser exactly as `vllm serve` does (vllm/entrypoints/cli/main.py: a
FlexibleArgumentParser with the `serve` subcommand from vllm/entrypoints/cli/serve.py, whose
subparser_init calls vllm.entrypoints.openai.cli_args.make_arg_parser), then calls the subcommand's
validate(), i.e. validate_parsed_serve_args. There is no GPU here: the platform is set to CPU before
the parser is built, for parsing only (vLLM's own `vllm bench` does the same on an unspecified
platform, vllm/entrypoints/cli/main.py). No engine is created and no model is read.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys

from vllm import platforms
from vllm.platforms.cpu import CpuPlatform

platforms.current_platform = CpuPlatform()

from vllm.entrypoints.cli.serve import ServeSubcommand  # noqa: E402
from vllm.utils.argparse_utils import FlexibleArgumentParser  # noqa: E402

SHOWN = ("model_tag", "served_model_name", "revision", "host", "port", "max_model_len", "gpu_memory_utilization",
         "limit_mm_per_prompt", "max_num_seqs", "async_scheduling", "safetensors_load_strategy",
         "max_cudagraph_capture_size", "uvicorn_log_level", "api_key", "middleware")


def check(argv: list[str]) -> dict:
    parser = FlexibleArgumentParser(prog="vllm", description="vLLM CLI")
    subparsers = parser.add_subparsers(required=False, dest="subparser")
    cmd = ServeSubcommand()
    cmd.subparser_init(subparsers)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
        if args.subparser != cmd.name:
            return {"ok": False, "error": f"not a `vllm serve` command line: {argv[:1]}"}
        cmd.validate(args)
    except SystemExit:  # argparse's own error: the message is on stderr
        return {"ok": False, "error": err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else "exit"}
    except Exception as e:  # noqa: BLE001 - validate_parsed_serve_args raises TypeError/ValueError with its message
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    return {"ok": True, "args": {k: getattr(args, k, None) for k in SHOWN}}


def main() -> None:
    argvs = json.load(sys.stdin)
    results = [check(a) for a in argvs]
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
