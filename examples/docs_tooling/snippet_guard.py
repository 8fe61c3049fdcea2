r"""Keep every code block on the site a tested region of a file under ``examples/``.

The guard runs four ways, all with the same rules and messages:

* as a Markdown extension (``markdown_extensions:`` in ``mkdocs.yml``), which both
  MkDocs and Zensical run: the build stops and lists every broken rule with its page
  (or example file) and line; each include block gets its file as title and a link
  to its exact lines;
* as an MkDocs hook (``hooks:``): the same check before any page is rendered, and on
  a ``mkdocs serve --dirty`` rebuild, the pages whose included code changed;
* from pytest (``tests/docs/test_snippet_guard.py``);
* from the shell: ``uv run python -m docs_tooling.snippet_guard``.

The rules:

1. A fenced block holds only ``--8<-- "examples/...:section"`` include lines
   (``mermaid`` diagrams excepted: they are the one thing written inline).
2. Every include names a file under ``examples/`` that exists and a section that
   is opened and closed in it.
3. Every section marked in ``examples/`` is shown by some page, so no snippet
   rots unseen.

```py
from pathlib import Path

from docs_tooling.snippet_guard import scan_page

_, problems = scan_page("~~~python\nprint('hi')\n~~~\n", "docs/demo.md", Path())
print(problems[0])
#> docs/demo.md:1: inline code block: move the code into a file under examples/ and include a section of it
```
"""

from __future__ import annotations

import functools
import re
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markdown import Extension, Markdown
from markdown.preprocessors import Preprocessor

if TYPE_CHECKING:
    from mkdocs.config.defaults import MkDocsConfig
    from mkdocs.structure.files import File, Files

# --8<-- [start:patterns]
# The grammar pymdownx.snippets uses for section markers and include lines.
SECTION_MARKER = re.compile(
    r"(?<!;)-+8<-+[ \t]+\[[ \t]*(?P<kind>start|end)[ \t]*:[ \t]*(?P<name>[a-z][-_0-9a-z]*)[ \t]*\]",
    re.IGNORECASE,
)
INCLUDE_LINE = re.compile(
    r'^[ \t]*-+8<-+[ \t]+"(?P<path>[^":]+)(?::(?P<section>[a-z][-_0-9a-z]*))?"[ \t]*$',
    re.IGNORECASE,
)
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
INLINE_LANGUAGES = frozenset({"mermaid"})
INLINE_BLOCK = "inline code block: move the code into a file under examples/ and include a section of it"
# --8<-- [end:patterns]
API_BLOCK = re.compile(r"^:::[ \t]+([\w.]+)", re.MULTILINE)  # mkdocstrings: `::: module.name` documents it

EXAMPLE_SUFFIXES = frozenset(
    {".py", ".sh", ".yaml", ".yml", ".toml", ".json", ".ini", ".cfg", ".conf", ".txt", ".env"}
)


