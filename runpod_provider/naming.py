"""How pods are named on RunPod, written once.

A pod is named `<project>-<stack>-<resource>-<token>-<6 random chars>`. The prefix finds a stack's
pods (`pods` lists them) and the pods an interrupted create left behind (the provider deletes them);
the random part keeps each create's name unique, which create adoption relies on. RunPod does not
require unique names (spec `Pod.name`), and two teammates may both run a stack `dev` (each on their
own backend) against one account, or stack `dev-eu` with model `olmocr` may meet stack `dev` with
model `eu-olmocr`: so the prefix carries a token drawn once and kept in this stack's state
(`runpod_deploy.name_token`), and the patterns are anchored. No other state holds that token.
"""

from __future__ import annotations

import re
import secrets
import string

SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
SUFFIX_LEN = 6
# The prefix's own limits (the config checks stack and model names against them at preview).
# RunPod publishes no length limit for names; 120 keeps them readable in the console.
PREFIX_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
PREFIX_MAX = 120
TOKEN_LEN = 8


def stack_prefix(project: str, stack: str) -> str:
    """What every pod of one stack's name starts with (ends with the separator)."""
    return f"{project}-{stack}-".lower()


def name_prefix(project: str, stack: str, resource: str, token: str | None = None) -> str:
    """The Pod resource's `name_prefix` input: one per (stack state, model)."""
    return stack_prefix(project, stack) + resource.lower() + (f"-{token}" if token else "")


def new_token() -> str:
    return "".join(secrets.choice(SUFFIX_ALPHABET) for _ in range(TOKEN_LEN))


def new_pod_name(prefix: str) -> str:
    return f"{prefix}-" + "".join(secrets.choice(SUFFIX_ALPHABET) for _ in range(SUFFIX_LEN))


def is_pod_name_of(prefix: str, pod_name: str) -> bool:
    """True for names this resource's creates produce (used to find pods an interrupted create
    left behind). Anchored, so model `olmocr` never matches `olmocr-2`'s pods."""
    return re.fullmatch(re.escape(prefix) + rf"-[a-z0-9]{{{SUFFIX_LEN}}}", pod_name) is not None


def is_stack_pod(project: str, stack: str, pod_name: str) -> bool:
    """True for pods of this stack (any of its models)."""
    return pod_name.startswith(stack_prefix(project, stack))
