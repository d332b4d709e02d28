"""`GeneratedSecret`: a random value made once and kept in state (encrypted), so a vLLM key or an
admin password stays the same across `pulumi up`s. The `random` provider plugin would do this, but
plugins are binaries fetched at run time, which this project cannot count on; a dynamic resource
needs nothing beyond the Python SDK. A user-supplied `value` wins over the generated one.
"""

from __future__ import annotations

import secrets
from typing import Any

import pulumi
from pulumi import dynamic


class GeneratedSecretProvider(dynamic.ResourceProvider):
    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        value = props.get("value") or secrets.token_urlsafe(int(props.get("length") or 32))
        return dynamic.CreateResult(secrets.token_hex(8), {**props, "result": value})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        changed = (olds.get("value") or None) != (news.get("value") or None) or olds.get("length") != news.get("length")
        return dynamic.DiffResult(changes=changed, replaces=[])

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        # Unsetting a user value keeps the current result rather than rotating it by surprise.
        value = news.get("value") or olds.get("result") or secrets.token_urlsafe(int(news.get("length") or 32))
        return dynamic.UpdateResult({**news, "result": value})


class GeneratedSecret(dynamic.Resource, module="runpod-deploy", name="GeneratedSecret"):
    result: pulumi.Output[str]

    def __init__(self, name: str, value: pulumi.Input[str] | None = None, length: int = 32,
                 opts: pulumi.ResourceOptions | None = None):
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["result", "value"]))
        super().__init__(GeneratedSecretProvider(), name,
                         {"value": pulumi.Output.secret(value) if value is not None else None,
                          "length": length, "result": None}, opts)
