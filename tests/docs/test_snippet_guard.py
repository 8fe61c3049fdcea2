"""The snippet rules: every code block on the site is an include of a section of a file under examples/."""

from __future__ import annotations

import os
import time
from pathlib import Path

import markdown
import pytest
from lxml import html
from pymdownx.snippets import SnippetExtension

from docs_tooling import snippet_guard
from docs_tooling.snippet_guard import (
    INLINE_BLOCK,
    SnippetGuardError,
    SnippetGuardExtension,
    check_site,
    read_section,
    scan_page,
    source_links,
    stale_pages,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A tiny project: one example file with two sections, and a docs folder."""
    (tmp_path / "examples").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "examples" / "cache.py").write_text(
        "import time\n"
        "# --8<-- [start:get]\n"
        "def get(key: str) -> str:\n"
        "    # --8<-- [start:inner]\n"
        "    return key\n"
        "    # --8<-- [end:inner]\n"
        "# --8<-- [end:get]\n"
    )
    return tmp_path


def page(project: Path, text: str) -> list[str]:
    (project / "docs" / "page.md").write_text(text)
    return [str(problem) for problem in check_site(project / "docs", project)]


def test_the_real_site_keeps_every_rule() -> None:
    assert check_site(ROOT / "docs", ROOT) == []


def test_include_of_existing_sections_passes(project: Path) -> None:
    text = (
        '```python\n--8<-- "examples/cache.py:get"\n```\n\n```python\n--8<-- "examples/cache.py:inner"\n```\n'
    )
    assert page(project, text) == []


def test_inline_code_block_is_rejected_with_page_and_line(project: Path) -> None:
    problems = page(
        project, '# T\n\n```python\nprint("hi")\n```\n```python\n--8<-- "examples/cache.py:get"\n```\n'
    )
    assert problems == [
        f"docs/page.md:3: {INLINE_BLOCK}",
        "examples/cache.py:4: section 'inner' is shown on no page",
    ]


def test_inline_code_inside_an_admonition_or_tab_is_found(project: Path) -> None:
    text = '!!! note\n\n    ```bash\n    rm -rf /\n    ```\n\n=== "A"\n\n    ~~~python\n    x = 1\n    ~~~\n'
    problems = page(project, text)
    assert problems[:2] == [
        f"docs/page.md:3: {INLINE_BLOCK}",
        f"docs/page.md:9: {INLINE_BLOCK}",
    ]


def test_mermaid_is_the_one_inline_block_allowed(project: Path) -> None:
    text = '```mermaid\nflowchart LR\n  a --> b\n```\n```python\n--8<-- "examples/cache.py:get"\n```\n'
    text += '```python\n--8<-- "examples/cache.py:inner"\n```\n'
    assert page(project, text) == []


def test_include_of_a_missing_file_section_or_outside_examples_is_rejected(project: Path) -> None:
    text = (
        '```python\n--8<-- "examples/gone.py:get"\n```\n'
        '```python\n--8<-- "examples/cache.py:nope"\n```\n'
        '```python\n--8<-- "examples/cache.py"\n```\n'
        '```python\n--8<-- "README.md:intro"\n```\n'
    )
    assert page(project, text)[:4] == [
        "docs/page.md:2: 'examples/gone.py' does not exist",
        "docs/page.md:5: 'examples/cache.py' has no section 'nope'",
        "docs/page.md:8: 'examples/cache.py': name a section (path:section), not the whole file",
        "docs/page.md:11: 'README.md' is outside examples/: code shown on the site must be tested code",
    ]


def test_unclosed_fence_and_unclosed_section_are_reported(project: Path) -> None:
    (project / "examples" / "open.py").write_text("# --8<-- [start:half]\nx = 1\n")
    problems = page(project, '```python\n--8<-- "examples/open.py:half"\n```\n```python\nnever closed\n')
    assert "docs/page.md:2: examples/open.py:1: section 'half' is never closed" in problems
    assert "docs/page.md:4: code block opened with ``` is never closed" in problems
    assert "examples/open.py:1: section 'half' is never closed" in problems


def test_read_section_matches_what_snippets_renders(project: Path) -> None:
    assert (
        read_section(project / "examples" / "cache.py", "get") == "def get(key: str) -> str:\n    return key"
    )
    assert read_section(project / "examples" / "cache.py", "inner") == "return key"
    with pytest.raises(KeyError):
        read_section(project / "examples" / "cache.py", "missing")


def test_source_links_title_the_block_and_link_the_lines(project: Path) -> None:
    text = '    ```python\n    --8<-- "examples/cache.py:get"\n    ```\n'
    linked = source_links(text, "https://github.com/o/r/blob/main", project)
    assert linked.splitlines() == [
        '    ```python title="examples/cache.py"',
        '    --8<-- "examples/cache.py:get"',
        "    ```",
        "",
        '    <small class="snippet-source" data-path="examples/cache.py" data-section="get">'
        "[examples/cache.py](https://github.com/o/r/blob/main/examples/cache.py#L3-L6)</small>",
    ]


def test_scan_page_reports_each_include(project: Path) -> None:
    includes, problems = scan_page('```py\n--8<-- "examples/cache.py:get"\n```\n', "docs/p.md", project)
    assert problems == []
    assert [(i.page, i.line, i.path, i.section) for i in includes] == [
        ("docs/p.md", 2, "examples/cache.py", "get")
    ]


def test_command_line_lists_problems_and_exits_1(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "docs" / "page.md").write_text("```python\nx = 1\n```\n")
    assert snippet_guard.main([str(project)]) == 1
    err = capsys.readouterr().err
    assert "docs/page.md:1: inline code block" in err
    assert "snippet guard: 3 problem(s)" in err


def test_command_line_passes_on_the_real_site(capsys: pytest.CaptureFixture[str]) -> None:
    assert snippet_guard.main([str(ROOT)]) == 0
    assert capsys.readouterr().out == "snippet guard: 0 problem(s)\n"


SHOWS_BOTH = (
    '```python\n--8<-- "examples/cache.py:get"\n```\n```python\n--8<-- "examples/cache.py:inner"\n```\n'
)


def render(project: Path, text: str) -> str:
    """``text`` through the guard extension and pymdownx.snippets, as both site builds configure them."""
    extensions = [
        SnippetGuardExtension(repo_url="https://github.com/o/r", root=str(project)),
        SnippetExtension(base_path=[str(project)], check_paths=True, dedent_subsections=True),
        "pymdownx.superfences",
        "pymdownx.highlight",
    ]
    return markdown.Markdown(extensions=extensions).convert(text)


def test_the_extension_titles_each_include_block_and_links_its_lines(project: Path) -> None:
    page(project, SHOWS_BOTH)
    rendered = render(project, '```python\n--8<-- "examples/cache.py:get"\n```\n')
    assert '<span class="filename">examples/cache.py</span>' in rendered
    assert '<small class="snippet-source" data-path="examples/cache.py" data-section="get">' in rendered
    assert 'href="https://github.com/o/r/blob/main/examples/cache.py#L3-L6"' in rendered
    assert "def get(key: str) -> str:\n    return key" in html.fromstring(rendered).text_content()


def test_the_extension_stops_the_build_listing_every_problem(project: Path) -> None:
    (project / "docs" / "page.md").write_text("```python\nx = 1\n```\n")
    with pytest.raises(SnippetGuardError) as error:
        render(project, "# any page\n")
    assert f"docs/page.md:1: {INLINE_BLOCK}" in str(error.value)
    assert "examples/cache.py:2: section 'get' is shown on no page" in str(error.value)


def test_the_extension_checks_again_after_a_page_changes(project: Path) -> None:
    (project / "docs" / "page.md").write_text(SHOWS_BOTH)
    render(project, "# fine\n")
    (project / "docs" / "page.md").write_text(SHOWS_BOTH + "```python\nx = 1\n```\n")
    with pytest.raises(SnippetGuardError, match=r"docs/page\.md:7: inline code block"):
        render(project, "# fine\n")


def test_the_mkdocs_hook_passes_the_real_site() -> None:
    from mkdocs.config import load_config
    from mkdocs.structure.files import Files

    config = load_config(str(ROOT / "mkdocs.yml"))
    files = Files([])
    assert snippet_guard.on_files(files, config) is files


def test_the_mkdocs_hook_stops_the_build_listing_every_problem(project: Path) -> None:
    from mkdocs.config import load_config
    from mkdocs.exceptions import PluginError
    from mkdocs.structure.files import Files

    (project / "mkdocs.yml").write_text("site_name: t\n")
    (project / "docs" / "page.md").write_text("```python\nx = 1\n```\n")
    config = load_config(str(project / "mkdocs.yml"))
    with pytest.raises(PluginError) as error:
        snippet_guard.on_files(Files([]), config)
    assert f"docs/page.md:1: {INLINE_BLOCK}" in str(error.value)
    assert "examples/cache.py:2: section 'get' is shown on no page" in str(error.value)


def test_a_dirty_rebuild_also_rebuilds_the_pages_showing_a_changed_example(project: Path) -> None:
    from mkdocs.config import load_config
    from mkdocs.structure.files import get_files

    (project / "mkdocs.yml").write_text(f"site_name: t\nsite_dir: {project / 'site'}\n")
    page(project, SHOWS_BOTH)
    (project / "docs" / "other.md").write_text("# Shows no code\n")
    (project / "docs" / "api.md").write_text("# API\n\n::: cache.get\n")
    (project / "docs" / "other_api.md").write_text("# API\n\n::: elsewhere\n")
    config = load_config(str(project / "mkdocs.yml"))
    files = get_files(config)
    for file in files.documentation_pages():  # built once, an hour after every source was written
        Path(file.abs_dest_path).parent.mkdir(parents=True, exist_ok=True)
        Path(file.abs_dest_path).write_text("built")
        os.utime(file.abs_dest_path, (time.time() + 3600, time.time() + 3600))
    assert stale_pages(files, project) == []

    os.utime(project / "examples" / "cache.py", (time.time() + 7200, time.time() + 7200))  # then edited
    assert sorted(file.src_uri for file in stale_pages(files, project)) == ["api.md", "page.md"]
    snippet_guard.on_startup(command="serve", dirty=True)
    try:
        snippet_guard.on_files(files, config)
    finally:
        snippet_guard.on_startup(command="serve", dirty=False)
    rebuilt = {file.src_uri for file in files.documentation_pages() if file.is_modified()}
    assert rebuilt == {"api.md", "page.md"}
