"""Tools that read the deploy configs: found on PATH, else skipped (failed under REQUIRE_SERVICES=1)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from patterns.testing.pytest_fixtures import skip_or_fail

DEPLOY = Path(__file__).parents[2] / "examples" / "deploy"


def tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        skip_or_fail(f"{name} is not installed (Debian: apt-get install {package})")
    return found


@pytest.fixture(scope="session")
def promtool() -> str:
    return tool("promtool", "prometheus")
