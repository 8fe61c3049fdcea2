"""The reference system, started by the command on the Development commands page, for the whole run.

``uv run python -m reference_system`` runs as a reader runs it, pointed by its environment at
a scratch database, vhost, key prefix and MongoDB database, at a fake Telegram the tests play
the user on, and at an OTLP receiver in this process that records every exported span. One
system serves every test that asks for it (starting five processes costs seconds): those tests
run in the session's event loop, on one xdist worker (``SHARED_SYSTEM``), and each works with
data of its own (its own user, chat and order), never with whole tables. At the end the command
gets Ctrl-C (SIGINT) and must stop every service and exit 0.

Loaded as a plugin (``tests/conftest.py``), so the test of the commands page shares the system.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from patterns.testing.isolation import mongo_database, postgres_database, rabbitmq_vhost, redis_namespace
from patterns.testing.pytest_fixtures import MongoTarget
from patterns.testing.service_resolution import Found
from reference_system.fake_telegram import FakeTelegram, fake_telegram
from reference_system.ports import free_port, port_is_open
from reference_system.processes import PORT_VARIABLES, Ports
from tests.examples.services.test_api_service import END_USERS
from tests.site_builds import ROOT, command

METRICS_TOKEN = secrets.token_urlsafe(24)

# Each test module that uses the system carries this mark.
SHARED_SYSTEM = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.xdist_group("system")]


@dataclass(frozen=True)
class ExportedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    instance: str = ""  # service.instance.id, where the process was given one (OTEL_RESOURCE_ATTRIBUTES)


@dataclass
class OtlpReceiver:
    """What the services exported over OTLP/HTTP, decoded with the OpenTelemetry protobufs."""

    spans: list[ExportedSpan] = field(default_factory=list)

    async def export(self, request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in message.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                self.spans += [
                    ExportedSpan(
                        attributes["service.name"],
                        span.name,
                        span.trace_id.hex(),
                        span.span_id.hex(),
                        span.parent_span_id.hex(),
                        attributes.get("service.instance.id", ""),
                    )
                    for span in scope.spans
                ]
        return web.Response(body=b"", content_type="application/x-protobuf")


@dataclass(frozen=True)
class System:
    api_url: str
    telegram: FakeTelegram
    ports: Ports
    otlp: OtlpReceiver
    database_url: str
    mongo: MongoTarget
    started: list[str]  # what the command printed until the system was up


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def otlp() -> AsyncIterator[tuple[OtlpReceiver, str]]:
    async with otlp_receiver() as (receiver, url):
        yield receiver, url


@contextlib.asynccontextmanager
async def otlp_receiver() -> AsyncIterator[tuple[OtlpReceiver, str]]:
    """An OTLP/HTTP trace receiver on a free loopback port; yield it and its base URL."""
    receiver = OtlpReceiver()
    app = web.Application()
    app.router.add_post("/v1/traces", receiver.export)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield receiver, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def system(
    postgres_server: Found,
    mongodb_server: Found,
    redis_server: Found,
    rabbitmq_server: Found,
    otlp: tuple[OtlpReceiver, str],
) -> AsyncIterator[System]:
    """Yield while the system runs; on exit every process has stopped and flushed its spans."""
    receiver, otlp_url = otlp
    async with AsyncExitStack() as stack:
        database_url = await stack.enter_async_context(postgres_database(postgres_server.url))
        mongo = MongoTarget(
            mongodb_server.url, await stack.enter_async_context(mongo_database(mongodb_server.url))
        )
        telegram, telegram_url = await stack.enter_async_context(fake_telegram())
        ports = Ports(api=free_port(), pg=free_port(), mongo=free_port(), worker=free_port(), bot=free_port())
        env = {
            "DATABASE_URL": database_url,
            "MONGODB_URL": mongo.url,
            "MONGODB_DATABASE": mongo.database,
            "REDIS_URL": redis_server.url,
            "CACHE_PREFIX": await stack.enter_async_context(redis_namespace(redis_server.url)),
            "RABBITMQ_URL": await stack.enter_async_context(rabbitmq_vhost(rabbitmq_server.url)),
            "TELEGRAM_API_URL": telegram_url,
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_url,
            "OTEL_BSP_SCHEDULE_DELAY": "200",  # ms between span batches (5 s by default): tests wait less
            "JOB_INTERVAL_SECONDS": "3600",  # orders are confirmed by the order.placed event, not the job
            "JWT_KEY": END_USERS.jwt_key.get_secret_value(),  # so the tests can sign end users' tokens
            "METRICS_TOKEN": METRICS_TOKEN,  # so the tests' Prometheus can scrape
        } | {name: str(getattr(ports, port)) for port, name in PORT_VARIABLES.items()}
        started = await stack.enter_async_context(system_command(env, ports))
        yield System(f"http://127.0.0.1:{ports.api}", telegram, ports, receiver, database_url, mongo, started)


@contextlib.asynccontextmanager
async def system_command(env: dict[str, str], ports: Ports, timeout: float = 120) -> AsyncIterator[list[str]]:
    """The page's command until it prints the API's address; yield what it printed. On exit, Ctrl-C,
    and the command must stop every service and exit 0."""
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        f"exec {command('system')}",
        cwd=ROOT,
        env=os.environ | env,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    printed: deque[str] = deque(maxlen=200)  # the services log to the same stdout: keep reading it
    ready = asyncio.Event()
    api_line = f"API: http://127.0.0.1:{ports.api}/docs"

    async def read() -> None:
        assert process.stdout is not None
        while line := (await process.stdout.readline()).decode():
            printed.append(line)
            if line.startswith(api_line):
                ready.set()

    reader = asyncio.create_task(read())
    waiter = asyncio.create_task(ready.wait())
    try:
        await asyncio.wait({reader, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if not ready.is_set():
            what = "exited" if reader.done() else f"was not up within {timeout:.0f} s"
            raise AssertionError(f"{command('system')} {what}:\n{''.join(printed)}")
        yield list(printed)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        status = await asyncio.wait_for(process.wait(), 60)
        await reader
    assert status == 0, f"{command('system')} ended with {status} on Ctrl-C:\n{''.join(printed)}"
    still_open = [port for port in vars(ports).values() if port_is_open(f"http://127.0.0.1:{port}")]
    assert not still_open, f"ports {still_open} still answer after Ctrl-C"
