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
    page.goto(url, wait_until="networkidle")
    return page, errors, foreign


@pytest.mark.parametrize("path", sorted(PAGES))
def test_page_loads_without_console_errors_or_requests_to_other_hosts(
    context: BrowserContext, site_url: str, path: str
) -> None:
    page, errors, foreign = open_page(context, site_url + path)
    assert page.locator("h1").first.is_visible()
    assert errors == [], f"{PAGES[path]}: console errors"
    assert foreign == [], f"{PAGES[path]}: requests to other hosts"


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


def test_every_mermaid_diagram_in_the_sources_parses(context: BrowserContext, site_url: str) -> None:
    page, _, _ = open_page(context, site_url)
    assert diagrams(), "the site has diagrams to check"
    assert diagram_errors(page, diagrams()) == []


def test_a_broken_diagram_is_reported_with_page_and_line(context: BrowserContext, site_url: str) -> None:
    page, _, _ = open_page(context, site_url)
    broken = [("docs/broken.md", 7, "flowchart LR\n  a -->")]
    [error] = diagram_errors(page, broken)
    assert error.startswith("docs/broken.md:7: mermaid: ")


@pytest.mark.parametrize(
    "path", sorted(path for path, source in PAGES.items() if "```mermaid" in source.read_text())
)
def test_each_diagram_on_a_page_becomes_an_svg(context: BrowserContext, site_url: str, path: str) -> None:
    page, _, _ = open_page(context, site_url + path)
    expected = sum(1 for block in fenced_blocks(PAGES[path].read_text()) if block.language == "mermaid")
    page.wait_for_function(
        RENDERED_DIAGRAMS,
        arg=expected,
        timeout=15_000,
    )
    texts = page.eval_on_selector_all(".mermaid", "els => els.map(e => e.shadowRoot.textContent)")
    assert len(texts) == expected
    assert not [text for text in texts if "Syntax error" in text]


@pytest.mark.parametrize(
    ("term", "expected_path"),
    [
        ("testcontainers", "patterns/testing/real-services/"),
        ("check_paths", "about/how-this-site-stays-true/"),
        ("outbox", "guides/EVENT_DRIVEN_GUIDE/"),
        ("keyset", "patterns/data-services/pagination/"),
        ("lint-imports", "guides/DEVELOPMENT_COMMANDS/"),
    ],
)
def test_search_finds_the_page_that_explains_a_term(
    context: BrowserContext, site_url: str, term: str, expected_path: str
) -> None:
    page, _, _ = open_page(context, site_url)
    page.locator(".md-search__input").click()
    page.keyboard.type(term)
    first = page.locator(".md-search-result__item a").first
    first.wait_for(timeout=10_000)
    assert urlsplit(first.get_attribute("href") or "").path.lstrip("/").startswith(expected_path)
    assert page.locator(".md-search-result mark").count() > 0, "matches are highlighted"


@pytest.mark.parametrize(
    "path", sorted(path for path, source in PAGES.items() if '--8<-- "examples/' in source.read_text())
)
def test_copy_button_copies_exactly_the_code_of_the_included_section(
    context: BrowserContext, site_url: str, path: str
) -> None:
    page, _, _ = open_page(context, site_url + path)
    sources = page.locator(".snippet-source")
    assert sources.count() > 0
    for index in range(sources.count()):
        source = sources.nth(index)
        block = source.locator("xpath=ancestor::p[1]/preceding-sibling::div[contains(@class,'highlight')][1]")
        # Content tabs hide all but the first block: show the tab that holds this one.
        tab = block.locator("xpath=ancestor::div[contains(@class,'tabbed-block')][1]")
        if tab.count():
            position = tab.evaluate("t => [...t.parentElement.children].indexOf(t)")
            block.locator("xpath=ancestor::div[contains(@class,'tabbed-set')][1]").locator("label").nth(
                position
            ).click()
        block.hover()
        block.locator("button[data-md-type=copy]").click()
        copied = page.evaluate("navigator.clipboard.readText()")
        expected = read_section(
            ROOT / str(source.get_attribute("data-path")), str(source.get_attribute("data-section"))
        )
        assert copied.rstrip("\n") == expected.rstrip("\n"), f"{PAGES[path]}: block {index}"


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
