"""The plain `pulumi` CLI, run as a user runs it, from Python.

Every operation is one `pulumi` command in the project directory, with `--stack`; nothing goes
through the Automation API, so what runs is what a user's `pulumi up` runs: the CLI, the Python
language host starting `__main__.py`, the dynamic-provider plugin. Secrets are passed on stdin, never
on a command line. A failed command raises `CommandError` with the command's whole output.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / ".tools" / "bin"
LANGUAGE_HOST = "pulumi-language-python"
TIMEOUT_S = 900


def search_path(path: str | None = None) -> str:
    """PATH with the project's pulumi (.tools/bin) and venv first, as `. scripts/env.sh` sets it."""
    rest = path if path is not None else os.environ.get("PATH", "")
    return os.pathsep.join([str(TOOLS), str(ROOT / ".venv" / "bin"), rest])


def isolated_env(base: Path, passphrase: str = "devkit-passphrase") -> dict[str, str]:
    """A private file:// backend and PULUMI_HOME under `base`: no login, nothing shared with the user."""
    (base / "state").mkdir(parents=True, exist_ok=True)
    return {
        "PULUMI_BACKEND_URL": f"file://{base / 'state'}",
        "PULUMI_HOME": str(base / "pulumi-home"),
        "PULUMI_CONFIG_PASSPHRASE": passphrase,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
    }


class CommandError(Exception):
    """A `pulumi` command exited non-zero; str() holds the command, its stdout and stderr."""

    def __init__(self, argv: list[str], returncode: int, stdout: str, stderr: str) -> None:
        self.argv, self.returncode, self.stdout, self.stderr = argv, returncode, stdout, stderr
        super().__init__(f"`{' '.join(argv)}` exited {returncode}\nstdout:\n{stdout}\nstderr:\n{stderr}")


@dataclass(frozen=True)
class OutputValue:
    value: Any
    secret: bool


# The "Resources:" block the CLI prints at the end of preview/up/refresh/destroy.
_CHANGE = re.compile(r"^\s*(?:[+~-]|\+-|-\+)?\s*(\d+) (to create|created|to update|updated|to delete|deleted|"
                     r"to replace|replaced|unchanged|to import|imported)\b", re.M)
_KIND = {"to create": "create", "created": "create", "to update": "update", "updated": "update",
         "to delete": "delete", "deleted": "delete", "to replace": "replace", "replaced": "replace",
         "unchanged": "same", "to import": "import", "imported": "import"}


def parse_changes(text: str) -> dict[str, int]:
    """{"create": 2, "same": 14, ...} from the summary a command printed (Automation API's naming)."""
    block = text.rsplit("Resources:", 1)[-1] if "Resources:" in text else ""
    out: dict[str, int] = {}
    for n, words in _CHANGE.findall(block):
        out[_KIND[words]] = out.get(_KIND[words], 0) + int(n)
    return out


@dataclass
class Result:
    """One finished command: what it printed, the change summary, and (read on first use) the outputs."""

    stack: Stack
    stdout: str
    stderr: str
    changes: dict[str, int] = field(default_factory=dict)

    @cached_property
    def outputs(self) -> dict[str, OutputValue]:
        return self.stack.outputs()


