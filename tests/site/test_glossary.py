"""Every abbreviation the site explains on hover is explained where it is used, and the glossary
names each term it defines once."""

from __future__ import annotations

import re
from pathlib import Path

from lxml import html

from tests.site_builds import ROOT

ABBREVIATIONS = dict(
    re.findall(r"^\*\[(.+?)\]: (.+)$", (ROOT / "docs/includes/abbreviations.md").read_text(), re.MULTILINE)
)


def test_every_abbreviation_is_explained_on_hover_somewhere_it_is_used(built_site: Path) -> None:
    explained: dict[str, set[str]] = {}
    for page in built_site.rglob("*.html"):
        for abbr in html.fromstring(page.read_bytes()).iter("abbr"):
            explained.setdefault(abbr.text_content(), set()).add(abbr.get("title", ""))
    unused = set(ABBREVIATIONS) - set(explained)
    assert unused == set(), f"no page uses {sorted(unused)}: drop it from docs/includes/abbreviations.md"
    differently = {name: titles for name, titles in explained.items() if titles != {ABBREVIATIONS.get(name)}}
    assert differently == {}


def test_the_glossary_defines_each_term_once_in_alphabetical_order(built_site: Path) -> None:
    page = html.fromstring((built_site / "reference/glossary/index.html").read_bytes())
    terms = [term.text_content().strip() for term in page.iter("dt")]
    assert len(terms) >= 20
    assert terms == sorted(set(terms), key=str.casefold)
