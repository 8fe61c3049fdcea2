"""A real Prometheus with the deployed config and rules, scraping the locally running system.

The Compose file's scrape config names containers (``api_service:8000``); here the same
jobs point at loopback ports, every second, so a short run has enough samples. The
``rabbitmq`` job needs the broker's ``rabbitmq_prometheus`` plugin, which a local RabbitMQ
may not run: it is left out.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from reference_system.ports import free_port
from reference_system.processes import Ports
from reference_system.waiting import eventually

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"
JOBS = {
    "api": "api_service",
    "pg": "pg_data_service",
    "mongo": "mongo_data_service",
    "worker": "worker_service",
    "bot": "bot_service",
}


def loopback_config(
    ports: Ports,
    token_file: Path,
    interval: str = "1s",
    alertmanager: str | None = None,
    deploy: Path = DEPLOY,
) -> dict[str, Any]:
    """``prometheus.yml`` from ``deploy`` (the deployed one), its targets moved to ``ports`` on
    127.0.0.1, its scrape token read from ``token_file``, its alerts sent to ``alertmanager``
    (``host:port``; nowhere if None)."""
    config: dict[str, Any] = yaml.safe_load((deploy / "prometheus.yml").read_text())
    targets = {JOBS[name]: f"127.0.0.1:{port}" for name, port in asdict(ports).items()}
    config["global"].update(scrape_interval=interval, evaluation_interval=interval)
    config["rule_files"] = [str(deploy / path) for path in config["rule_files"]]
    config["scrape_configs"] = [
        job
        | {"static_configs": [{"targets": [targets[job["job_name"]]]}]}
        | {"authorization": {"credentials_file": str(token_file)}}
        for job in config["scrape_configs"]
        if job["job_name"] in targets
    ]
    if alertmanager is None:
        del config["alerting"]
    else:
        config["alerting"]["alertmanagers"][0]["static_configs"] = [{"targets": [alertmanager]}]
    return config


@asynccontextmanager
async def running_prometheus(
    ports: Ports,
    metrics_token: str,
    directory: Path,
    interval: str = "1s",
    alertmanager: str | None = None,
    deploy: Path = DEPLOY,
) -> AsyncIterator[str]:
    """Start ``prometheus`` (Debian: ``apt-get install prometheus``) with the config and rules in
    ``deploy``, scraping with ``metrics_token``, sending alerts to ``alertmanager`` if given;
    yield its base URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("prometheus is not installed (Debian: apt-get install prometheus)")
    token_file = directory / "metrics_token"
    token_file.write_text(metrics_token)
    token_file.chmod(0o600)
    config = loopback_config(ports, token_file, interval, alertmanager, deploy)
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    async with quiet_process(
        binary,
        f"--config.file={directory / 'prometheus.yml'}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ):
        yield f"http://127.0.0.1:{port}"


@asynccontextmanager
async def quiet_process(*command: str) -> AsyncIterator[None]:
    """Run ``command`` (a server such as Prometheus or Alertmanager) with its output discarded,
    until the block ends; then SIGTERM and wait for it to exit."""
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        yield
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout=20)


async def wait_for_targets(url: str, count: int, timeout: float = 30) -> None:
    """Wait until Prometheus at ``url`` scrapes ``count`` targets and every one is up.

    A Prometheus that is still starting refuses connections, then answers ``Service
    Unavailable`` in plain text, then lists targets not yet scraped: every one of those
    answers means "not yet", not an error.
    """
    seen: list[list[dict[str, Any]] | None] = [None]

    async def all_up() -> bool:
        seen[0] = targets = await asyncio.to_thread(_active_targets, url)
        return targets is not None and len(targets) == count and all(t.get("health") == "up" for t in targets)

    try:
        await eventually(
            all_up, f"Prometheus at {url} seeing {count} targets up", timeout=timeout, interval=0.25
        )
    except TimeoutError as error:
        raise TimeoutError(f"{error}; it saw {seen[0]}") from None


def _active_targets(url: str) -> list[dict[str, Any]] | None:
    try:
        with urllib.request.urlopen(f"{url}/api/v1/targets", timeout=2) as answer:  # noqa: S310 - loopback
            return list(json.load(answer)["data"]["activeTargets"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # not listening, not ready (an HTTP error or plain text), or not the answer we know
