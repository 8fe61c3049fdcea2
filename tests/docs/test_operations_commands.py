"""Every command on the Troubleshooting page runs against the local services and says what the page says."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aio_pika
import asyncpg

from docs_tooling.snippet_guard import read_section, sections_in
from reference_system.ports import free_port, wait_for_port
from shared.events.topology import declare_all
from tests.site_builds import run_script

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ROOT / "examples" / "commands" / "operations.sh"


def run_unchecked(name: str, replace: tuple[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The page's command (``replace`` points it at this test's servers), as a reader runs it."""
    script = read_section(COMMANDS, name).strip()
    if replace:
        script = script.replace(*replace)
    return run_script(script, ROOT, timeout=120)


def run(name: str, replace: tuple[str, str] | None = None) -> str:
    result = run_unchecked(name, replace)
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
        "outbox-quarantine-list",
        "outbox-quarantine-replay",
        "health",
    }
    assert set(sections_in(COMMANDS)) == tested


async def test_queues_alarms_and_connections(rabbitmq_url: str) -> None:
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        await declare_all(await connection.channel())
        vhost = rabbitmq_url.rsplit("/", 1)[1]  # the page lists "/", this test's queues live here
        queues = await asyncio.to_thread(run, "queues", ("list_queues", f"list_queues -p {vhost}"))
        assert "messages_unacknowledged" in queues
        assert "worker.order-placed.parking-lot\tquorum\t0\t0\t0\t0" in queues
        assert "no alarms" in await asyncio.to_thread(run, "alarms")
        listing = await asyncio.to_thread(run, "connections")
    assert "running" in listing  # our connection, not blocked by a memory or disk alarm


async def test_parking_lot_list_and_replay(rabbitmq_url: str) -> None:
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        await declare_all(await connection.channel())  # as every publisher does when it starts
    url = ("worker.order-placed", f"worker.order-placed --url {rabbitmq_url}")
    listed = await asyncio.to_thread(run, "parking-lot-list", url)
    assert "0 parked message(s) in worker.order-placed.parking-lot" in listed
    replayed = await asyncio.to_thread(run, "parking-lot-replay", url)
    assert "replayed 0 message(s) to worker.order-placed" in replayed


def test_a_consumer_that_does_not_exist_is_named(rabbitmq_url: str) -> None:
    failed = run_unchecked(
        "parking-lot-list", ("worker.order-placed", f"worker.ordr-placed --url {rabbitmq_url}")
    )
    assert failed.returncode == 1
    assert "no parking lot worker.ordr-placed.parking-lot on this broker" in failed.stderr


def test_outbox_backlog(postgres_url: str) -> None:
    from pg_data_service.migrate import upgrade

    upgrade(postgres_url)
    output = run("outbox-backlog", ("postgresql://postgres@127.0.0.1:5432/test", postgres_url))
    assert "unsent | quarantined | oldest" in output


async def test_outbox_quarantine_list_and_replay(postgres_url: str) -> None:
    from pg_data_service.migrate import upgrade

    await asyncio.to_thread(upgrade, postgres_url)
    connection = await asyncpg.connect(postgres_url)
    try:
        row = await connection.fetchval(
            "INSERT INTO outbox (event_id, event_type, envelope, quarantined_at, quarantine_reason)"
            " VALUES (gen_random_uuid(), 'order.shipped', '{}', now(), 'refused by the broker: NO_ROUTE')"
            " RETURNING id"
        )
    finally:
        await connection.close()
    url = ("postgresql://postgres@127.0.0.1:5432/test", postgres_url)
    listed = await asyncio.to_thread(run, "outbox-quarantine-list", url)
    assert f"{row}\torder None\torder.shipped\trefused by the broker: NO_ROUTE" in listed
    assert "1 quarantined outbox row(s)" in listed
    replayed = await asyncio.to_thread(run, "outbox-quarantine-replay", url)
    assert f"released 1 outbox row(s) to the relay: [{row}]" in replayed


def test_health() -> None:
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test",
        "SERVICE_TOKENS": "api=local-api-token-0123456789",
        "PORT": str(port),
    }
    service = subprocess.Popen([sys.executable, "-m", "pg_data_service"], cwd=ROOT, env=env)
    try:
        wait_for_port(f"http://127.0.0.1:{port}", service, timeout=30)
        assert '"status":"ok"' in run("health", ("127.0.0.1:8001", f"127.0.0.1:{port}"))
    finally:
        service.terminate()
        service.wait(timeout=30)
