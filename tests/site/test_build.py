"""Both builds pass on the real site and make the same pages; a bad page fails each build, naming it."""

from __future__ import annotations

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
def linking_nowhere(tmp_path: Path) -> Path:
    project = copy_site_sources(ROOT, tmp_path / "project")
    (project / "docs" / "bad.md").write_text("# Bad\n\nSee [the guide](guides/NOWHERE.md).\n")
    return project


def test_a_broken_link_fails_the_mkdocs_build_naming_the_page(linking_nowhere: Path, tmp_path: Path) -> None:
    result = mkdocs_build(linking_nowhere, tmp_path / "out")
    assert result.returncode != 0
    assert "'bad.md' contains a link 'guides/NOWHERE.md'" in result.stderr


def test_a_broken_link_fails_the_zensical_build_naming_the_page(linking_nowhere: Path) -> None:
    result = zensical_build(linking_nowhere)
    assert result.returncode != 0
    assert "bad.md:3:" in result.stdout + result.stderr
    assert "page does not exist" in result.stdout + result.stderr
