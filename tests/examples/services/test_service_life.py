"""Every service, started as a reader starts it (``python -m <service>``), stops the same way on
SIGTERM: in-flight work finishes, the spans still batched are exported, and the exit status is 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import aiohttp
import pytest

from patterns.testing.pytest_fixtures import MongoTarget, RedisTarget
from pg_data_service.migrate import upgrade
from reference_system.fake_telegram import fake_telegram
from reference_system.ports import free_port
from reference_system.processes import Running, wait_ready
from tests.examples.services.conftest import TOKENS, auth
from tests.examples.services.test_api_service import END_USERS, bearer
from tests.system.running import ExportedSpan, OtlpReceiver, otlp_receiver

SERVICE_TOKENS = ",".join(f"{caller}={token}" for caller, token in TOKENS.items())


@dataclass(frozen=True)
class Backing:
    """What the five services need around them, each isolated for this test."""

    database_url: str
    mongo: MongoTarget
    redis: RedisTarget
    rabbitmq_url: str
    pg_url: str
    mongo_url: str
    telegram_url: str

    def data_service(self, name: str) -> dict[str, str]:
        if name == "pg_data_service":  # with the outbox relay, which must stop too
            return {"DATABASE_URL": self.database_url, "RABBITMQ_URL": self.rabbitmq_url}
        return {"MONGODB_URL": self.mongo.url, "MONGODB_DATABASE": self.mongo.database}

    def business_service(self, name: str) -> dict[str, str]:
        caller = name.removesuffix("_service")
        env = {
            "PG_DATA_URL": self.pg_url,
            "MONGO_DATA_URL": self.mongo_url,
            "SERVICE_TOKEN": TOKENS[caller],
            "REDIS_URL": self.redis.url,
        }
        if name == "api_service":
            return env | {"CACHE_PREFIX": self.redis.prefix, "JWT_KEY": END_USERS.jwt_key.get_secret_value()}
        env |= {"RABBITMQ_URL": self.rabbitmq_url, "JOB_INTERVAL_SECONDS": "0.2"}
        if name == "bot_service":
            env |= {
                "TELEGRAM_API_URL": self.telegram_url,
                "BOT_TOKEN": "123456:TEST-token-for-the-fake-server",
            }
        return env

    def env(self, name: str) -> dict[str, str]:
        if name.endswith("_data_service"):
            return self.data_service(name) | {"SERVICE_TOKENS": SERVICE_TOKENS}
        return self.business_service(name)


@pytest.fixture
async def backing(
    postgres_url: str,
    mongo_target: MongoTarget,
    redis_target: RedisTarget,
    rabbitmq_url: str,
    pg_url: str,
    mongo_url: str,
) -> AsyncIterator[Backing]:
    await asyncio.to_thread(upgrade, postgres_url)
    async with fake_telegram() as (_, telegram_url):
        yield Backing(postgres_url, mongo_target, redis_target, rabbitmq_url, pg_url, mongo_url, telegram_url)


@pytest.fixture
async def otlp() -> AsyncIterator[tuple[OtlpReceiver, str]]:
    async with otlp_receiver() as (receiver, url):
        yield receiver, url


@asynccontextmanager
async def started(name: str, env: dict[str, str]) -> AsyncIterator[Running]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", name, env=os.environ | env, stdout=asyncio.subprocess.PIPE
    )
    running = Running(name, process, f"http://127.0.0.1:{env['PORT']}/health/ready")
    try:
        yield running
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


# What makes each service record a span: a request it serves, or its own work.
async def traced_work(name: str, base_url: str) -> None:
    if name in {"worker_service", "bot_service"}:  # ready only while the broker delivers to its consumer
        async with aiohttp.ClientSession() as session, session.get(f"{base_url}/health/ready") as r:
            checks = (await r.json())["checks"]
            consumers = {key: value for key, value in checks.items() if key.startswith(("worker.", "bot."))}
            assert set(consumers.values()) == {"ok"}, checks
            assert len(consumers) == 2, checks  # order.placed or .confirmed, and order.cancelled
        return  # the periodic job's run, the bot's getMe: both are traced on their own
    path = "/preferences/1" if name == "mongo_data_service" else "/users/1"
    headers = bearer(1) if name == "api_service" else auth()
    async with aiohttp.ClientSession() as session, session.get(f"{base_url}{path}", headers=headers) as r:
        assert r.status in {200, 404}


SERVICES = ["pg_data_service", "mongo_data_service", "api_service", "worker_service", "bot_service"]


@pytest.mark.parametrize("name", SERVICES)
async def test_sigterm_drains_flushes_and_exits_0(
    name: str, backing: Backing, otlp: tuple[OtlpReceiver, str]
) -> None:
    receiver, otlp_url = otlp
    port = free_port()
    # Only this process's spans count: a process of another test may still be exporting to a
    # port this receiver now holds (seen once: spans of another test's database arrived here).
    instance = uuid.uuid4().hex
    env = backing.env(name) | {
        "PORT": str(port),
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_url,
        "OTEL_BSP_SCHEDULE_DELAY": "600000",  # ten minutes: only the flush on the way out exports
        "OTEL_RESOURCE_ATTRIBUTES": f"service.instance.id={instance}",
    }

    def exported() -> list[ExportedSpan]:
        return [span for span in receiver.spans if span.instance == instance]

    async with AsyncExitStack() as stack:
        running = await stack.enter_async_context(started(name, env))
        await wait_ready(running)
        await traced_work(name, f"http://127.0.0.1:{port}")
        assert exported() == []  # nothing exported yet: the batch waits
        assert running.process.stdout is not None
        running.process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(running.process.communicate(), 20)
    assert running.process.returncode == 0
    logged = [json.loads(line) for line in output.decode().splitlines() if line.startswith("{")]
    assert logged[-1]["message"] == f"{name} stopped"
    assert not [entry for entry in logged if entry["log.level"] == "error"]
    assert {span.service for span in exported()} == {name}
