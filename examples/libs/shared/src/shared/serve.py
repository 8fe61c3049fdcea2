"""Serve a FastAPI app with uvicorn inside a service's :class:`~shared.lifecycle.Lifecycle`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from shared.lifecycle import Lifecycle
from shared.settings import ServiceSettings


class Server(uvicorn.Server):
    """uvicorn without its own signal handlers: SIGTERM is the lifecycle's, as in every service.

    uvicorn's handlers would stop the server, then raise the signal again once it has shut
    down, which kills the process before telemetry is flushed. ``capture_signals`` is the
    public hook uvicorn runs its serving inside; here it installs nothing.
    """

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


# --8<-- [start:serve]
async def serve(app: FastAPI, settings: ServiceSettings, life: Lifecycle) -> None:
    """uvicorn on ``settings.host:port`` until ``life`` stops; requests in flight finish first,
    then the app's lifespan closes what it opened."""
    # No access log: the RED metrics count every request and the traces time them.
    # log_config=None: uvicorn's records go through our ECS handler. httptools: the C parser,
    # named so that uvicorn never falls back to h11 unnoticed (its "auto" would, if not installed).
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http="httptools",
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    server = Server(config)

    async def stop_when_asked() -> None:
        await life.stopping.wait()
        server.should_exit = True  # uvicorn's graceful shutdown: stop accepting, finish, lifespan exit

    watcher = asyncio.create_task(stop_when_asked())
    try:
        await server.serve()
    except SystemExit as error:  # uvicorn exits when start-up fails (lifespan, port), having logged why
        life.fail("start-up", RuntimeError(f"{app.title} did not start (uvicorn exit {error.code})"))
    finally:
        watcher.cancel()
        # --8<-- [end:serve]
