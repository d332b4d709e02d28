"""The vLLM flags the program owns, and the checks of what a stack adds to `vllm serve`.

The argv itself is built by the pod agent (startup/agent/profile.py); these tables stay on the
program's side because their messages name Pulumi config keys and commands, which the agent does
not know, and because the agent ships inside every pod's env under a 48 KiB budget.
"""

from __future__ import annotations

import json

from .schema import NS, ModelConfig

# Flags the program sets on `vllm serve` (startup/agent/profile.py) or passes as env: given again in
# vllmArgs/extraArgs they would be silently overridden or, worse, override the program's (the
# probes and URLs then point at nothing, or the API key output is no longer the one enforced).
OWNED_FLAGS = {
    "--api-key": "to choose the key, set it as modelSecrets.{model}.apiKey: `pulumi config set --secret --path "
                 "'runpod-deploy:modelSecrets.{model}.apiKey' <key>` (it is the {model}_api_key output)",
    "--port": "vLLM serves on port 8000, where the readiness probes and the {model}_api_url output point; "
              "extraPorts exposes other ports",
    "--host": "vLLM listens on 0.0.0.0, where RunPod's proxy reaches it",
    "--served-model-name": "set models.{model}.servedModelName instead",
    "--model": "set models.{model}.modelId (or a profile's modelId) instead",
    "--revision": "set models.{model}.revision (or a profile's revision) instead",
    "--max-model-len": "set maxModelLen in the model's gpuProfiles instead",
    "--gpu-memory-utilization": "set gpuMemoryUtilization in the model's gpuProfiles instead",
}
# vLLM 0.11.2 parses these with json.loads (dict-typed engine args, vllm/engine/arg_utils.py): a
# value that is not JSON stops vLLM at start, after the pod has been billing through the install.
JSON_FLAGS = frozenset({
    "--limit-mm-per-prompt", "--mm-processor-kwargs", "--media-io-kwargs", "--hf-overrides",
    "--override-generation-config", "--speculative-config", "--kv-transfer-config", "--kv-events-config",
    "--compilation-config", "--additional-config", "--override-pooler-config", "--pooler-config",
    "--model-loader-extra-config", "--structured-outputs-config", "--default-chat-template-kwargs",
})


def flags(args: list[str]) -> list[tuple[str, str | None]]:
    """(flag, its value or None) for each `--flag value` / `--flag=value`; vLLM reads `_` as `-`."""
    out = []
    for i, arg in enumerate(args):
        if not arg.startswith("--"):
            continue
        flag, eq, value = arg.partition("=")
        if not eq:
            nxt = args[i + 1] if i + 1 < len(args) else None
            value = nxt if nxt is not None and not nxt.startswith("--") else None
        out.append((flag.replace("_", "-"), value))
    return out


def arg_problems(name: str, model: ModelConfig) -> list[str]:
    lists = [(f"{NS}:models.{name}.vllmArgs", model.vllm_args)]
    lists += [(f"{NS}:models.{name}.gpuProfiles.{gpu}.extraArgs", p.extra_args)
              for gpu, p in model.gpu_profiles.items()]
    problems = []
    for key, args in lists:
        for flag, value in flags(args):
            if flag in OWNED_FLAGS:  # never echo the value: --api-key carries a secret
                problems.append(f"{key}: `{flag}` is the program's to set; remove it ("
                                + OWNED_FLAGS[flag].format(model=name) + ")")
            elif flag in JSON_FLAGS and value is not None:
                try:
                    json.loads(value)
                except ValueError as e:
                    problems.append(f"{key}: `{flag}` takes JSON (vLLM parses it with json.loads), but {value[:80]!r} "
                                    f"is not JSON ({e}); write it like '{{\"video\": 0}}' (double quotes inside)")
    return problems
