"""The tech stack page states the versions locked in uv.lock, and nothing else."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `(?P<name>[a-z0-9-]+)` \| (?P<version>[0-9][^ |]*) \|", re.MULTILINE)


def test_every_version_on_the_page_is_the_locked_one() -> None:
    locked = {p["name"]: p["version"] for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}
    stated = {
        m["name"]: m["version"] for m in ROW.finditer((ROOT / "docs/reference/tech_stack.md").read_text())
    }
    assert len(stated) >= 30
    assert {name: version for name, version in stated.items() if locked.get(name) != version} == {}
