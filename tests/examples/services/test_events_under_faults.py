"""Events under the faults that break them in production, against the real RabbitMQ.

1,000 orders go through the whole chain (order + outbox row in one transaction → the
relay inside pg_data_service → RabbitMQ → the worker process → both data services)
while the broker's connections are forcibly closed three times and the worker process
is killed with SIGKILL and replaced mid-stream. Every order must end confirmed exactly
once (version 2) with exactly one activity record; nothing lost, nothing applied twice.

All three services run as processes of their own, as deployed: inside the test process,
coverage's tracer made the two data services more than twice as slow. Their AMQP URL asks
aio-pika to reconnect after 1 s instead of its default 5 s: what is proved is that nothing is
lost or doubled across a reconnect, not how long one waits.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg
import httpx
import pytest
from pymongo import AsyncMongoClient

from patterns.testing.pytest_fixtures import MongoTarget, RedisTarget
from pg_data_service.settings import Settings
from reference_system.ports import free_port
from tests.examples.services.conftest import TOKENS, auth

ORDERS = 1_000
ITEMS = [{"sku": "book-1", "quantity": 1, "unit_price": "10.00"}]


def close_all_connections(rabbitmq_url: str) -> None:
    vhost = unquote(urlsplit(rabbitmq_url).path.lstrip("/"))
    subprocess.run(
        ["rabbitmqctl", "--quiet", "close_all_connections", "-p", vhost, "fault test"],
        check=True,
        timeout=60,
        capture_output=True,
    )


class Service:
    """A service as a real process, which the test can kill."""

    def __init__(self, module: str, env: dict[str, str], log: Path) -> None:
        self.module, self.env, self.log = module, os.environ | env, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not _answers(f"http://127.0.0.1:{self.env['PORT']}/health/ready"):
            assert self.process is not None
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"{self.module} not ready within {timeout} s"
            time.sleep(0.1)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own loopback service
            return int(response.status) == 200
    except OSError:
        return False


@pytest.fixture
def amqp_url(rabbitmq_url: str) -> str:
    """This test's vhost, reconnecting after 1 s."""
    return f"{rabbitmq_url}?reconnect_interval=1"


@pytest.fixture
def data_services(
    pg_settings: Settings, mongo_target: MongoTarget, amqp_url: str, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    """pg_data_service (its outbox relay publishing to this test's vhost) and mongo_data_service."""
    tokens = ",".join(f"{caller}={token}" for caller, token in TOKENS.items())
    pg_port, mongo_port = free_port(), free_port()
    services = [
        Service(
            "pg_data_service",
            {"PORT": str(pg_port), "DATABASE_URL": str(pg_settings.database_url), "SERVICE_TOKENS": tokens}
            | {"RABBITMQ_URL": amqp_url},
            tmp_path / "pg.log",
        ),
        Service(
            "mongo_data_service",
            {"PORT": str(mongo_port), "MONGODB_URL": mongo_target.url, "SERVICE_TOKENS": tokens}
            | {"MONGODB_DATABASE": mongo_target.database},
            tmp_path / "mongo.log",
        ),
    ]
    for service in services:
        service.start()
    try:
        for service in services:
            service.ready()
        yield f"http://127.0.0.1:{pg_port}", f"http://127.0.0.1:{mongo_port}"
    finally:
        for service in services:
            service.stop()


async def confirmed(postgres_url: str) -> int:
    connection = await asyncpg.connect(postgres_url)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM orders WHERE status = 'confirmed'"))
    finally:
        await connection.close()


async def reach(postgres_url: str, count: int, timeout: float = 180) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (done := await confirmed(postgres_url)) < count:
        assert asyncio.get_running_loop().time() < deadline, f"only {done} of {count} orders confirmed"
        await asyncio.sleep(0.2)


async def test_every_event_takes_effect_exactly_once_through_broker_and_consumer_failures(
    data_services: tuple[str, str],
    postgres_url: str,
    rabbitmq_url: str,
    amqp_url: str,
    redis_target: RedisTarget,
    mongo_target: MongoTarget,
    tmp_path: Path,
) -> None:
    pg_url, mongo_url = data_services
    env = {
        "PORT": str(free_port()),
        "PG_DATA_URL": pg_url,
        "MONGO_DATA_URL": mongo_url,
        "SERVICE_TOKEN": TOKENS["worker"],
        "RABBITMQ_URL": amqp_url,
        "REDIS_URL": redis_target.url,
        "REDIS_PREFIX": redis_target.prefix,
        "JOB_INTERVAL_SECONDS": "3600",  # events only: the periodic job runs once, at start, on no orders
    }
    worker = Service("worker_service", env, tmp_path / "worker.log")
    worker.start()
    async with httpx.AsyncClient(base_url=pg_url, headers=auth(), timeout=30) as pg:
        user = (await pg.post("/users", json={"email": "load@example.org", "name": "Load"})).json()

        async def place_orders() -> None:
            for n in range(ORDERS):
                order = {"user_id": user["id"], "items": ITEMS}
                response = await pg.post("/orders", json=order, headers={"Idempotency-Key": f"load-{n:05d}"})
                assert response.status_code == 201, response.text

        placing = asyncio.create_task(place_orders())
        await reach(postgres_url, 100)
        await asyncio.to_thread(close_all_connections, rabbitmq_url)  # fault 1: every connection dropped
        await reach(postgres_url, 300)
        worker.kill()  # fault 2: the consumer dies mid-stream, messages in hand unacked
        worker.start()
        await reach(postgres_url, 500)
        await asyncio.to_thread(close_all_connections, rabbitmq_url)  # fault 3
        await reach(postgres_url, 700)
        await asyncio.to_thread(close_all_connections, rabbitmq_url)  # fault 4
        await placing
        await reach(postgres_url, ORDERS)
        await asyncio.sleep(1)  # let redeliveries, if any, arrive: they must change nothing
    assert worker.stop() == 0, (tmp_path / "worker.log").read_text()[-3000:]

    connection = await asyncpg.connect(postgres_url)
    try:
        orders = await connection.fetch("SELECT id, status, version FROM orders")
        unsent = await connection.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
    finally:
        await connection.close()
    assert len(orders) == ORDERS
    assert {(row["status"], row["version"]) for row in orders} == {("confirmed", 2)}  # confirmed once each
    assert unsent == 0
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_target.url)
    try:
        activity = await mongo[mongo_target.database].activity.find({}).to_list()
    finally:
        await mongo.close()
    order_ids = [doc["payload"]["order_id"] for doc in activity]
    assert len(order_ids) == ORDERS  # one record per order: none lost, none doubled
    assert set(order_ids) == {row["id"] for row in orders}
