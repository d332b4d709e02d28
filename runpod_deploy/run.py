"""Operator commands that replace the seed's shell scripts: `python -m runpod_deploy.run gpus|pods`
(`make gpus`, `make pods`).

- `gpus`: GPU stock in the stack's data center and cloud for its GPU lists (the v2 catalog);
- `pods`: this stack's pods with status, GPU and $/hour.

Deploying is the plain Pulumi CLI (`pulumi up`, `make up`); these only read from RunPod. The RunPod
key comes from the stack's config (`pulumi config get`, never creating a stack) or RUNPOD_API_KEY.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "runpod-deploy"


def _stack_config(stack: str, project_dir: Path) -> dict[str, str]:
    """An existing stack's config as the raw strings `pulumi config get` gives (objects as JSON), read
    in one `pulumi config --json --show-secrets` outside a Pulumi program. Reads only: a missing
    stack, passphrase or CLI gives {}, and no stack is created."""
    try:
        res = subprocess.run(["pulumi", "config", "--json", "--show-secrets", "--stack", stack], cwd=project_dir,
                             capture_output=True, text=True, timeout=120)
        values = json.loads(res.stdout) if res.returncode == 0 else {}
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}
    return {k: v["value"] for k, v in values.items() if isinstance(v, dict) and v.get("value") is not None}


def _setting(config: dict[str, str], name: str) -> Any:
    """A stack setting as the program reads it: the stack's value, else the schema's env fallback, else
    the schema's default (the schema owns both; nothing repeated here)."""
    from runpod_deploy.config import config_key
    from runpod_deploy.schema import StackConfig

    field = StackConfig.model_fields[name]
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    raw = config.get(config_key(name)) or (os.environ.get(extra["env"]) if extra.get("env") else None)
    if raw is None:
        return None if field.is_required() else field.get_default(call_default_factory=True)
    return raw if field.annotation is str or name in ("data_center", "cloud") else json.loads(raw)


def _client(args: argparse.Namespace):
    from runpod_provider.client import RunPodClient
    from runpod_provider.keys import find_api_key
    from runpod_provider.provider_errors import MISSING_API_KEY

    key = find_api_key(args.config.get("runpod:apiKey"))
    if key is None:
        sys.exit(f"runpod-deploy {args.command}: {MISSING_API_KEY} (stack {args.stack})")
    return RunPodClient(key)


def cmd_gpus(args: argparse.Namespace) -> None:
    """GPU stock per type in the stack's data center and cloud, for the stack's preference list and
    any model's own list (replaces the seed's GraphQL curl)."""
    data_center = args.data_center or _setting(args.config, "data_center")
    cloud = _setting(args.config, "cloud")
    wanted = args.gpu or list(dict.fromkeys(
        [*_setting(args.config, "gpu_types")]
        + [g for m in (_setting(args.config, "models") or {}).values() if isinstance(m, dict)
           for g in m.get("gpuTypes") or []]))
    client = _client(args)
    types = {t.id: t for t in client.gpu_types(gpu_count=1, cloud=cloud)}
    print(f"{'GPU type':28} {'VRAM':>5} {'$/h':>6}  stock in {data_center} ({cloud} cloud)")
    for gpu in wanted:
        t = types.get(gpu)
        if t is None:
            print(f"{gpu:28} {'?':>5} {'?':>6}  not a RunPod GPU type id")
            continue
        price = t.hourly_price(cloud)
        print(f"{gpu:28} {t.memory or '?':>5} {price if price is not None else '?':>6}  "
              f"{t.stock_in(data_center) or 'NONE'}")


def _stack_name_tokens(stack: str, project_dir: Path) -> set[str] | None:
    """The name tokens this stack's state drew (NameToken resources), read with `pulumi stack export`;
    None if the state cannot be read. Pod names carry them, so a teammate's same-named stack (another
    backend, another token) is not this one."""
    import json

    try:
        res = subprocess.run(["pulumi", "stack", "export", "--stack", stack], cwd=project_dir,
                             capture_output=True, text=True, timeout=120)
        resources = json.loads(res.stdout)["deployment"].get("resources") or [] if res.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError):
        return None
    if resources is None:
        return None
    return {r["outputs"]["result"] for r in resources
            if r.get("type", "").endswith("NameToken") and isinstance((r.get("outputs") or {}).get("result"), str)}


def cmd_pods(args: argparse.Namespace) -> None:
    """This stack's pods (their name carries this state's token), with status, GPU and $/hour."""
    import re

    from runpod_provider import naming

    prefix = naming.stack_prefix(PROJECT, args.stack)
    tokens = _stack_name_tokens(args.stack, args.work_dir)
    pods = [p for p in _client(args).list_pods() if naming.is_stack_pod(PROJECT, args.stack, p.name)]
    if tokens is None:
        print(f"(this stack's state could not be read: listing every pod named {prefix}*, a same-named stack "
              "elsewhere included)")
    else:
        alternatives = "|".join(map(re.escape, tokens)) or "(?!)"
        mine = re.compile(re.escape(prefix) + rf".+-({alternatives})-[a-z0-9]{{{naming.SUFFIX_LEN}}}")
        pods = [p for p in pods if mine.fullmatch(p.name)]
    print(f"{'pod id':16} {'name':40} {'status':10} {'GPU':26} {'$/h':>6}")
    for p in pods:
        print(f"{p.id:16} {p.name:40} {p.status:10} {(p.gpu.id if p.gpu else '-'):26} "
              f"{p.cost if p.cost is not None else '-':>6}")
    if not pods:
        print(f"(no pods named {prefix}*)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="runpod-deploy", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["gpus", "pods"])
    parser.add_argument("--stack", default="dev", help="the stack whose key (and, for pods, whose pods) to use")
    parser.add_argument("--work-dir", type=Path, default=ROOT, help="where Pulumi.yaml and Pulumi.<stack>.yaml are")
    parser.add_argument("--data-center", help="gpus: the data center to show (default: the stack's dataCenter)")
    parser.add_argument("--gpu", action="append", help="gpus: GPU type ids to show (default: the preference list)")
    args = parser.parse_args(argv)
    args.config = _stack_config(args.stack, args.work_dir)
    from runpod_provider.api_errors import RunPodError
    from runpod_provider.keys import ApiKeyError
    from runpod_provider.provider_errors import what_runpod_did

    try:
        {"gpus": cmd_gpus, "pods": cmd_pods}[args.command](args)
    except ApiKeyError as e:  # names where the key came from, never the key
        sys.exit(f"runpod-deploy {args.command}: {e}")
    except RunPodError as e:
        did, fix = what_runpod_did(e)
        sys.exit(f"runpod-deploy {args.command}: {did}; {fix}, then run it again")
    return 0


if __name__ == "__main__":
    sys.exit(main())
