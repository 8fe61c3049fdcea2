"""No link or anchor inside the built site points at nothing."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from lxml import html

LINK_ATTRIBUTES = {"a": "href", "link": "href", "script": "src", "img": "src", "source": "src"}
SITE_URL = "http://127.0.0.1:8800/"  # the default site_url: absolute links to it are internal


def target_file(site: Path, page: Path, link: str) -> tuple[Path, str] | None:
    """Resolve an internal link of ``page`` to (file, fragment); ``None`` for external links."""
    base = SITE_URL + page.relative_to(site).as_posix()
    url = urlsplit(urljoin(base, link))
    if f"{url.scheme}://{url.netloc}/" != SITE_URL:
        return None
    path = site / unquote(url.path).lstrip("/")
    if path.is_dir() or url.path.endswith("/"):
        path = path / "index.html"
    return path, unquote(url.fragment)


def broken_links(site: Path) -> list[str]:
    trees = {page: html.fromstring(page.read_bytes()) for page in site.rglob("*.html")}
    ids = {page: set(tree.xpath("//@id")) | set(tree.xpath("//a/@name")) for page, tree in trees.items()}
    broken = []
    for page, tree in trees.items():
        if page.name == "404.html":
            continue  # its links are relative to wherever the missing page was asked for
        for tag_name, attribute in LINK_ATTRIBUTES.items():
            for link in tree.xpath(f"//{tag_name}/@{attribute}"):
                resolved = target_file(site, page, str(link))
                if resolved is None:
                    continue
                path, fragment = resolved
                where = page.relative_to(site).as_posix()
                if not path.is_file():
                    broken.append(f"{where}: {link} → missing {path.relative_to(site)}")
                elif fragment and path.suffix == ".html" and fragment not in ids.get(path, set()):
                    broken.append(f"{where}: {link} → no anchor #{fragment}")
    return broken


def test_no_internal_link_or_anchor_of_the_built_site_is_broken(built_site: Path) -> None:
    assert broken_links(built_site) == []


def test_the_link_check_finds_a_missing_page_and_a_missing_anchor(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text(
        '<h1 id="top">t</h1><a href="gone/">x</a><a href="#nowhere">y</a><a href="#top">z</a>'
        '<a href="https://example.org/">external</a>'
    )
    assert broken_links(tmp_path) == [
        "index.html: gone/ → missing gone/index.html",
        "index.html: #nowhere → no anchor #nowhere",
    ]
