"""The site built by the commands of the Development commands page, once per test run.

Loaded as a plugin (``pytest_plugins`` in ``tests/conftest.py``), so the site tests and the test of
the commands page share one build, whichever xdist worker asks first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from filelock import FileLock

from docs_tooling.site_sources import copy_site_sources
from docs_tooling.snippet_guard import read_section

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ROOT / "examples" / "commands" / "development.sh"


def command(name: str) -> str:
    """A command of the Development commands page (a section of examples/commands/development.sh)."""
    return read_section(COMMANDS, name).strip()


def reader_env() -> dict[str, str]:
    """This environment as a reader's shell has it: no REQUIRE_SERVICES, no mkdocs 2.0 banner."""
    return {k: v for k, v in os.environ.items() if k != "REQUIRE_SERVICES"} | {"NO_MKDOCS_2_WARNING": "1"}


def run_script(
    script: str, cwd: Path, timeout: float = 300, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a shell command line as a reader would (in ``env``, or the reader's environment)."""
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=reader_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def mkdocs_build(root: Path, site_dir: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` of the site sources at ``root`` (a scratch copy: no project, no ``uv``)."""
    return run_script(f"{sys.executable} -m mkdocs build --strict --site-dir {site_dir}", root)


def zensical_build(root: Path) -> subprocess.CompletedProcess[str]:
    """The page's Zensical build in ``root``, a copy of the site sources: Zensical writes next to its
    config (``site/``, ``.cache/``), never into this repository."""
    zensical = Path(sys.executable).with_name("zensical")
    return run_script(command("build-zensical").replace("uv run zensical", str(zensical), 1), root)


def once_per_run(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], Path]) -> Path:
    """Run ``build`` once for the whole test run, however many xdist workers ask (a file lock in the
    run's shared temp folder); every caller gets its result, or its failure."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the folder all workers of this run share
    done = shared / f"{name}.json"
    with FileLock(str(shared / f"{name}.lock")):
        if not done.is_file():
            try:
                outcome = {"path": str(build(shared / name))}
            except AssertionError as failure:
                outcome = {"error": str(failure)}
            done.write_text(json.dumps(outcome))
    outcome = json.loads(done.read_text())
    assert "error" not in outcome, outcome.get("error")
    return Path(outcome["path"])


def _mkdocs_site(folder: Path) -> Path:
    """The page's build command, exactly, with only the output moved out of the repository."""
    result = run_script(f"{command('build')} --site-dir {folder}", ROOT)
    assert result.returncode == 0, f"{command('build')} failed:\n{result.stderr[-5000:]}"
    return folder


def _zensical_site(folder: Path) -> Path:
    result = zensical_build(copy_site_sources(ROOT, folder))
    assert result.returncode == 0, f"{command('build-zensical')} failed:\n{result.stderr[-5000:]}"
    return folder / "site"


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site as ``uv run mkdocs build --strict`` writes it, built once per test run."""
    return once_per_run(tmp_path_factory, "mkdocs-site", _mkdocs_site)


@pytest.fixture(scope="session")
def zensical_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same sources built by Zensical, once per test run."""
    return once_per_run(tmp_path_factory, "zensical-site", _zensical_site)
