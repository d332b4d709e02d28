"""docs/config.md, generated from the schema (runpod_deploy/schema.py): every key, its default and
its meaning. `python -m runpod_deploy.config_doc` rewrites it; a test fails when it is stale."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from .schema import NS, GpuProfile, ModelConfig, StackConfig

DOC = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def _default(field) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        return "–" if value in ([], {}) else f"`{json.dumps(value, ensure_ascii=False)}`"
    if field.default is PydanticUndefined:
        return "required"
    if field.default is None:
        return "–"
    return f"`{json.dumps(field.default)}`" if not isinstance(field.default, str) else f"`{field.default}`"


def _table(model: type[BaseModel], *, full_keys: bool = False) -> list[str]:
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for name, field in model.model_fields.items():
        meta = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if meta.get("config") is False:
            continue
        key = field.alias or name
        if full_keys:
            key = f"{meta.get('namespace', NS)}:{key}"
        meaning = field.description or ""
        if meta.get("secret"):
            meaning += " (secret: `pulumi config set --secret`)"
        if meta.get("env"):
            meaning += f"; env `{meta['env']}` when not set"
        rows.append(f"| `{key}` | {_default(field)} | {meaning} |")
    return rows


def render() -> str:
    return "\n".join([
        "# Configuration",
        "",
        "<!-- Generated from runpod_deploy/schema.py by `python -m runpod_deploy.config_doc`; edit the schema. -->",
        "",
        "Set per stack in `Pulumi.<stack>.yaml` (`pulumi config set <key> <value>`; `--path` for nested",
        "values). The program applies the defaults and validates everything before any resource is",
        "declared; the network volume and the GPU type ids are checked against RunPod before any pod is",
        "created. Each problem is reported as `key: what is wrong, and the fix`.",
        "",
        "## Stack keys",
        "",
        *_table(StackConfig, full_keys=True),
        "",
        f"## Model settings (`{NS}:models.<name>`)",
        "",
        "The name (lowercase letters, digits, `-`) is part of the pod name. Adding a model is config only.",
        "",
        *_table(ModelConfig),
        "",
        f"## GPU profiles (`{NS}:models.<name>.gpuProfiles.<GPU type id or default>`)",
        "",
        "Each GPU's profile is laid over `default`: it gives only the fields that differ. A pod serves the",
        "profile whose key is exactly the GPU it got (RunPod GPU type ids are the names `nvidia-smi`",
        "reports), else `default`; every GPU a model may get needs its own profile or a `default`.",
        "",
        *_table(GpuProfile),
        "",
    ])


def main() -> None:
    DOC.write_text(render())
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
