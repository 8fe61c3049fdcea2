"""The worker process: consumes ``order.placed``, runs the periodic job, serves health and metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta

from redis.asyncio import Redis

from shared.clients.both import data_clients, needed
from shared.clients.mongo import MongoDataClient
from shared.clients.pg import PgDataClient
from shared.events.consumer import EventConsumer, consumers_for
from shared.events.publisher import EventPublisher
from shared.lifecycle import Lifecycle
from shared.ops_server import ops_server
from worker_service.consumers import on_order_cancelled, on_order_placed
from worker_service.jobs import confirm_placed_orders
from worker_service.runner import run_periodically
from worker_service.settings import Settings

log = logging.getLogger("worker_service")


# --8<-- [start:run]
async def run(settings: Settings, life: Lifecycle) -> None:
    """Work until ``life`` stops (SIGTERM), then finish the job run and the messages in hand."""
    async with AsyncExitStack() as stack:  # opened in order, closed in reverse, also on failure
        pg, mongo = await stack.enter_async_context(data_clients(settings))
        checks = {"process": life.check, **needed(pg, mongo)}
        if settings.rabbitmq_url is not None:
            for consumer in await stack.enter_async_context(consuming(settings, pg, mongo)):
                await stack.enter_async_context(life.background(**{consumer.name: consumer.watch}))
                checks[consumer.name] = consumer.check

        async def confirm_orders(stop: asyncio.Event) -> None:
            await run_periodically(
                "confirm_placed_orders",
                lambda: confirm_placed_orders(
                    pg, mongo, settings.batch_size, timedelta(seconds=settings.confirm_within_seconds)
                ),
                settings.job_interval_seconds,
                stop,
            )

        if settings.confirm_job:
            await stack.enter_async_context(life.background(confirm_placed_orders=confirm_orders))
        await stack.enter_async_context(
            ops_server(settings.host, settings.port, checks, metrics_token=settings.metrics_token)
        )
        log.info("worker started")
        await life.stopping.wait()
    log.info("worker stopped")
    # --8<-- [end:run]


@asynccontextmanager
async def consuming(
    settings: Settings, pg: PgDataClient, mongo: MongoDataClient
) -> AsyncIterator[list[EventConsumer]]:
    """Consume ``order.placed`` and ``order.cancelled`` while the block runs; on exit, finish the
    messages in hand first."""
    assert settings.rabbitmq_url is not None
    url = str(settings.rabbitmq_url)
    redis = Redis.from_url(str(settings.redis_url), socket_timeout=2, socket_connect_timeout=2)
    consumer = consumers_for(settings, redis)
    try:
        async with (
            EventPublisher(url) as publisher,
            consumer(
                url,
                "worker.order-placed",
                ["order.placed"],
                on_order_placed(pg, mongo, publisher),
                prefetch=settings.prefetch,
            ) as placed,
            consumer(
                url, "worker.order-cancelled", ["order.cancelled"], on_order_cancelled(pg, mongo)
            ) as undone,
        ):
            yield [placed, undone]
    finally:
        await redis.aclose()
