"""The reference system as five processes, exporting their spans to an OTLP receiver in the test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from patterns.testing.fake_telegram import FakeTelegram, fake_telegram
from patterns.testing.pytest_fixtures import MongoTarget, RedisTarget
from patterns.testing.service_resolution import free_port
from reference_system.processes import Ports, SystemConfig, running_system


@dataclass(frozen=True)
class ExportedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str


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


@pytest.fixture
async def otlp() -> AsyncIterator[tuple[OtlpReceiver, str]]:
    receiver = OtlpReceiver()
    app = web.Application()
    app.router.add_post("/v1/traces", receiver.export)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield receiver, f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def system(
    postgres_url: str,
    mongo_target: MongoTarget,
    redis_target: RedisTarget,
    rabbitmq_url: str,
    otlp: tuple[OtlpReceiver, str],
) -> AsyncIterator[System]:
    """Yield while the system runs; on exit every process has stopped and flushed its spans."""
    receiver, otlp_url = otlp
    async with fake_telegram() as (telegram, telegram_url):
        ports = Ports(api=free_port(), pg=free_port(), mongo=free_port(), worker=free_port(), bot=free_port())
        config = SystemConfig(
            database_url=postgres_url,
            mongodb_url=mongo_target.url,
            mongodb_database=mongo_target.database,
            redis_url=redis_target.url,
            cache_prefix=redis_target.prefix,
            rabbitmq_url=rabbitmq_url,
            telegram_api_url=telegram_url,
            ports=ports,
            job_interval_seconds=3600,  # the order is confirmed by the order.placed event, not the job
            otlp_endpoint=otlp_url,
        )
        async with running_system(config):
            yield System(f"http://127.0.0.1:{ports.api}", telegram, ports, receiver)
