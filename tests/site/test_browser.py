"""The built site in headless Chromium: what a reader sees, clicks, searches and copies."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Request

from docs_tooling.snippet_guard import fenced_blocks, read_section
from tests.site.site_pages import DOCS, PAGES

pytestmark = pytest.mark.browser
ROOT = DOCS.parent
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]"}
PARSE_DIAGRAM = """async (text) => {
    try { await mermaid.parse(text); return null } catch (e) { return String(e.message || e) }
}"""
RENDERED_DIAGRAMS = """n => [...document.querySelectorAll('.mermaid')]
    .filter(e => e.shadowRoot?.querySelector('svg')).length >= n"""


def open_page(context: BrowserContext, url: str) -> tuple[Page, list[str], list[str]]:
    """Open ``url``; return the page, its console errors and every request to another host."""
    page = context.new_page()
    errors: list[str] = []
    foreign: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    def on_request(request: Request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in {"http", "https", "ws", "wss"} and parts.hostname not in LOCAL_HOSTS:
            foreign.append(request.url)

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", on_request)
    # Anything that still tries to leave the machine is refused, not waited for.
    page.route(
        "**/*",
        lambda route: (
            route.abort() if urlsplit(route.request.url).hostname not in LOCAL_HOSTS else route.continue_()
        ),
    )
    # "load", not "networkidle" (half a second of quiet per page): whatever the page asks for later
    # is still seen by the listener above, which stays on for the whole test.
    page.goto(url, wait_until="load")
    return page, errors, foreign


def diagrams() -> list[tuple[str, int, str]]:
    """Every mermaid diagram in the sources: (page, line, text)."""
    found = []
    for source in PAGES.values():
        text = source.read_text(encoding="utf-8")
        for block in fenced_blocks(text):
            if block.language == "mermaid":
                body = "\n".join(line[len(block.indent) :] for _, line in block.body)
                found.append((source.relative_to(ROOT).as_posix(), block.line, body))
    return found


def diagram_errors(page: Page, sources: list[tuple[str, int, str]]) -> list[str]:
    """Parse each diagram with the site's own mermaid; return ``page:line: error`` for each failure."""
    errors = []
    for name, line, text in sources:
        error = page.evaluate(PARSE_DIAGRAM, text)
        if error:
            errors.append(f"{name}:{line}: mermaid: {error.splitlines()[0]}")
    return errors


def test_every_diagram_parses_and_a_broken_one_is_reported_with_page_and_line(
    context: BrowserContext, site_url: str
) -> None:
    page, _, _ = open_page(context, site_url)
    assert diagrams(), "the site has diagrams to check"
    assert diagram_errors(page, diagrams()) == []
    [error] = diagram_errors(page, [("docs/broken.md", 7, "flowchart LR\n  a -->")])
    assert error.startswith("docs/broken.md:7: mermaid: ")


def check_diagrams(page: Page, source: Path) -> None:
    """Each mermaid block of the page's source is drawn as an SVG, none as a syntax error."""
    expected = sum(1 for block in fenced_blocks(source.read_text()) if block.language == "mermaid")
    if expected:
        page.wait_for_function(RENDERED_DIAGRAMS, arg=expected, timeout=15_000)
    texts = page.eval_on_selector_all(".mermaid", "els => els.map(e => e.shadowRoot.textContent)")
    assert len(texts) == expected
    assert not [text for text in texts if "Syntax error" in text]


# For each snippet's source link: the file and section it names; and, marked with data-test-* attributes
# so one locator finds them, the copy button of its block and the label of the content tab holding it.
MARK_SNIPPETS = """() => [...document.querySelectorAll('.snippet-source')].map((source, i) => {
    let block = source.closest('p').previousElementSibling;
    while (block && !block.classList.contains('highlight')) block = block.previousElementSibling;
    block.querySelector('button[data-md-type=copy]').setAttribute('data-test-copy', i);
    const tab = block.closest('.tabbed-block');
    if (tab) {
        const position = [...tab.parentElement.children].indexOf(tab);
        tab.closest('.tabbed-set').querySelectorAll('label')[position].setAttribute('data-test-tab', i);
    }
    return [source.dataset.path, source.dataset.section];
})"""


