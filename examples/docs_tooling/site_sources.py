"""The files a build of the site reads, and a copy of them to build, edit or break elsewhere.

Zensical writes next to its config (``site/``, ``.cache/``) and a test must not edit the real
pages, so builds that write or edit run on a copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

SITE_SOURCES = ("docs", "examples", "overrides", "mkdocs.yml", "CLAUDE.md")


def copy_site_sources(root: Path, target: Path) -> Path:
    """Copy the site sources of the project at ``root`` into ``target``; return ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for name in SITE_SOURCES:
        source = root / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__", ".*"))
        else:
            shutil.copy(source, target / name)
    return target
