"""Every server version the tech stack page states is the one Compose, CI and Kubernetes run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SERVER = re.compile(r"^\| (?P<server>[A-Za-z]+) \| `(?P<image>[^`]+)`", re.MULTILINE)


def image_tags(path: Path) -> dict[str, str]:
    """Image name to tag for every ``image:`` in the file (an ``-alpine`` variant is the same version)."""
    images = re.findall(r"""(?:image: |Container\(")([\w./-]+):([\w.-]+)""", path.read_text())
    return {name: tag.removesuffix("-alpine") for name, tag in images}


def test_compose_ci_and_kubernetes_run_the_server_versions_the_page_states() -> None:
    page = (ROOT / "docs/reference/tech_stack.md").read_text()
    stated = dict(m["image"].split(":", 1) for m in SERVER.finditer(page))
    assert {"postgres", "redis", "rabbitmq", "mongo"} <= set(stated)
    compose = image_tags(ROOT / "examples/deploy/compose.yaml")
    ci = image_tags(ROOT / ".github/workflows/ci.yml")
    cluster = image_tags(ROOT / "examples/deploy/kubernetes/overlays/local/stores.yaml")
    # where a Docker engine answers and no URL is set, the tests start these (Testcontainers)
    containers = image_tags(ROOT / "examples/patterns/testing/service_resolution.py")
    assert {image: tag for image, tag in containers.items() if stated.get(image) != tag} == {}
    for image, tag in stated.items():
        assert compose[image] == tag, f"Compose runs {image}:{compose[image]}, the page says {tag}"
        if image in cluster:
            assert cluster[image] == tag, (
                f"Kubernetes (local) runs {image}:{cluster[image]}, the page says {tag}"
            )
        if image in ci:
            assert ci[image] == tag, f"CI runs {image}:{ci[image]}, the page says {tag}"
    assert {"postgres", "redis", "rabbitmq", "mongo"} <= set(ci)  # CI names the four it needs
    assert {"postgres", "redis", "rabbitmq", "mongo"} <= set(cluster)  # and so does the local overlay
