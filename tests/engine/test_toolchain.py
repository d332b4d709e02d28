"""The built `pulumi` runs a Python program with a dynamic resource through plain `pulumi up`,
`refresh` and `destroy` on the file backend: the CLI, the Python language host, the engine and the
dynamic-provider launcher are all real. No mocks."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from devkit.cli import LANGUAGE_HOST, ROOT, Project

PINNED = (ROOT / "scripts" / "setup.sh").read_text().split('PULUMI_VERSION="${PULUMI_VERSION:-', 1)[1].split("}")[0]

TOY_PROGRAM = """\
import pulumi
from toy_provider import Toy

toy = Toy("toy", pulumi.Config().require("greeting"))
pulumi.export("length", toy.length)
"""


def toy_project(tmp_path: Path) -> Project:
    """A minimal Python project of its own: Pulumi.yaml, __main__.py and the toy provider module."""
    work = tmp_path / "toy-project"
    work.mkdir()
    (work / "Pulumi.yaml").write_text(
        f"name: toolchain-test\nruntime:\n  name: python\n  options:\n    virtualenv: {ROOT / '.venv'}\n")
    (work / "__main__.py").write_text(TOY_PROGRAM)
    shutil.copy(Path(__file__).with_name("toy_provider.py"), work / "toy_provider.py")
    return Project(work, env={"TOY_LOG": str(tmp_path / "toy.log")})


def _toys(stack) -> list[dict]:
    resources = stack.export()["deployment"].get("resources") or []
    return [r for r in resources if r["type"] == "pulumi-python:dynamic/toy:Toy"]


def test_pulumi_version_is_at_least_the_pinned_one(pulumi_cli: str):
    have = tuple(int(x) for x in re.match(r"v?(\d+)\.(\d+)\.(\d+)", pulumi_cli).groups())
    assert have >= tuple(int(x) for x in PINNED.split(".")), f"pulumi {pulumi_cli} < pinned {PINNED}"


def test_pulumi_about_finds_the_python_language_host(backend: Path, tmp_path: Path):
    """`pulumi about` in this project's own checkout names the python language plugin. Its output is
    printed, so `pytest -s` or a failure shows it (.ci/run prints it too)."""
    from devkit.program import checkout

    res = Project(checkout(tmp_path / "project")).run("about")
    print(res.stdout)
    plugins = res.stdout.split("Plugins", 1)[-1]
    assert re.search(r"^language\s+python\b", plugins, re.M), res.stdout + res.stderr
    assert shutil.which(LANGUAGE_HOST), f"{LANGUAGE_HOST} not on PATH"


def test_dynamic_resource_goes_through_up_refresh_update_destroy(backend: Path, tmp_path: Path):
    project = toy_project(tmp_path)
    stack = project.stack("toolchain")
    stack.set_config("greeting", "hello")
    up = stack.up()
    assert up.changes == {"create": 2}, up.stdout  # the stack and the toy
    assert up.outputs["length"].value == 5
    [toy] = _toys(stack)
    assert toy["outputs"]["greeting"] == "hello" and toy["id"]

    stack.refresh()
    assert _toys(stack)[0]["id"] == toy["id"]

    stack.set_config("greeting", "hello, engine")
    up2 = stack.up()
    assert up2.changes.get("update") == 1
    assert _toys(stack)[0]["outputs"]["length"] == len("hello, engine")

    stack.destroy()
    assert _toys(stack) == []
    events = [json.loads(line)["event"] for line in (tmp_path / "toy.log").read_text().splitlines()]
    assert events == ["create", "read", "update", "delete"], events
    project.run("stack", "rm", "--yes", "--stack", stack.name)
