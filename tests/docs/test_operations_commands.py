"""Every command on the Troubleshooting page runs against the local services and says what the page says."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import aio_pika

from docs_tooling.snippet_guard import read_section, sections_in
from patterns.testing.service_resolution import port_is_open

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ROOT / "examples" / "commands" / "operations.sh"


def run(name: str, replace: tuple[str, str] | None = None) -> str:
    script = read_section(COMMANDS, name).strip()
    if replace:
        script = script.replace(*replace)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_every_section_is_tested() -> None:
    tested = {
        "queues",
        "alarms",
        "connections",
        "parking-lot-list",
        "parking-lot-replay",
        "outbox-backlog",
        "health",
    }
    assert set(sections_in(COMMANDS)) == tested


async def test_queues_alarms_and_connections(rabbitmq_url: str) -> None:
    assert "messages_unacknowledged" in await asyncio.to_thread(run, "queues")
    assert "no alarms" in await asyncio.to_thread(run, "alarms")
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        listing = await asyncio.to_thread(run, "connections")
    assert "running" in listing  # our connection, not blocked by a memory or disk alarm


def test_parking_lot_list_and_replay(rabbitmq_url: str) -> None:
    url = ("worker.order-placed", f"worker.order-placed --url {rabbitmq_url}")
    assert "0 parked message(s) in worker.order-placed.parking-lot" in run("parking-lot-list", url)
    assert "replayed 0 message(s) to worker.order-placed" in run("parking-lot-replay", url)


def test_outbox_backlog(postgres_url: str) -> None:
    from pg_data_service.migrate import upgrade

    upgrade(postgres_url)
    output = run("outbox-backlog", ("postgresql://postgres@127.0.0.1:5432/test", postgres_url))
    assert "unsent" in output


def test_health() -> None:
    assert not port_is_open("http://127.0.0.1:8001"), (
        "port 8001 is taken: stop what runs there to test this command"
    )
    env = os.environ | {
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test",
        "SERVICE_TOKENS": "api=local-api-token-0123456789",
        "PORT": "8001",
    }
    service = subprocess.Popen([sys.executable, "-m", "pg_data_service"], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 30
        while not port_is_open("http://127.0.0.1:8001"):
            assert time.monotonic() < deadline, "pg_data_service did not start"
            time.sleep(0.1)
        assert '"status":"ok"' in run("health")
    finally:
        service.terminate()
        service.wait(timeout=30)
