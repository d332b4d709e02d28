"""The READMEs name files of this repository: each such path must exist, so a rename or a removal
cannot leave the prose pointing at something gone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "startup/README.md", "runpod_emulator/README.md", "bench/README.md")
TOP = ("startup", "runpod_deploy", "runpod_provider", "runpod_emulator", "devkit", "tests", "scripts", "bench",
       "docs", "agent", "children", "locks")
# A repository path in backticks (`startup/agent/idle.py`, `agent/proc.py` beside startup/), or a link target.
TICKED = re.compile(rf"`((?:{'|'.join(TOP)})/[\w./-]*)`")
# Paths in other repositories, quoted as sources.
ELSEWHERE = {"docs/worklog/2026-08-01-fern-runpod-lane-a.md"}
LINK = re.compile(r"\]\((?!https?:|#)([^)#\s]+)")


def named_paths(doc: Path) -> set[str]:
    text = doc.read_text()
    return (set(TICKED.findall(text)) | set(LINK.findall(text))) - ELSEWHERE


@pytest.mark.parametrize("doc", DOCS)
def test_every_path_a_readme_names_exists(doc):
    paths = named_paths(ROOT / doc)
    assert paths, f"{doc}: no path found: is the pattern still right?"
    # relative to the README, the repository, or startup/ (`agent/…`, `children/…`, `locks/…`)
    bases = ((ROOT / doc).parent, ROOT, ROOT / "startup")
    missing = sorted(p for p in paths if not any((base / p).exists() for base in bases))
    assert not missing, f"{doc} names paths that do not exist: {missing}"
