"""One trace follows an order through every hop, HTTP and AMQP alike (spans recorded in memory)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from urllib.parse import urlsplit

import httpx
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from pydantic import SecretStr

from api_service.app import create_app as create_api_app
from patterns.testing.pytest_fixtures import RedisTarget
from patterns.testing.servers import in_process, serving
from patterns.testing.spans import SpanRecorder
from pg_data_service.app import create_app as create_pg_app
from pg_data_service.settings import Settings as PgSettings
from reference_system.ports import free_port
from reference_system.waiting import eventually
from shared.clients.both import data_clients
from tests.examples.services.conftest import TOKENS, auth
from tests.examples.services.test_api_service import api_settings, sign_up
from tests.examples.services.test_pg_data_service import ITEMS
from worker_service.main import consuming
from worker_service.settings import Settings as WorkerSettings


@asynccontextmanager
async def worker(pg_url: str, mongo_url: str, rabbitmq_url: str, redis: RedisTarget) -> AsyncIterator[None]:
    settings = WorkerSettings(
        port=free_port(),
        pg_data_url=pg_url,
        mongo_data_url=mongo_url,
        service_token=SecretStr(TOKENS["worker"]),
        rabbitmq_url=rabbitmq_url,
        redis_url=redis.url,
        redis_prefix=redis.prefix,
    )
    async with data_clients(settings) as (pg, mongo), consuming(settings, pg, mongo):
        yield


class Trace:
    """The spans of one trace, with the questions a test asks about their links."""

    def __init__(self, spans: Sequence[ReadableSpan], root: ReadableSpan) -> None:
        self.trace_id = root.context.trace_id
        self.spans = [span for span in spans if span.context.trace_id == self.trace_id]
        self.by_id = {span.context.span_id: span for span in self.spans}

    def one(self, name: str, kind: SpanKind, port: int | None = None) -> ReadableSpan:
        found = [
            s
            for s in self.spans
            if s.name == name
            and s.kind == kind
            and (port is None or (s.attributes or {}).get("net.host.port") == port)
        ]
        assert len(found) == 1, f"{len(found)} spans {name!r} ({kind}) in the trace"
        return found[0]

    def parent(self, span: ReadableSpan) -> ReadableSpan:
        assert span.parent is not None, f"{span.name!r} has no parent"
        return self.by_id[span.parent.span_id]

    def descends(self, span: ReadableSpan, ancestor: ReadableSpan) -> bool:
        while span.parent is not None:
            span = self.by_id[span.parent.span_id]
            if span is ancestor:
                return True
        return False


async def test_one_trace_covers_the_order_flow(
    spans: SpanRecorder, pg_settings: PgSettings, mongo_url: str, rabbitmq_url: str, redis_target: RedisTarget
) -> None:
    """API → pg_data_service → outbox relay → RabbitMQ → worker → both data services: one trace."""
    async with AsyncExitStack() as stack:
        pg_app = create_pg_app(pg_settings.model_copy(update={"rabbitmq_url": rabbitmq_url}))
        pg_url = await stack.enter_async_context(serving(pg_app))
        api_app = create_api_app(api_settings(pg_url, mongo_url, redis_target))
        api = await stack.enter_async_context(in_process(api_app))
        await stack.enter_async_context(worker(pg_url, mongo_url, rabbitmq_url, redis_target))
        user = await sign_up(api)
        spans.clear()
        key = {"Idempotency-Key": str(uuid.uuid4())}
        placed = await api.post(f"/users/{user['id']}/orders", json={"items": ITEMS}, headers=key)
        assert placed.status_code == 201
        await confirmed(pg_url, placed.json()["id"], spans)
    pg_port, mongo_port = urlsplit(pg_url).port, urlsplit(mongo_url).port

    [root] = [s for s in spans.finished() if s.name == "POST /users/{user_id}/orders" and s.parent is None]
    flow = Trace(spans.finished(), root)
    pg_insert = flow.one("POST /orders", SpanKind.SERVER, port=pg_port)
    assert flow.parent(flow.parent(pg_insert)) is root  # through the API's aiohttp client span
    relay = flow.one("outbox relay order.placed", SpanKind.INTERNAL)
    assert flow.parent(relay) is pg_insert  # the relay continues the request that wrote the row
    sent = flow.one("domain.events,order.placed send", SpanKind.PRODUCER)
    assert flow.parent(sent) is relay
    received = flow.one("domain.events receive", SpanKind.CONSUMER)
    assert flow.parent(received) is sent  # across RabbitMQ, through the message headers
    for name, port in (("PATCH /orders/{order_id}", pg_port), ("POST /activity", mongo_port)):
        assert flow.descends(flow.one(name, SpanKind.SERVER, port=port), received)
    assert flow.parent(flow.one("domain.events,order.confirmed send", SpanKind.PRODUCER)) is received
    # the worker's read of the order went through the read pool, which names its statement too
    read = flow.one("GET /orders/{order_id}", SpanKind.SERVER, port=pg_port)
    assert flow.descends(flow.one("SELECT orders", SpanKind.CLIENT), read)
    orphans = [s.name for s in flow.spans if s is not root and s.parent.span_id not in flow.by_id]  # type: ignore[union-attr]
    assert orphans == []


async def confirmed(pg_url: str, order_id: int, spans: SpanRecorder) -> None:
    """Wait until the worker confirmed the order and its consumer span, which ends last, has ended."""
    async with httpx.AsyncClient(base_url=pg_url, headers=auth()) as pg:

        async def is_confirmed() -> bool:
            return bool((await pg.get(f"/orders/{order_id}")).json()["status"] == "confirmed")

        await eventually(is_confirmed, f"order {order_id} confirmed", timeout=10, interval=0.05)
    # the worker publishes order.confirmed just after the update, inside its consumer span
    ended = {"domain.events,order.confirmed send", "domain.events receive"}
    await eventually(
        lambda: ended <= {span.name for span in spans.finished()}, "the worker's spans ended", timeout=10
    )
