"""Both builds pass on the real site and make the same pages; a bad page fails each build, naming it."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from lxml import html

from docs_tooling.site_sources import copy_site_sources
from docs_tooling.snippet_guard import fenced_blocks
from tests.site.site_pages import PAGES
from tests.site_builds import ROOT, mkdocs_build, zensical_build


def test_the_site_builds_strictly_with_offline_assets(built_site: Path) -> None:
    home = (built_site / "index.html").read_text(encoding="utf-8")
    assert "assets/vendor/mermaid/mermaid.min.js" in home
    assert "fonts.googleapis.com" not in home
    assert "unpkg.com" not in home
    assert (built_site / "404.html").is_file()
    assert (built_site / "search" / "search_index.json").is_file()


def test_llms_txt_lists_the_pages_and_the_full_variant_holds_their_code(built_site: Path) -> None:
    index = (built_site / "llms.txt").read_text(encoding="utf-8")
    full = (built_site / "llms-full.txt").read_text(encoding="utf-8")
    assert index.startswith("# Python Microservice Patterns")
    assert "[Real services in tests](" in index
    assert "def start_nx_27017(stack: ExitStack) -> str:" in full


def code_blocks(site: Path) -> dict[str, list[tuple[str, str, str]]]:
    """Each page of a built site → its code blocks as (source file shown, linked lines, code text),
    and its diagrams as ("mermaid", "", diagram text)."""
    pages = {}
    for page in sorted(site.rglob("index.html")):
        tree = html.fromstring(page.read_bytes())
        blocks = []
        for block in tree.xpath("//div[contains(@class, 'highlight')]"):
            source = block.xpath("following-sibling::p[1]/small[@class='snippet-source']")
            path = source[0].get("data-path") if source else ""
            lines = source[0].xpath("string(a/@href)").rsplit("#", 1)[-1] if source else ""
            blocks.append((path, lines, block.xpath("string(.//code)")))
        blocks += [
            ("mermaid", "", diagram.text_content()) for diagram in tree.xpath("//pre[@class='mermaid']")
        ]
        pages[page.parent.relative_to(site).as_posix()] = blocks
    return pages


def test_zensical_builds_the_same_pages_with_the_same_code_blocks(
    built_site: Path, zensical_site: Path
) -> None:
    mkdocs, zensical = code_blocks(built_site), code_blocks(zensical_site)
    assert sorted(zensical) == sorted(mkdocs)
    shown = Counter(kind or "generated" for blocks in mkdocs.values() for kind, _, _ in blocks)
    written = Counter(
        "mermaid" if block.language == "mermaid" else "included"
        for page in PAGES.values()
        for block in fenced_blocks(page.read_text(encoding="utf-8"))
    )
    assert shown["mermaid"] == written["mermaid"]
    assert shown.total() - shown["mermaid"] - shown["generated"] == written["included"], (
        "each titled and linked"
    )
    for page, blocks in mkdocs.items():
        assert zensical[page] == blocks, page
    assert (zensical_site / "llms-full.txt").is_file()


BAD_PAGE = (
    "# Bad\n\n"
    '```python\nprint("x")\n```\n\n'  # line 3: inline code
    '```python\n--8<-- "examples/nowhere.py:x"\n```\n\n'  # line 8: a file that is not there
    '```python\n--8<-- "examples/patterns/testing/isolation.py:nope"\n```\n'  # line 12: no such section
)
BAD_PAGE_PROBLEMS = [
    "docs/bad.md:3: inline code block: move the code into a file under examples/",
    "docs/bad.md:8: 'examples/nowhere.py' does not exist",
    "docs/bad.md:12: 'examples/patterns/testing/isolation.py' has no section 'nope'",
    "examples/patterns/orphan.py:1: section 'lonely' is shown on no page",
]


@pytest.fixture
def broken_copy(tmp_path: Path) -> Path:
    """The site's sources with a page that breaks every snippet rule, and a section no page shows."""
    project = copy_site_sources(ROOT, tmp_path / "project")
    (project / "docs" / "bad.md").write_text(BAD_PAGE)
    (project / "examples" / "patterns" / "orphan.py").write_text(
        "# --8<-- [start:lonely]\nX = 1\n# --8<-- [end:lonely]\n"
    )
    return project


def test_every_broken_snippet_rule_fails_the_mkdocs_build_with_page_and_line(
    broken_copy: Path, tmp_path: Path
) -> None:
    result = mkdocs_build(broken_copy, tmp_path / "out")
    assert result.returncode != 0
    for problem in BAD_PAGE_PROBLEMS:
        assert problem in result.stderr


def test_every_broken_snippet_rule_fails_the_zensical_build_with_page_and_line(broken_copy: Path) -> None:
    result = zensical_build(broken_copy)
    assert result.returncode != 0
    for problem in BAD_PAGE_PROBLEMS:
        assert problem in result.stderr


@pytest.fixture
def one_page_site(tmp_path: Path) -> Path:
    """The site's own configuration and theme around one page of its own. What names the real pages
    is left out (the nav, the llms.txt sections, and the guard's hook, which wants every example
    shown): each build takes about a second instead of rendering the whole site again."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "docs", project / "docs", ignore=shutil.ignore_patterns("*.md"))
    shutil.copytree(ROOT / "docs" / "includes", project / "docs" / "includes", dirs_exist_ok=True)  # appended
    shutil.copytree(ROOT / "overrides", project / "overrides")
    (project / "examples").mkdir()  # watched by the config; no example, so no section to show
    config = (ROOT / "mkdocs.yml").read_text()
    config = re.sub(r"^(hooks|nav):\n(?:[ -].*\n|\n)*", "", config, flags=re.MULTILINE)
    config = re.sub(r"^  - llmstxt:\n(?:      .*\n|\n)*", "", config, flags=re.MULTILINE)
    (project / "mkdocs.yml").write_text(config)
    (project / "docs" / "index.md").write_text("# Home\n\nSee [the other page](bad.md).\n")
    (project / "docs" / "bad.md").write_text("# Bad\n\nSee [the guide](index.md).\n")
    return project


def link_nowhere(project: Path) -> None:
    (project / "docs" / "bad.md").write_text("# Bad\n\nSee [the guide](guides/NOWHERE.md).\n")


def test_a_broken_link_fails_the_mkdocs_build_naming_the_page(one_page_site: Path, tmp_path: Path) -> None:
    built = mkdocs_build(one_page_site, tmp_path / "out")
    assert built.returncode == 0, built.stderr  # the same site, every link whole
    link_nowhere(one_page_site)
    result = mkdocs_build(one_page_site, tmp_path / "out")
    assert result.returncode != 0
    assert "'bad.md' contains a link 'guides/NOWHERE.md'" in result.stderr


def test_a_broken_link_fails_the_zensical_build_naming_the_page(one_page_site: Path) -> None:
    built = zensical_build(one_page_site)
    assert built.returncode == 0, built.stdout + built.stderr
    link_nowhere(one_page_site)
    result = zensical_build(one_page_site)
    assert result.returncode != 0
    assert "bad.md:3:" in result.stdout + result.stderr
    assert "page does not exist" in result.stdout + result.stderr
