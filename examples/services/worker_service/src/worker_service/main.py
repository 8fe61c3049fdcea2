"""The worker process: health and metrics, the periodic job, graceful shutdown on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import AsyncExitStack

from shared.clients.both import data_clients, liveness_of
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
    async with AsyncExitStack() as stack:
        pg, mongo = await stack.enter_async_context(data_clients(settings))
        await stack.enter_async_context(ops_server(settings.host, settings.port, liveness_of(pg, mongo)))
        log.info("worker started")
        await run_periodically(
            "confirm_placed_orders",
            lambda: confirm_placed_orders(pg, mongo, settings.batch_size),
            settings.job_interval_seconds,
            stop,
        )
    log.info("worker stopped")
    # --8<-- [end:run]
