"""The RunPod API key: where it is found (stack config, then the environment) and whether it can be
sent in an HTTP header. Kept apart from client.py so config checks need not import the HTTP client."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping


def find_api_key(configured: str | None, env: Mapping[str, str] = os.environ) -> str | None:
    """The RunPod key: the stack's `runpod:apiKey` if set, else $RUNPOD_API_KEY; None if neither
    (the caller reports provider_errors.MISSING_API_KEY). ApiKeyError if it cannot be a key."""
    if configured and configured.strip():
        return check_api_key(configured, "runpod:apiKey (stack config)")
    if (env.get("RUNPOD_API_KEY") or "").strip():
        return check_api_key(env["RUNPOD_API_KEY"], "RUNPOD_API_KEY (environment)")
    return None


class ApiKeyError(ValueError):
    """The key cannot be sent in an HTTP header. The message names where it came from, never the key."""


# What a key may hold: printable ASCII without spaces (RunPod keys are `rpa_` + letters and digits).
_KEY_CHARS = re.compile(r"[\x21-\x7e]+")


def check_api_key(key: str, source: str) -> str:
    """`key` without surrounding whitespace (a trailing newline from a paste is harmless), or
    ApiKeyError naming `source` and what is wrong. Without this, requests refuses the header with a
    message that prints the whole key (`Invalid header value b'Bearer rpa_…'`)."""
    key = key.strip()
    if not key or _KEY_CHARS.fullmatch(key):
        return key
    bad = next(c for c in key if not _KEY_CHARS.fullmatch(c))
    what = ("a line break" if bad in "\r\n" else "a space or tab" if bad in " \t"
            else f"an invisible or non-ASCII character (U+{ord(bad):04X})")
    set_it = ("pulumi config set --secret runpod:apiKey <key>" if source.startswith("runpod:")
              else "export RUNPOD_API_KEY=<key>")
    raise ApiKeyError(f"the RunPod API key in {source} contains {what} at position {key.index(bad) + 1} of "
                      f"{len(key)} (pasted across lines, or copied from a web page?); copy the key again from the "
                      f"RunPod console (Settings, API Keys) and set it with `{set_it}`")
