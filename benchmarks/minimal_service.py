"""The trial's minimal service: FastAPI + an asyncpg pool, one single-row read, nothing else.

Used by ``http_clients.py`` to separate what the *client* costs from what a full data
service (auth, validation, ORM, problem details) costs, by ``observability_overhead.py``,
and by ``hop.py``, which adds one lever at a time:

* ``OBSERVE=metrics``: only the RED metrics middleware; ``OBSERVE=1``: exactly what every
  service gets (``observe_process`` and ``observe_app``: ECS logs, RED metrics, request ids,
  a server span per request), sampling and export from the ``OTEL_*`` settings;
* ``READ=orm``: the row read through a SQLAlchemy ORM session (as the data service's writes
  do: pre-ping, a transaction, the identity map) instead of straight through asyncpg;
* ``RESPONSE=model``: the row validated into the contract's pydantic ``User`` and serialised
  from it (``response_model``), instead of a dict;
* ``AUTH=1``: the data service's bearer-token check (``SERVICE_TOKENS``) on the route;
* ``DEPENDENCY=def``: one dependency that does nothing, written as a plain ``def`` (FastAPI
  runs those in its thread pool).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import Depends, FastAPI
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from pg_data_service.settings import asyncpg_url
from pg_data_service.tables import UserRow
from shared.auth import CallerAuth, requires
from shared.contracts.pg import User
from shared.observability.http_server import RedMetrics, metrics_router, observe_app
from shared.observability.setup import observe_process
from shared.settings import ServiceSettings, parse_service_tokens

COLUMNS = ", ".join(User.model_fields)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=4, max_size=16)
    engine = create_async_engine(asyncpg_url(os.environ["DATABASE_URL"]), pool_size=10, pool_pre_ping=True)
    app.state.sessions = async_sessionmaker(engine, expire_on_commit=False)
    yield
    await engine.dispose()
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
dependencies = []
if os.environ.get("AUTH") == "1":
    tokens = parse_service_tokens(os.environ["SERVICE_TOKENS"])
    app.state.auth = CallerAuth(tokens, {caller: frozenset({"users:read"}) for caller in tokens})
    dependencies.append(Depends(requires("users:read")))
if os.environ.get("DEPENDENCY") == "def":
    dependencies.append(Depends(lambda: None))  # a plain def: FastAPI runs it in a worker thread


async def read(user_id: int) -> dict[str, Any]:
    if os.environ.get("READ") == "orm":
        async with app.state.sessions() as session:
            row = await session.get(UserRow, user_id)
        return {name: getattr(row, name) for name in User.model_fields} if row else {}
    async with app.state.pool.acquire() as connection:
        record = await connection.fetchrow(f"SELECT {COLUMNS} FROM users WHERE id = $1", user_id)
    return dict(record) if record else {}


if os.environ.get("RESPONSE") == "model":

    @app.get("/users/{user_id}", response_model=User, dependencies=dependencies)
    async def get_user_model(user_id: int) -> User:
        return User.model_validate(await read(user_id))

else:

    @app.get("/users/{user_id}", dependencies=dependencies)
    async def get_user(user_id: int) -> dict[str, Any]:
        return await read(user_id)
