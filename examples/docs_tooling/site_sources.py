"""The files a build of the site reads, and a copy of them to build, edit or break elsewhere.

Zensical writes next to its config (``site/``, ``.cache/``) and a test must not edit the real
pages, so builds that write or edit run on a copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

# Pages include examples/ (code), CLAUDE.md (the AI guide) and benchmarks/results/ (measured tables).
SITE_SOURCES = ("docs", "examples", "overrides", "benchmarks/results", "mkdocs.yml", "CLAUDE.md")


def copy_site_sources(root: Path, target: Path) -> Path:
    """Copy the site sources of the project at ``root`` into ``target``; return ``target``."""
    for name in SITE_SOURCES:
        source, copy = root / name, target / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__", ".*"))
        else:
            shutil.copy(source, copy)
    return target
