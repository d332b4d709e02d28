"""A pydantic validation error as one line naming the config key and the fix, in the project's
words (`runpod-deploy:models.olmocr.gpuCount: must be ≥ 1 (got 0)`); a value is echoed only when
it cannot be a secret."""

from __future__ import annotations

import json
import re
from typing import Any

from .schema import NS


def explain(err: dict[str, Any]) -> str:
    """One pydantic error → `runpod-deploy:models.olmocr.gpuCount: must be ≥ 1 (got 0)`."""
    loc = [str(p) for p in err["loc"]]
    key = ("runpod:apiKey" if loc[:1] == ["apiKey"] else f"{NS}:" + ".".join(loc)) if loc else f"{NS}"
    msg, kind, value = err["msg"].removeprefix("Value error, "), err["type"], err.get("input")
    got = f" (got {value!r})" if _echoable(key, value) else ""
    if kind == "extra_forbidden":
        msg = ("unknown setting; modelSecrets.<model> takes apiKey and webuiAdminPassword"
               if loc[:1] == ["modelSecrets"] else "unknown setting; check its spelling against docs/config.md")
    elif kind == "missing":
        msg = f"required; set it with `{set_command(loc)}`"
    elif isinstance(value, str) and kind in _QUOTABLE and _quoted(value, kind):
        msg = f"{msg}{got}; write it without quotes in YAML"  # e.g. running: "true"
    elif kind == "list_type":
        msg = f"must be a list{got}, e.g. [\"--max-num-seqs\", \"64\"] or one `- item` per line in YAML"
    elif kind in ("int_type", "int_from_float", "int_parsing"):
        msg = f"must be a whole number{got}"
    elif kind in ("float_type", "float_parsing"):
        msg = f"must be a number{got}"
    elif kind in ("dict_type", "model_type") and loc == ["models"]:
        msg = ("must be a map of model name → settings, e.g. `models: {olmocr: {modelId: …}}` "
               "(one key per model, as in Pulumi.dev.yaml), not a list")
    elif kind == "model_type":
        msg = "must be a map of settings (key: value), as in Pulumi.dev.yaml; see docs/config.md for the keys"
    elif kind == "dict_type":
        msg = "must be a map (key: value), as in Pulumi.dev.yaml"
    elif kind == "bool_type":
        msg = f"must be true or false{got}"
    else:
        msg += got
    return f"{key}: {msg}"


_QUOTABLE = {"bool_type": bool, "int_type": int, "float_type": float, "list_type": list, "dict_type": dict}


def _quoted(text: str, kind: str) -> bool:
    """True when `text` is a value of the wanted type written in quotes (YAML then reads a string)."""
    try:
        value = json.loads(text)
    except ValueError:
        return False
    wanted = _QUOTABLE[kind]
    return isinstance(value, wanted) and not (wanted is int and isinstance(value, bool))


def set_command(loc: list[str]) -> str:
    """`pulumi config set` for one key; nested keys need --path (Pulumi's path syntax:
    `models.olmocr.gpuProfiles["NVIDIA L40S"].maxModelLen`)."""
    if loc == ["apiKey"]:
        return "pulumi config set --secret runpod:apiKey <key>"
    if len(loc) == 1:
        return f"pulumi config set {NS}:{loc[0]} <value>"
    path = loc[0] + "".join(f"[{p}]" if p.isdigit() else f".{p}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", p)
                            else f'["{p}"]' for p in loc[1:])
    return f"pulumi config set --path '{NS}:{path}' <value>"


def _echoable(key: str, value: Any) -> bool:
    """Echo a bad value only when it is a plain scalar (or a short list of them) under a key that
    cannot hold a secret: a model-level error's input is the whole raw config, key included."""
    if any(s in key.lower() for s in ("key", "token", "password", "secret")):
        return False
    scalar = (str, int, float, bool, type(None))
    if isinstance(value, list):
        return len(value) <= 10 and all(isinstance(v, scalar) for v in value)
    return isinstance(value, scalar)
