"""The CLAUDE.md template a reader copies into a service's repository names only commands that work:
each, with its placeholders filled for this repository's ``pg_data_service``, is the command of a
section of ``examples/commands/`` that a test runs (Development commands, operations)."""

from __future__ import annotations

import re

from docs_tooling.snippet_guard import read_section, sections_in
from tests.site_builds import ROOT

TEMPLATE = ROOT / "examples" / "templates" / "CLAUDE.md"
FILLED = {"<package>": "pg_data_service", "<queue>": "worker.order-placed", "src tests": "examples tests"}


def without_environment(command: str) -> str:
    """``A=1 B=2 uv run x`` → ``uv run x``, spaces squeezed: the settings differ, the command does not."""
    return re.sub(r"\s+", " ", re.sub(r"^(?:\w+=\S+\s+)+", "", command.strip()))


def commands_of_the_template() -> list[str]:
    table = TEMPLATE.read_text().split("## Commands", 1)[1].split("##", 1)[0]
    found = []
    for command in re.findall(r"`([^`]+)`", table):
        for placeholder, value in FILLED.items():
            command = command.replace(placeholder, value)
        found.append(without_environment(command))
    return found


def commands_our_tests_run() -> set[str]:
    """Every command line of every section of examples/commands, continuation lines joined, the
    environment assignments in front of it dropped."""
    lines = set()
    for script in (ROOT / "examples" / "commands").glob("*.sh"):
        for name in sections_in(script):
            text = read_section(script, name).replace("\\\n", " ")
            for line in text.splitlines():
                line = without_environment(line)
                if line and not line.startswith("#"):
                    lines.add(line)
    return lines


def test_every_command_of_the_template_is_one_a_test_runs() -> None:
    commands = commands_of_the_template()
    assert len(commands) >= 9
    tested = commands_our_tests_run()
    untested = [c for c in commands if not any(line == c or line.startswith(c + " ") for line in tested)]
    assert untested == []


def test_the_template_names_every_placeholder_it_uses() -> None:
    used = set(re.findall(r"<[a-z]+>", TEMPLATE.read_text()))
    assert used == {"<package>", "<queue>"}
    assert "replace <package>" in TEMPLATE.read_text()
    assert "and <queue>" in TEMPLATE.read_text()
