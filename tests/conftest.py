"""Every test can ask for real services; the full run also proves each shown Python section ran.

The service fixtures live in examples/ (so the site can show them) and load as a plugin.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from docs_tooling.snippet_guard import scan_page, sections_in

pytest_plugins = ["patterns.testing.pytest_fixtures", "tests.site_builds", "tests.system.running"]
ROOT = Path(__file__).resolve().parents[1]
UNEXERCISED = pytest.StashKey[list[str]]()


def unexercised_sections(executed: dict[str, set[int]], statements: Callable[[str], list[int]]) -> list[str]:
    """Python sections shown on a page whose code never ran during the tests.

    Importing a module runs its ``def`` lines, so a section counts as exercised only when a
    statement *inside* it ran: an indented one if it has any (a function body), else any.
    """
    shown: set[tuple[str, str]] = set()
    for page in (ROOT / "docs").rglob("*.md"):
        includes, _ = scan_page(page.read_text(encoding="utf-8"), page.name, ROOT)
        shown.update((i.path, i.section) for i in includes if i.path.endswith(".py") and i.section)
    missing = []
    for path, section in sorted(shown):
        source = ROOT / path
        start, end = sections_in(source)[section]
        text = source.read_text(encoding="utf-8").splitlines()
        inside = [n for n in statements(str(source.resolve())) if start < n < (end or start)]
        base = min((len(text[n - 1]) - len(text[n - 1].lstrip()) for n in inside), default=0)
        deeper = [n for n in inside if len(text[n - 1]) - len(text[n - 1].lstrip()) > base]
        ran = executed.get(str(source.resolve()), set())
        if not ran.intersection(deeper or inside):
            missing.append(f"{path}:{start}: section {section!r} is shown on the site but no test ran it")
    return missing


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Fail loudly where pytest-xdist's ``--dist=loadgroup`` stops grouping (pytest-xdist #1386, on
    pytest 9.2): tests that share a costly fixture would each start it again, and nothing would say so."""
    if not config.getoption("loadgroup", default=False):
        return
    ungrouped = [
        item.nodeid for item in items if item.get_closest_marker("xdist_group") and "@" not in item.nodeid
    ]
    if ungrouped:
        more = f" and {len(ungrouped) - 1} more" if len(ungrouped) > 1 else ""
        raise pytest.UsageError(f"pytest-xdist did not group {ungrouped[0]}{more}: see pytest-xdist #1386")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """On a full run with coverage, fail when a shown Python section never ran."""
    config = session.config
    plugin = config.pluginmanager.getplugin("_cov")
    controller = getattr(plugin, "cov_controller", None)
    full_run = config.args_source == pytest.Config.ArgsSource.TESTPATHS and not (
        config.option.keyword or config.option.markexpr or config.option.collectonly
    )
    if controller is None or not full_run or session.testsfailed:
        return
    data = controller.cov.get_data()
    executed = {name: set(data.lines(name) or ()) for name in data.measured_files()}
    missing = unexercised_sections(executed, lambda name: list(controller.cov.analysis2(name)[1]))
    if missing:
        config.stash[UNEXERCISED] = missing
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Printed last, so a run that fails only for this says why where the reader looks."""
    if missing := config.stash.get(UNEXERCISED, []):
        terminalreporter.section("shown on the site but never run", red=True)
        for line in missing:
            terminalreporter.write_line(line, red=True)
