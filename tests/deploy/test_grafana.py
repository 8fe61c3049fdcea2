"""The Grafana dashboards and datasources: up to date, well formed, and every query real."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from prometheus_client import REGISTRY

from tests.deploy.conftest import DEPLOY

GRAFANA = DEPLOY / "grafana"

# The modules that define the services' metrics: importing them registers every family.
METRIC_MODULES = (
    "shared.observability.metrics",
    "shared.observability.http_server",
    "shared.events.consumer",
    "pg_data_service.outbox",
    "worker_service.jobs",
    "worker_service.runner",
)
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$job": ".+"}
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
}


def boards() -> list[dict[str, object]]:
    return [json.loads(path.read_text()) for path in sorted((GRAFANA / "dashboards").glob("*.json"))]


def queries() -> list[str]:
    found = []
    for board in boards():
        for item in board["panels"]:  # type: ignore[attr-defined]
            for target in item["targets"]:
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                found.append(expr)
    return found


def exported_series_names() -> set[str]:
    for module in METRIC_MODULES:
        importlib.import_module(module)
    names = {"up", "ALERTS"}
    for family in REGISTRY.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}.get(family.type, [""])
        names |= {family.name + suffix for suffix in suffixes}
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules" / "recording.yml").read_text())
    names |= {rule["record"] for group in rules["groups"] for rule in group["rules"]}
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", bare)
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    words = [
        m.group() for m in re.finditer(r"[A-Za-z_:][\w:]*", bare) if not re.match(r"\s*\(", bare[m.end() :])
    ]
    return {word for word in words if word not in KEYWORDS}


def load_builder() -> ModuleType:
    """``examples/deploy/grafana/dashboards.py``, imported from its path (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("grafana_dashboards", GRAFANA / "dashboards.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_json_is_what_the_code_builds(tmp_path: Path) -> None:
    written = load_builder().write(tmp_path)
    assert len(written) == 4
    for built in written:
        committed = GRAFANA / "dashboards" / built.name
        assert committed.read_text() == built.read_text(), f"run: uv run python {GRAFANA / 'dashboards.py'}"


def test_the_script_writes_the_files_it_names(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(GRAFANA / "dashboards.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert sorted(result.stdout.split()) == sorted(str(path) for path in tmp_path.glob("*.json"))


def test_each_dashboard_is_well_formed_and_uses_provisioned_datasources() -> None:
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "datasources.yml").read_text())
    uids = {source["uid"] for source in provisioned["datasources"]}
    assert {board["uid"] for board in boards()} == {"service-overview", "data-services", "messaging", "slos"}
    for board in boards():
        panels = board["panels"]
        assert isinstance(panels, list)
        assert [p["id"] for p in panels] == list(range(1, len(panels) + 1))
        for item in panels:
            grid = item["gridPos"]
            assert grid["x"] + grid["w"] <= 24
            assert item["datasource"]["uid"] in uids
            assert item["targets"], item["title"]


def test_every_query_parses(promtool: str, tmp_path: Path) -> None:
    rules = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [{"record": f"check:q{i}", "expr": q} for i, q in enumerate(queries())],
            }
        ]
    }
    (tmp_path / "queries.yml").write_text(yaml.safe_dump(rules))
    result = subprocess.run(
        [promtool, "check", "rules", "queries.yml"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_query_names_metrics_the_services_export() -> None:
    exported = exported_series_names()
    for expr in queries():
        assert metric_names(expr), expr
        assert metric_names(expr) <= exported, f"{sorted(metric_names(expr) - exported)} in {expr}"


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (job) (rate(http_requests_total{route!~"/health/.*"}[5m]))', {"http_requests_total"}),
        ("histogram_quantile(0.95, sum by (le) (rate(a_bucket[5m]))) / b:rule", {"a_bucket", "b:rule"}),
        ('ALERTS{alertstate="firing"} and on (job) up == 0', {"ALERTS", "up"}),
    ],
)
def test_metric_names_are_read_from_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names
