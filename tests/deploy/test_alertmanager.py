"""Alertmanager: its config checked by amtool, every alert routed by its severity, and a real
Prometheus paging through a real Alertmanager to a webhook this test runs.

The delivery test shortens two waits and nothing else: ``ServiceDown``'s ``for: 1m`` (its timing
is the promtool unit tests' job) and the route's ``group_wait: 30s``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from reference_system.ports import free_port, port_is_open
from reference_system.processes import Ports
from reference_system.prometheus import quiet_process, running_prometheus
from reference_system.waiting import eventually
from tests.deploy.conftest import DEPLOY, tool

CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
ALERTS = DEPLOY / "prometheus" / "rules" / "alerts.yml"
SERVICES = ["api_service", "pg_data_service", "mongo_data_service", "worker_service", "bot_service"]


@pytest.fixture(scope="session")
def amtool() -> str:
    return tool("amtool", "prometheus-alertmanager")


def amtool_run(amtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([amtool, *args], capture_output=True, text=True, timeout=60, check=False)


def our_alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_the_config_is_valid(amtool: str) -> None:
    result = amtool_run(amtool, "check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 receivers" in result.stdout


def routed(amtool: str, config: Path, alert: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    severity = alert["labels"]["severity"]
    labels = [f"alertname={alert['alert']}", f"severity={severity}", "job=api_service"]
    return amtool_run(
        amtool,
        "config",
        "routes",
        "test",
        f"--config.file={config}",
        f"--verify.receivers={severity}",
        *labels,
    )


def test_every_alert_reaches_the_receiver_named_by_its_severity(amtool: str) -> None:
    alerts = our_alerts()
    assert {a["labels"]["severity"] for a in alerts} == {"page", "ticket"}
    for alert in alerts:
        result = routed(amtool, CONFIG, alert)
        assert result.returncode == 0, f"{alert['alert']}: {result.stdout}{result.stderr}"


def test_the_route_check_fails_when_pages_go_to_the_tickets(amtool: str, tmp_path: Path) -> None:
    """Counterfactual: without the page route a page alert lands with the tickets; the check says so."""
    config = yaml.safe_load(CONFIG.read_text())
    config["route"]["routes"] = [r for r in config["route"]["routes"] if r["receiver"] != "page"]
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(yaml.safe_dump(config))
    [page] = [a for a in our_alerts() if a["alert"] == "ServiceDown"]
    assert routed(amtool, broken, page).returncode != 0


@asynccontextmanager
async def webhook() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """An HTTP receiver on loopback; yields its URL and every notification it got (path, token, body)."""
    received: list[dict[str, Any]] = []

    async def notified(request: web.Request) -> web.Response:
        body = await request.json()
        received.append({"path": request.path, "authorization": request.headers.get("Authorization"), **body})
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/{receiver}", notified)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        await runner.cleanup()


@asynccontextmanager
async def running_alertmanager(directory: Path, webhook_url: str) -> AsyncIterator[str]:
    """The deployed config, its receivers pointed at ``webhook_url``, on a free port; yields host:port."""
    binary = shutil.which("alertmanager") or tool("prometheus-alertmanager", "prometheus-alertmanager")
    config = yaml.safe_load(CONFIG.read_text())
    config["route"]["group_wait"] = "1s"
    for receiver in config["receivers"]:
        [hook] = receiver["webhook_configs"]
        hook["url"] = f"{webhook_url}/{receiver['name']}"
        token = directory / f"{receiver['name']}_token"
        token.write_text(f"{receiver['name']}-token")
        hook["http_config"]["authorization"]["credentials_file"] = str(token)
    (directory / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    async with quiet_process(
        binary,
        f"--config.file={directory / 'alertmanager.yml'}",
        f"--storage.path={directory / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # one instance: no gossip port
    ):
        url = f"http://127.0.0.1:{port}"
        await eventually(lambda: port_is_open(url), "Alertmanager listening", timeout=30)
        yield f"127.0.0.1:{port}"


async def test_a_real_prometheus_pages_through_alertmanager_when_the_services_are_down(
    tmp_path: Path,
) -> None:
    tool("prometheus", "prometheus")
    deploy = tmp_path / "prometheus"
    shutil.copytree(DEPLOY / "prometheus", deploy)
    rules = deploy / "rules" / "alerts.yml"
    text = rules.read_text()
    assert text.count("for: 1m") == 1  # ServiceDown's, the only one-minute wait
    rules.write_text(text.replace("for: 1m", "for: 0s"))
    nothing_listens = Ports(**{name: free_port() for name in ("api", "pg", "mongo", "worker", "bot")})
    async with (
        webhook() as (url, received),
        running_alertmanager(tmp_path, url) as alertmanager,
        running_prometheus(nothing_listens, "a-token", tmp_path, alertmanager=alertmanager, deploy=deploy),
    ):

        def paged_jobs() -> set[str]:
            return {a["labels"]["job"] for n in received if n["path"] == "/page" for a in n["alerts"]}

        await eventually(
            lambda: paged_jobs() >= set(SERVICES), "a page for every service", timeout=60, interval=0.2
        )
    pages = [n for n in received if n["path"] == "/page"]
    assert all(n["authorization"] == "Bearer page-token" and n["status"] == "firing" for n in pages)
    assert {a["labels"]["alertname"] for n in pages for a in n["alerts"]} == {"ServiceDown"}
    assert [n for n in received if n["path"] == "/ticket"] == [], json.dumps(received)[:2000]


def test_compose_runs_the_alertmanager_prometheus_sends_to_with_the_files_its_config_reads() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    [target] = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert target == "alertmanager:9093"  # the image's default port
    service = compose["services"]["alertmanager"]
    assert service["volumes"] == [
        "./alertmanager:/etc/alertmanager:ro"
    ]  # the image reads alertmanager.yml there
    config = yaml.safe_load(CONFIG.read_text())
    files = {
        h["http_config"]["authorization"]["credentials_file"]
        for r in config["receivers"]
        for h in r["webhook_configs"]
    }
    assert files == {f"/run/secrets/{secret}" for secret in service["secrets"]}
    assert all(secret in compose["secrets"] for secret in service["secrets"])