# What each copy button would copy: the text of the code element its clipboard target names (Material copies
# that element's text, without line numbers or annotations, which these pages do not use).
COPY_TEXTS = """() => [...document.querySelectorAll('[data-test-copy]')]
    .sort((a, b) => a.dataset.testCopy - b.dataset.testCopy)
    .map(button => document.querySelector(button.dataset.clipboardTarget).textContent)"""


def check_copy_buttons(page: Page, source: Path) -> None:
    """Each snippet's copy button copies exactly the section of the file it names, nothing more: every
    button's target is compared in one pass, and one button per page is clicked, as a reader would."""
    snippets: list[list[str]] = page.evaluate(MARK_SNIPPETS)
    includes = sum(1 for block in fenced_blocks(source.read_text()) if block.language != "mermaid")
    assert len(snippets) == includes
    expected = [read_section(ROOT / path, section).rstrip("\n") for path, section in snippets]
    texts: list[str] = page.evaluate(COPY_TEXTS)
    for index, (text, wanted) in enumerate(zip(texts, expected, strict=True)):
        assert text.rstrip("\n") == wanted, f"{source}: block {index}"
    if snippets:  # the click itself: the last block, behind its content tab if it has one
        last = len(snippets) - 1
        tab = page.locator(f"[data-test-tab='{last}']")
        if tab.count():
            tab.click()
        page.locator(f"[data-test-copy='{last}']").click()
        assert page.evaluate("navigator.clipboard.readText()").rstrip("\n") == expected[last]


@pytest.mark.parametrize("path", sorted(PAGES))
def test_page_draws_its_diagrams_copies_its_snippets_and_asks_no_other_host(
    context: BrowserContext, site_url: str, path: str
) -> None:
    page, errors, foreign = open_page(context, site_url + path)
    assert page.locator("h1").first.is_visible()
    check_diagrams(page, PAGES[path])
    check_copy_buttons(page, PAGES[path])
    assert errors == [], f"{PAGES[path]}: console errors"
    assert foreign == [], f"{PAGES[path]}: requests to other hosts"


SEARCHES = {
    "testcontainers": "patterns/testing/real-services/",
    "check_paths": "about/how-this-site-stays-true/",
    "outbox": "guides/EVENT_DRIVEN_GUIDE/",
    "keyset": "patterns/data-services/pagination/",
    "lint-imports": "guides/DEVELOPMENT_COMMANDS/",
}


def test_search_finds_the_page_that_explains_each_term(context: BrowserContext, site_url: str) -> None:
    page, _, _ = open_page(context, site_url)
    search = page.locator(".md-search__input")
    search.click()
    for term, expected_path in SEARCHES.items():
        search.fill("")
        search.press("End")  # no query, no results: the next results are this term's
        page.wait_for_function("() => !document.querySelector('.md-search-result__item')", timeout=10_000)
        search.fill(term)  # the whole term at once: typing it would show results of its prefixes first
        search.press("End")
        first = page.locator(".md-search-result__item a").first
        first.wait_for(timeout=10_000)
        found = urlsplit(first.get_attribute("href") or "").path.lstrip("/")
        assert found.startswith(expected_path), f"search for {term!r} led first to {found}"
        assert page.locator(".md-search-result mark").count() > 0, f"matches of {term!r} are highlighted"


def test_dark_mode_toggle_switches_the_palette_and_is_remembered(
    context: BrowserContext, site_url: str
) -> None:
    page, _, _ = open_page(context, site_url)
    before = page.locator("body").get_attribute("data-md-color-scheme")
    page.locator("form[data-md-component=palette] label:visible").first.click()
    after = page.locator("body").get_attribute("data-md-color-scheme")
    assert {before, after} == {"default", "slate"}
    page.reload()
    assert page.locator("body").get_attribute("data-md-color-scheme") == after


def test_a_missing_page_gets_the_sites_404(context: BrowserContext, site_url: str) -> None:
    page, _, _ = open_page(context, site_url + "no/such/page/")
    assert page.locator("h1").first.inner_text() == "404: this page is not here"


@pytest.mark.parametrize(
    ("name", "path"), [("home", ""), ("pattern-real-services", "patterns/testing/real-services/")]
)
def test_screenshot(context: BrowserContext, site_url: str, artifacts: Path, name: str, path: str) -> None:
    page, _, _ = open_page(context, site_url + path)
    page.wait_for_timeout(500)  # let fonts and diagrams settle for the picture
    target = artifacts / f"{name}.png"
    page.screenshot(path=str(target), full_page=False)
    assert target.stat().st_size > 10_000
