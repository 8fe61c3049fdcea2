"""Tools that read the deploy configs: found on PATH, else skipped (failed under REQUIRE_SERVICES=1)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from patterns.testing.pytest_fixtures import skip_or_fail

DEPLOY = Path(__file__).parents[2] / "examples" / "deploy"


def tool(name: str, package: str, how: str = "Debian: apt-get install") -> str:
    found = shutil.which(name)
    if found is None:
        skip_or_fail(f"{name} is not installed ({how} {package})")
    return found


@pytest.fixture(scope="session")
def kubectl() -> str:
    """kubectl with its built-in kustomize (v5): renders the overlays, needs no cluster."""
    return tool("kubectl", "https://kubernetes.io/docs/tasks/tools/", how="install it from")


@pytest.fixture(scope="session")
def promtool() -> str:
    return tool("promtool", "prometheus")
