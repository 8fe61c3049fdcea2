"""The worker process: health and metrics, the periodic job, graceful shutdown on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import AsyncExitStack

from shared.clients.mongo import MongoDataClient
from shared.clients.pg import PgDataClient
from shared.ops_server import ops_server
from worker_service.jobs import confirm_placed_orders
from worker_service.runner import run_periodically
from worker_service.settings import Settings

log = logging.getLogger("worker_service")


# --8<-- [start:run]
async def run(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Work until SIGTERM or SIGINT (or ``stop``), finishing the job in progress first."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    timeout = settings.data_timeout_seconds
    async with AsyncExitStack() as stack:
        pg = await stack.enter_async_context(
            PgDataClient(str(settings.pg_data_url), settings.service_token, timeout=timeout)
        )
        mongo = await stack.enter_async_context(
            MongoDataClient(str(settings.mongo_data_url), settings.service_token, timeout=timeout)
        )
        checks = {
            "pg_data_service": lambda: pg.request("GET", "/health/live"),
            "mongo_data_service": lambda: mongo.request("GET", "/health/live"),
        }
        await stack.enter_async_context(ops_server(settings.host, settings.port, checks))
        log.info("worker started")
        await run_periodically(
            "confirm_placed_orders",
            lambda: confirm_placed_orders(pg, mongo, settings.batch_size),
            settings.job_interval_seconds,
            stop,
        )
    log.info("worker stopped")
    # --8<-- [end:run]
