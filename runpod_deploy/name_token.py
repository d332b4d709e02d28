"""`NameToken`: a short random token drawn once and kept in the stack's state (not secret), that
goes into the names of the stack's pods so that the orphan sweep can never match a pod of another
stack, another backend or another (stack, model) pair (see runpod_provider/naming.py). Like
`GeneratedSecret`, a dynamic resource: it needs nothing beyond the Python SDK, and reading it back
(`refresh`) calls nothing.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi import dynamic

from runpod_provider import naming


class NameTokenProvider(dynamic.ResourceProvider):
    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        token = naming.new_token()
        return dynamic.CreateResult(token, {**props, "result": token})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        return dynamic.DiffResult(changes=False, replaces=[])


class NameToken(dynamic.Resource, module="runpod-deploy", name="NameToken"):
    result: pulumi.Output[str]

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__(NameTokenProvider(), name, {"result": None}, opts)