class Project:
    """A directory holding Pulumi.yaml; `env` is added to the environment of every command."""

    def __init__(self, path: Path, env: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        self.env = dict(env or {})

    def run(self, *args: str, input: str | None = None, check: bool = True, echo: bool = False,
            timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
        """`pulumi <args>` in the project directory. `echo` prints its output as it comes (stderr
        merged into stdout), for a person watching, e.g. the demo."""
        env = {**os.environ, **self.env}
        env["PATH"] = search_path(env.get("PATH", ""))
        argv = ["pulumi", *args]
        if echo:
            res = _run_echoed(argv, self.path, env, timeout)
        else:
            res = subprocess.run(argv, cwd=self.path, env=env, input=input, capture_output=True, text=True,
                                 timeout=timeout)
        if check and res.returncode != 0:
            raise CommandError(argv, res.returncode, res.stdout, res.stderr)
        return res

    def stack(self, name: str) -> Stack:
        """`pulumi stack select --create <name>`: the stack, made if it does not exist."""
        self.run("stack", "select", "--create", name)
        return Stack(self, name)


def _run_echoed(argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    lines: list[str] = []
    with subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line)
        code = proc.wait(timeout=timeout)
    return subprocess.CompletedProcess(argv, code, "".join(lines), "")


class Stack:
    def __init__(self, project: Project, name: str) -> None:
        self.project = project
        self.name = name
        self.config: dict[str, Any] = {}  # the plain config last written by write_config

    @property
    def work_dir(self) -> Path:
        return self.project.path

    @property
    def config_file(self) -> Path:
        return self.work_dir / f"Pulumi.{self.name}.yaml"

    def pulumi(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.project.run(*args, "--stack", self.name, **kw)

    # --- the operations -------------------------------------------------------------------------
    def _op(self, *args: str, echo: bool = False) -> Result:
        res = self.pulumi(*args, "--color", "never", echo=echo)
        return Result(self, res.stdout, res.stderr, parse_changes(res.stdout))

    def preview(self, *extra: str, echo: bool = False) -> Result:
        return self._op("preview", *extra, echo=echo)

    def up(self, *extra: str, echo: bool = False) -> Result:
        """`pulumi up --yes --skip-preview`: what a script or CI runs (no prompt, no second preview)."""
        return self._op("up", "--yes", "--skip-preview", *extra, echo=echo)

    def refresh(self, *extra: str, echo: bool = False) -> Result:
        return self._op("refresh", "--yes", "--skip-preview", *extra, echo=echo)

    def destroy(self, *extra: str, echo: bool = False) -> Result:
        return self._op("destroy", "--yes", "--skip-preview", *extra, echo=echo)

    def cancel(self) -> None:
        self.pulumi("cancel", "--yes")

    # --- outputs and state ----------------------------------------------------------------------
    def outputs(self) -> dict[str, OutputValue]:
        """`pulumi stack output --json`, with and without --show-secrets: the values and which are secret."""
        plain = json.loads(self.pulumi("stack", "output", "--json").stdout or "{}")
        shown = json.loads(self.pulumi("stack", "output", "--json", "--show-secrets").stdout or "{}")
        return {k: OutputValue(v, plain.get(k) == "[secret]" and v != "[secret]") for k, v in shown.items()}

    def export(self, show_secrets: bool = False) -> dict[str, Any]:
        """`pulumi stack export`: the checkpoint (`deployment` holds resources, pending_operations)."""
        return json.loads(self.pulumi("stack", "export", *(["--show-secrets"] if show_secrets else [])).stdout)

    def resources(self, type_suffix: str = "runpod:Pod") -> list[dict]:
        return [r for r in self.export()["deployment"].get("resources") or [] if r["type"].endswith(type_suffix)]

    def state_text(self) -> str:
        """What is really stored: every file of the file:// backend (state, history, backups) and a
        plain `pulumi stack export`."""
        url = {**os.environ, **self.project.env}["PULUMI_BACKEND_URL"]
        backend = Path(url.removeprefix("file://"))
        files = [p.read_text(errors="replace") for p in sorted(backend.rglob("*")) if p.is_file()]
        export = self.pulumi("stack", "export").stdout
        assert '"resources"' in export
        return "\n".join(files + [export])

    # --- config ---------------------------------------------------------------------------------
    def set_config(self, key: str, value: str, *, secret: bool = False, path: bool = False) -> None:
        """`pulumi config set [--secret] [--path] <key>`, the value on stdin (never on a command line)."""
        self.pulumi("config", "set", key, *(["--secret"] if secret else ["--plaintext"]),
                    *(["--path"] if path else []), input=value)

    def write_config(self, config: dict[str, Any]) -> None:
        """Replace the plain config in Pulumi.<stack>.yaml, as a user edits it (keys without a namespace
        get `runpod-deploy:`); secrets set with set_config and the encryption salt stay."""
        doc = (yaml.safe_load(self.config_file.read_text()) if self.config_file.exists() else None) or {}
        secure = {k: v for k, v in (doc.get("config") or {}).items() if isinstance(v, dict) and "secure" in v}
        doc["config"] = {**{k if ":" in k else f"runpod-deploy:{k}": v for k, v in config.items()}, **secure}
        self.config_file.write_text(yaml.safe_dump(doc, sort_keys=False))
        self.config = config
