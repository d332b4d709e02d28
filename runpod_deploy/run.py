"""Run the stack through Pulumi's Automation API: `python -m runpod_deploy.run up|preview|refresh|destroy|outputs`.

Why this exists next to the plain `pulumi up`: the Automation API runs `__main__.py` as an inline
program, so the Pulumi CLI needs no Python language host. Where the CLI was built from the Go module
proxy (no registry ships the language host), this is the way to run the program; with a regular
Pulumi install, `pulumi up` and this command run the very same program and state.

Also here, replacing the seed's shell scripts: `gpus` (GPU stock for the preference list) and
`pods` (this stack's pods with status, GPU and $/hour).
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "runpod-deploy"


def program() -> None:
    runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")


def stack(name: str, work_dir: Path = ROOT, env: dict[str, str] | None = None):
    """Select or create `name`, with the project's Pulumi.yaml from `work_dir` and the program inline."""
    from pulumi import automation as auto

    env_vars = {
        # The dynamic provider runs in its own process started in work_dir: make our packages importable.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        **(env or {}),
    }
    opts = auto.LocalWorkspaceOptions(work_dir=str(work_dir), env_vars=env_vars)
    return auto.create_or_select_stack(stack_name=name, project_name=PROJECT, program=program, opts=opts)


def _print_outputs(outputs: dict[str, Any], show_secrets: bool) -> None:
    for key in sorted(outputs):
        out = outputs[key]
        value = "[secret]" if out.secret and not show_secrets else out.value
        print(f"{key:32} {value}")


def _client():
    from runpod_deploy.config import NS
    from runpod_provider.client import RunPodClient

    key = os.environ.get("RUNPOD_API_KEY") or _stack_api_key(os.environ.get("STACK", "dev"))
    if not key:
        sys.exit(f"no RunPod key: export RUNPOD_API_KEY, or `pulumi config set --secret runpod:apiKey <key>` "
                 f"in a stack of {NS}")
    return RunPodClient(key)


def _stack_api_key(name: str) -> str | None:
    """The key from an existing stack's config. Selects, never creates: a read-only command must
    not leave a new stack behind."""
    from pulumi import automation as auto

    try:
        st = auto.select_stack(stack_name=name, project_name=PROJECT, program=program,
                               opts=auto.LocalWorkspaceOptions(work_dir=str(ROOT)))
        return st.get_config("runpod:apiKey").value
    except Exception:  # no such stack, no passphrase, no key: the caller says what to do
        return None


def cmd_gpus(args: argparse.Namespace) -> None:
    """GPU stock per type in the data center, for the preference list (replaces the seed's GraphQL curl)."""
    from runpod_deploy.config import DEFAULT_GPU_TYPES

    client = _client()
    wanted = args.gpu or DEFAULT_GPU_TYPES
    types = {t.id: t for t in client.gpu_types(gpu_count=1, cloud="SECURE")}
    print(f"{'GPU type':28} {'VRAM':>5} {'$/h':>6}  stock in {args.data_center}")
    for gpu in wanted:
        t = types.get(gpu)
        if t is None:
            print(f"{gpu:28} {'?':>5} {'?':>6}  not a RunPod GPU type id")
            continue
        price = t.price.secure if t.price else None
        print(f"{gpu:28} {t.memory or '?':>5} {price if price is not None else '?':>6}  {t.stock_in(args.data_center) or 'NONE'}")


def cmd_pods(args: argparse.Namespace) -> None:
    """This stack's pods (by their name prefix), with status, GPU and $/hour."""
    prefix = f"{PROJECT}-{args.stack}-"
    pods = [p for p in _client().list_pods() if p.name.startswith(prefix)]
    print(f"{'pod id':16} {'name':40} {'status':10} {'GPU':26} {'$/h':>6}")
    for p in pods:
        print(f"{p.id:16} {p.name:40} {p.status:10} {(p.gpu.id if p.gpu else '-'):26} {p.cost if p.cost is not None else '-':>6}")
    if not pods:
        print(f"(no pods named {prefix}*)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="runpod-deploy", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["preview", "up", "refresh", "destroy", "outputs", "gpus", "pods"])
    parser.add_argument("--stack", default=os.environ.get("STACK", "dev"))
    parser.add_argument("--work-dir", type=Path, default=ROOT, help="where Pulumi.yaml and Pulumi.<stack>.yaml are")
    parser.add_argument("--show-secrets", action="store_true", help="outputs: print secret outputs too")
    parser.add_argument("--yes", action="store_true", help="accepted for symmetry with the pulumi CLI")
    parser.add_argument("--data-center", default=os.environ.get("PREFERRED_DATACENTER", "EU-RO-1"))
    parser.add_argument("--gpu", action="append", help="gpus: GPU type ids to show (default: the preference list)")
    args = parser.parse_args(argv)

    if args.command == "gpus":
        cmd_gpus(args)
        return 0
    if args.command == "pods":
        cmd_pods(args)
        return 0
    if "PULUMI_CONFIG_PASSPHRASE" not in os.environ and "PULUMI_CONFIG_PASSPHRASE_FILE" not in os.environ:
        print("note: PULUMI_CONFIG_PASSPHRASE is not set; the local backend needs it to encrypt secrets "
              "(export PULUMI_CONFIG_PASSPHRASE=…, or use Pulumi Cloud)", file=sys.stderr)
    from pulumi.automation import CommandError

    try:
        return _run(args)
    except (CommandError, RuntimeError) as e:
        # The CLI's output, with the program's error messages, was streamed above; add only what
        # was not (e.g. a missing passphrase), without a traceback.
        stderr = str(e).rsplit("stderr:", 1)[-1].strip() if "stderr:" in str(e) else ""
        print(f"runpod-deploy: `{args.command}` failed" + (f": {stderr}" if stderr else " (see above)"), file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    st = stack(args.stack, work_dir=args.work_dir)
    out = dict(on_output=print)
    if args.command == "preview":
        st.preview(**out)
    elif args.command == "up":
        res = st.up(**out)
        _print_outputs(res.outputs, args.show_secrets)
    elif args.command == "refresh":
        st.refresh(**out)
    elif args.command == "destroy":
        st.destroy(**out)
    elif args.command == "outputs":
        _print_outputs(st.outputs(), args.show_secrets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
