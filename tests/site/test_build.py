"""`mkdocs build --strict` passes on the real site and fails loudly, naming the page, on bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.site.conftest import ROOT, mkdocs_build


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


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """The site's sources in a scratch folder, to break on purpose."""
    for name in ("docs", "examples", "overrides"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("mkdocs.yml", "CLAUDE.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


BAD_PAGES = {
    "inline code": ('# Bad\n\n```python\nprint("x")\n```\n', "docs/bad.md:3: inline code block"),
    "missing file": (
        '# Bad\n\n```python\n--8<-- "examples/nowhere.py:x"\n```\n',
        "docs/bad.md:4: 'examples/nowhere.py' does not exist",
    ),
    "missing section": (
        '# Bad\n\n```python\n--8<-- "examples/patterns/testing/isolation.py:nope"\n```\n',
        "docs/bad.md:4: 'examples/patterns/testing/isolation.py' has no section 'nope'",
    ),
    "broken link": (
        "# Bad\n\nSee [the guide](guides/NOWHERE.md).\n",
        "'bad.md' contains a link 'guides/NOWHERE.md'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_PAGES))
def test_a_bad_page_fails_the_build_naming_the_page(project_copy: Path, tmp_path: Path, case: str) -> None:
    text, message = BAD_PAGES[case]
    (project_copy / "docs" / "bad.md").write_text(text)
    result = mkdocs_build(project_copy, tmp_path / "out")
    assert result.returncode != 0
    assert message in result.stderr


def test_a_section_no_page_shows_fails_the_build(project_copy: Path, tmp_path: Path) -> None:
    extra = project_copy / "examples" / "patterns" / "orphan.py"
    extra.write_text("# --8<-- [start:lonely]\nX = 1\n# --8<-- [end:lonely]\n")
    result = mkdocs_build(project_copy, tmp_path / "out")
    assert result.returncode != 0
    assert "examples/patterns/orphan.py:1: section 'lonely' is shown on no page" in result.stderr