@dataclass(frozen=True)
class Problem:
    """One broken rule, located as ``path:line`` so an editor can jump to it."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True)
class Include:
    """One ``--8<--`` include line found inside a fenced block of a page."""

    page: str
    line: int
    path: str
    section: str | None


@dataclass(frozen=True)
class Block:
    """A fenced block of a page: where it starts and what it says."""

    line: int
    indent: str
    fence: str
    language: str
    body: list[tuple[int, str]]
    end_line: int | None


def sections_in(path: Path) -> dict[str, tuple[int, int | None]]:
    """Map each section name in ``path`` to its (start line, end line or None)."""
    found: dict[str, tuple[int, int | None]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        for marker in SECTION_MARKER.finditer(line):
            name = marker["name"].lower()
            if marker["kind"].lower() == "start":
                found.setdefault(name, (number, None))
            elif name in found and found[name][1] is None:
                found[name] = (found[name][0], number)
    return found


def read_section(path: Path, name: str) -> str:
    """Return a section as pymdownx.snippets renders it: dedented, nested markers dropped."""
    lines: list[str] = []
    inside = False
    for line in path.read_text(encoding="utf-8").splitlines():
        marker = SECTION_MARKER.search(line)
        if marker and marker["name"].lower() == name:
            if marker["kind"].lower() == "end" and inside:
                break
            inside = True
            continue
        if inside and not marker:
            lines.append(line)
    if not inside:
        raise KeyError(f"{path}: no section {name!r}")
    return textwrap.dedent("\n".join(lines))


def fenced_blocks(text: str) -> Iterator[Block]:
    """Yield the fenced blocks of a Markdown text, nested in admonitions and tabs too."""
    lines = text.splitlines()
    number = 0
    while number < len(lines):
        opening = FENCE.match(lines[number])
        number += 1
        if not opening:
            continue
        start, fence = number, opening["fence"]
        language = (opening["info"].split() or [""])[0].lstrip(".{").lower()
        body: list[tuple[int, str]] = []
        end_line: int | None = None
        while number < len(lines):
            line = lines[number]
            number += 1
            closing = FENCE.match(line)
            if closing and closing["fence"].startswith(fence) and not closing["info"].strip():
                end_line = number
                break
            body.append((number, line))
        yield Block(start, opening["indent"], fence, language, body, end_line)


# --8<-- [start:scan-page]
def scan_page(text: str, page: str, root: Path) -> tuple[list[Include], list[Problem]]:
    """Check one page: every fenced block must be an include of an existing section."""
    includes: list[Include] = []
    problems: list[Problem] = []
    for block in fenced_blocks(text):
        if block.end_line is None:
            problems.append(
                Problem(page, block.line, f"code block opened with {block.fence} is never closed")
            )
            continue
        if block.language in INLINE_LANGUAGES:
            continue
        code = [(number, line) for number, line in block.body if line.strip()]
        if not code or any(not INCLUDE_LINE.match(line) for _, line in code):
            problems.append(Problem(page, block.line, INLINE_BLOCK))
            continue
        for number, line in code:
            match = INCLUDE_LINE.match(line)
            assert match is not None  # checked just above
            include = Include(page, number, match["path"], match["section"] and match["section"].lower())
            includes.append(include)
            problems.extend(check_include(include, root))
    return includes, problems


def check_include(include: Include, root: Path) -> list[Problem]:
    """An include must name a section of an existing file under examples/."""
    where = (include.page, include.line)
    target = root / include.path
    if not include.path.startswith("examples/"):
        return [
            Problem(
                *where, f"{include.path!r} is outside examples/: code shown on the site must be tested code"
            )
        ]
    if not target.is_file():
        return [Problem(*where, f"{include.path!r} does not exist")]
    if include.section is None:
        return [Problem(*where, f"{include.path!r}: name a section (path:section), not the whole file")]
    span = sections_in(target).get(include.section)
    if span is None:
        return [Problem(*where, f"{include.path!r} has no section {include.section!r}")]
    if span[1] is None:
        return [Problem(*where, f"{include.path}:{span[0]}: section {include.section!r} is never closed")]
    return []
    # --8<-- [end:scan-page]


def example_files(root: Path) -> Iterator[Path]:
    """Files under examples/ that may carry section markers."""
    for path in sorted((root / "examples").rglob("*")):
        hidden = any(part.startswith(".") or part == "__pycache__" for part in path.parts)
        if path.is_file() and not hidden and (path.suffix in EXAMPLE_SUFFIXES or path.name == "Dockerfile"):
            yield path


def check_site(docs_dir: Path, root: Path) -> list[Problem]:
    """Check every page, then every section: the whole rule set of the site."""
    problems: list[Problem] = []
    used: set[tuple[str, str]] = set()
    for page in sorted(docs_dir.rglob("*.md")):
        name = page.relative_to(root).as_posix()
        includes, page_problems = scan_page(page.read_text(encoding="utf-8"), name, root)
        problems += page_problems
        used.update((include.path, include.section) for include in includes if include.section)
    for path in example_files(root):
        name = path.relative_to(root).as_posix()
        for section, (start, end) in sections_in(path).items():
            if end is None:
                problems.append(Problem(name, start, f"section {section!r} is never closed"))
            elif (name, section) not in used:
                problems.append(Problem(name, start, f"section {section!r} is shown on no page"))
    return problems


def source_links(markdown: str, repo_blob_url: str, root: Path) -> str:
    """Title each include block with its file and link the lines it came from under it."""
    lines = markdown.splitlines()
    for block in sorted(fenced_blocks(markdown), key=lambda b: b.line, reverse=True):
        code = [INCLUDE_LINE.match(line) for _, line in block.body if line.strip()]
        if block.end_line is None or not code or not all(code) or len(code) != 1:
            continue
        match = code[0]
        assert match is not None
        path, section = match["path"], (match["section"] or "").lower()
        span = sections_in(root / path).get(section) if (root / path).is_file() else None
        if span is None or span[1] is None:
            continue
        if "title=" not in lines[block.line - 1]:
            lines[block.line - 1] += f' title="{path}"'
        lines_url = f"{repo_blob_url}/{path}#L{span[0] + 1}-L{span[1] - 1}"
        link = (
            f'{block.indent}<small class="snippet-source" data-path="{path}" data-section="{section}">'
            f"[{path}]({lines_url})</small>"
        )
        lines[block.end_line : block.end_line] = ["", link]
    return "\n".join(lines) + ("\n" if markdown.endswith("\n") else "")


# The Markdown extension: the same rules and links in every build (MkDocs and Zensical) -----


class SnippetGuardError(Exception):
    """The site breaks a snippet rule; the message lists every problem as ``path:line: reason``."""


@functools.lru_cache(maxsize=4)
def _checked(root: Path, docs_dir: Path, fingerprint: frozenset[tuple[str, int, int]]) -> tuple[Problem, ...]:
    return tuple(check_site(docs_dir, root))


def site_problems(root: Path, docs_dir: Path) -> tuple[Problem, ...]:
    """``check_site``, run again only when a page or an example file changed (one build renders
    every page with a Markdown instance of its own, and a dev server keeps running)."""
    watched = [*docs_dir.rglob("*.md"), *example_files(root)]
    return _checked(root, docs_dir, frozenset((str(p), *_stamp(p)) for p in watched))


def report(problems: tuple[Problem, ...]) -> str:
    """Every problem on a line of its own, as the build prints it."""
    return "snippet guard:\n  " + "\n  ".join(map(str, problems))


def _stamp(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_mtime_ns, status.st_size


class _GuardAndLink(Preprocessor):
    def __init__(self, md: Markdown, root: Path, docs_dir: Path, repo_blob_url: str) -> None:
        super().__init__(md)
        self.root, self.docs_dir, self.repo_blob_url = root, docs_dir, repo_blob_url

    def run(self, lines: list[str]) -> list[str]:
        if problems := site_problems(self.root, self.docs_dir):
            raise SnippetGuardError(report(problems))
        return source_links("\n".join(lines), self.repo_blob_url, self.root).split("\n")


class SnippetGuardExtension(Extension):
    """``markdown_extensions: [docs_tooling.snippet_guard: {repo_url: ...}]``.

    Before the first page is rendered, every rule is checked on the whole site (a broken one
    stops the build, listing each problem); then each include block gets its file as title and
    a link to its exact lines. Extensions are what both MkDocs and Zensical run, so both builds
    hold the same rules and show the same blocks.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.config = {
            "repo_url": ["", "the repository, e.g. https://github.com/owner/name"],
            "root": [".", "the project folder that holds docs/ and examples/"],
            "docs_dir": ["docs", "the pages, relative to root"],
        }
        super().__init__(**kwargs)

    def extendMarkdown(self, md: Markdown) -> None:  # Python-Markdown's name
        root = Path(self.getConfig("root")).resolve()
        blob = f"{str(self.getConfig('repo_url')).rstrip('/')}/blob/main"
        # Priority 33: before pymdownx.snippets (32) replaces the include lines with the code.
        guard = _GuardAndLink(md, root, root / self.getConfig("docs_dir"), blob)
        md.preprocessors.register(guard, "snippet_guard", 33)


