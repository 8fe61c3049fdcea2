"""The trial's minimal service: FastAPI + an asyncpg pool, one single-row read, nothing else.

Used by ``http_clients.py`` to separate what the *client* costs from what a full data
service (auth, validation, ORM, problem details) costs, and by ``observability_overhead.py``.
With ``OBSERVE=metrics`` it gets only the RED metrics middleware; with ``OBSERVE=1`` exactly
what every service gets (``observe_process`` and ``observe_app``: ECS logs, RED metrics,
request ids, a server span per request), sampling and export from the ``OTEL_*`` settings.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider

from shared.observability.http_server import RedMetrics, metrics_router, observe_app
from shared.observability.setup import observe_process
from shared.settings import ServiceSettings


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=4, max_size=16)
    yield
    await app.state.pool.close()
    if provider is not None:  # uvicorn's CLI dies of its re-raised SIGTERM: flush before that
        provider.force_flush()


app = FastAPI(lifespan=lifespan)
provider: TracerProvider | None = None
if os.environ.get("OBSERVE") == "metrics":  # the RED middleware alone, to split the cost
    app.add_middleware(RedMetrics)
    app.include_router(metrics_router())
elif os.environ.get("OBSERVE") == "1":
    provider = observe_process("minimal_service", ServiceSettings(port=int(os.environ.get("PORT", "8000"))))
    observe_app(app)


@app.get("/users/{user_id}")
async def get_user(user_id: int) -> dict[str, Any]:
    async with app.state.pool.acquire() as connection:
        row = await connection.fetchrow("SELECT id, email, name, version FROM users WHERE id = $1", user_id)
    return dict(row) if row else {}
