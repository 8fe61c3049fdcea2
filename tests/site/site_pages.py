"""The pages of the site, as source files and as URL paths of the built site."""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"


def url_path(page: Path) -> str:
    """``docs/a/b.md`` → ``a/b/``; ``docs/index.md`` → ``""`` (MkDocs' directory URLs)."""
    relative = page.relative_to(DOCS).with_suffix("")
    if relative.name == "index":
        relative = relative.parent
    return "" if relative == Path() else relative.as_posix() + "/"


# Every page; docs/includes/ holds what is appended to pages (the abbreviations), not pages
PAGES = {url_path(page): page for page in sorted(DOCS.rglob("*.md")) if "includes" not in page.parts}