def makeExtension(**kwargs: Any) -> SnippetGuardExtension:  # Python-Markdown's name
    return SnippetGuardExtension(**kwargs)


# MkDocs hook entry points: fail early, and rebuild what an edit changed ----------------

_dirty = False


def on_startup(command: str, dirty: bool) -> None:
    global _dirty
    _dirty = dirty


def _root(config: MkDocsConfig) -> Path:
    return Path(config.config_file_path).resolve().parent


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Stop the build before any page is rendered when a rule is broken; on a ``--dirty``
    rebuild, also rebuild each page whose included example file changed since it was built."""
    from mkdocs.exceptions import PluginError

    root = _root(config)
    problems = site_problems(root, Path(config.docs_dir))
    if problems:
        raise PluginError(report(problems))
    if _dirty:
        for file in stale_pages(files, root):
            file.content_string = file.content_string  # a page with set content counts as modified
    return files


def stale_pages(files: Files, root: Path) -> list[File]:
    """Pages older than an example file they show: one an include names, or (mkdocstrings'
    ``::: module`` blocks) the source of a module the page documents."""
    python = [path for path in example_files(root) if path.suffix == ".py"]
    stale = []
    for file in files.documentation_pages():
        built = Path(file.abs_dest_path)
        if not built.is_file() or file.abs_src_path is None:
            continue
        text = Path(file.abs_src_path).read_text(encoding="utf-8")
        includes, _ = scan_page(text, file.src_uri, root)
        sources = {root / include.path for include in includes}
        sources.update(path for path in python if documents(text, path))
        if any(source.is_file() and source.stat().st_mtime > built.stat().st_mtime for source in sources):
            stale.append(file)
    return stale


def documents(page: str, source: Path) -> bool:
    """Does a ``::: a.b.c`` block of ``page`` document (a member of) the module in ``source``?"""
    module = source.with_suffix("").as_posix().removesuffix("/__init__")
    for identifier in API_BLOCK.findall(page):
        parts = identifier.split(".")
        if any(module.endswith("/" + "/".join(parts[:n])) for n in range(len(parts), 0, -1)):
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    """Check the site from the shell; exit 1 and list every problem when rules are broken."""
    root = Path(argv[0] if argv else ".").resolve()
    problems = check_site(root / "docs", root)
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"snippet guard: {len(problems)} problem(s)", file=sys.stderr if problems else sys.stdout)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
