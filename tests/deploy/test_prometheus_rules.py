"""The Prometheus config, recording rules and alerts, checked by Prometheus's own promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import DEPLOY

PROMETHEUS = DEPLOY / "prometheus"


def promtool_run(promtool: str, *args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_config_and_both_rule_files_are_valid(promtool: str, tmp_path: Path) -> None:
    # promtool opens the scrape token's file, which Compose mounts at /run/secrets: a copy reads one here
    shutil.copytree(PROMETHEUS, tmp_path, dirs_exist_ok=True)
    (tmp_path / "metrics_token").write_text("a-scrape-token-for-promtool")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        config.read_text().replace("/run/secrets/metrics_token", str(tmp_path / "metrics_token"))
    )
    result = promtool_run(promtool, "check", "config", "prometheus.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rule files found" in result.stdout


def test_every_alert_passes_its_unit_tests(promtool: str) -> None:
    result = promtool_run(promtool, "test", "rules", "rules/alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_unit_tests_catch_a_broken_threshold(promtool: str, tmp_path: Path) -> None:
    shutil.copytree(PROMETHEUS / "rules", tmp_path / "rules")
    alerts = tmp_path / "rules" / "alerts.yml"
    alerts.write_text(alerts.read_text().replace("> (14.4 * 0.005)", "> (50 * 0.005)"))
    result = promtool_run(promtool, "test", "rules", "rules/alerts.test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "AvailabilityBudgetBurnFast" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("rule", "broken", "alert"),
    [
        (
            "max by (job) (outbox_quarantined) > 0",
            "max by (job) (outbox_quarantined) > 2",
            "OutboxEventsQuarantined",
        ),
        ("max by (job) (outbox_oldest", "sum by (instance) (outbox_oldest", "OutboxNotDraining"),
    ],
)
def test_the_unit_tests_catch_a_broken_outbox_alert(
    promtool: str, tmp_path: Path, rule: str, broken: str, alert: str
) -> None:
    shutil.copytree(PROMETHEUS / "rules", tmp_path / "rules")
    alerts = tmp_path / "rules" / "alerts.yml"
    assert rule in alerts.read_text()
    alerts.write_text(alerts.read_text().replace(rule, broken))
    result = promtool_run(promtool, "test", "rules", "rules/alerts.test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert alert in result.stdout + result.stderr


def alert_rules() -> list[dict[str, object]]:
    groups = yaml.safe_load((PROMETHEUS / "rules" / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_every_alert_has_a_unit_test_a_severity_and_a_summary() -> None:
    tests = yaml.safe_load((PROMETHEUS / "rules" / "alerts.test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"]}
    for rule in alert_rules():
        assert rule["alert"] in tested
        assert rule["labels"]["severity"] in {"page", "ticket"}  # type: ignore[index]
        assert rule["annotations"]["summary"]  # type: ignore[index]
