"""The tech stack page states the versions locked in uv.lock, and nothing else."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `(?P<name>[a-z0-9-]+)` \| (?P<version>[0-9][^ |]*) \|", re.MULTILINE)


def test_every_version_on_the_page_is_the_locked_one() -> None:
    locked = {p["name"]: p["version"] for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}
    stated = {
        m["name"]: m["version"] for m in ROW.finditer((ROOT / "docs/reference/tech_stack.md").read_text())
    }
    assert len(stated) >= 30
    assert {name: version for name, version in stated.items() if locked.get(name) != version} == {}


SERVER = re.compile(r"^\| (?P<server>[A-Za-z]+) \| `(?P<image>[^`]+)`", re.MULTILINE)


def image_tags(path: Path) -> dict[str, str]:
    """Image name to tag for every ``image:`` in the file (an ``-alpine`` variant is the same version)."""
    images = re.findall(r"image: ([\w./-]+):([\w.-]+)", path.read_text())
    return {name: tag.removesuffix("-alpine") for name, tag in images}


def test_compose_and_ci_run_the_server_versions_the_page_states() -> None:
    page = (ROOT / "docs/reference/tech_stack.md").read_text()
    stated = dict(m["image"].split(":", 1) for m in SERVER.finditer(page))
    assert {"postgres", "redis", "rabbitmq", "mongo"} <= set(stated)
    compose = image_tags(ROOT / "examples/deploy/compose.yaml")
    ci = image_tags(ROOT / ".github/workflows/ci.yml")
    for image, tag in stated.items():
        assert compose[image] == tag, f"Compose runs {image}:{compose[image]}, the page says {tag}"
        if image in ci:
            assert ci[image] == tag, f"CI runs {image}:{ci[image]}, the page says {tag}"
    assert {"postgres", "redis", "rabbitmq", "mongo"} <= set(ci)  # CI names the four it needs
