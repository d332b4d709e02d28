"""The built `pulumi` runs a Python program with a dynamic resource through up, refresh and destroy
on the file backend. No mocks: the CLI, the engine and the dynamic-provider launcher are real."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pulumi
from pulumi import automation as auto

from tests.engine.harness import ROOT, unique

PINNED = (ROOT / "scripts" / "setup.sh").read_text().split('PULUMI_VERSION="${PULUMI_VERSION:-', 1)[1].split("}")[0]


def _toys(stack: auto.Stack) -> list[dict]:
    resources = stack.export_stack().deployment.get("resources", [])
    return [r for r in resources if r["type"] == "pulumi-python:dynamic/toy:Toy"]


def test_pulumi_version_is_at_least_the_pinned_one(pulumi_cli: str):
    have = tuple(int(x) for x in re.match(r"v?(\d+)\.(\d+)\.(\d+)", pulumi_cli).groups())
    assert have >= tuple(int(x) for x in PINNED.split(".")), f"pulumi {pulumi_cli} < pinned {PINNED}"


def test_dynamic_resource_goes_through_up_refresh_update_destroy(backend: Path, tmp_path: Path):
    log = tmp_path / "toy.log"
    greeting = {"value": "hello"}

    def program():
        from tests.engine.toy_provider import Toy

        toy = Toy("toy", greeting["value"])
        pulumi.export("length", toy.length)

    stack = auto.create_or_select_stack(
        stack_name=unique("toolchain"), project_name="toolchain-test", program=program,
        opts=auto.LocalWorkspaceOptions(work_dir=str(tmp_path), env_vars={
            "PYTHONPATH": str(ROOT), "TOY_LOG": str(log)}),
    )
    up = stack.up()
    assert up.summary.result == "succeeded"
    assert up.outputs["length"].value == 5
    [toy] = _toys(stack)
    assert toy["outputs"]["greeting"] == "hello" and toy["id"]

    stack.refresh()
    assert _toys(stack)[0]["id"] == toy["id"]

    greeting["value"] = "hello, engine"
    up2 = stack.up()
    assert up2.summary.resource_changes.get("update") == 1
    assert _toys(stack)[0]["outputs"]["length"] == len("hello, engine")

    stack.destroy()
    assert _toys(stack) == []
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert events == ["create", "read", "update", "delete"], events
    stack.workspace.remove_stack(stack.name)
