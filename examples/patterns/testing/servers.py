"""Serve an ASGI app on a real loopback port inside the test process.

Clients that open real TCP connections (aiohttp, the bot, the benchmarks) need a real
server; running uvicorn as a task of the test's own event loop keeps it fast, keeps
coverage measured, and shuts it down with the test.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager

import httpx
import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp

from reference_system.ports import free_port
from reference_system.waiting import eventually, eventually_blocking


# --8<-- [start:serve]
@asynccontextmanager
async def serving(app: ASGIApp, port: int | None = None) -> AsyncIterator[str]:
    """Run ``app`` with uvicorn on 127.0.0.1 (a free port by default); yield its base URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port or free_port(), log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    def stopped() -> str | None:
        if task.done():
            task.result()  # start-up failed: raise its error here
            return "uvicorn stopped before it started"
        return None

    try:
        await eventually(lambda: server.started, "uvicorn started", interval=0.01, abort=stopped)
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        await task
        # --8<-- [end:serve]


@contextmanager
def serving_in_thread(app: ASGIApp) -> Iterator[str]:
    """The same, for synchronous tests (schemathesis, hypothesis): uvicorn in its own thread and loop."""
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def stopped() -> str | None:
        return None if thread.is_alive() else "uvicorn stopped before it started"

    try:
        eventually_blocking(
            lambda: server.started, "uvicorn started", timeout=20, interval=0.01, abort=stopped
        )
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@asynccontextmanager
async def in_process(
    app: FastAPI, headers: Mapping[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """Call ``app`` in-process, no socket, with its lifespan run as a server would run it."""
    transport = httpx.ASGITransport(app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://service", headers=headers) as client,
    ):
        yield client
