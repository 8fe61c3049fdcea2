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
  from it (``response_model``), instead of a dict; ``RESPONSE=bytes``: validated into ``User``
  and serialised by pydantic straight to JSON bytes, past FastAPI's response handling;
* ``READ=core``: the row read with a SQLAlchemy Core ``SELECT`` on a pooled connection (no session);
* ``AUTH=1``: the data service's bearer-token check (``SERVICE_TOKENS``) on the route;
* ``DEPENDENCY=def``: one dependency that does nothing, written as a plain ``def`` (FastAPI
  runs those in its thread pool).

``POST /orders`` is the write ``hop.py`` compares with the data service's: the same transaction
(claim the idempotency key, check the user, insert the order and its ``order.placed`` outbox
row, store the answer under the key) in plain asyncpg, with no auth, ORM or problem details.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, FastAPI, Header, HTTPException, Response
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from pg_data_service.settings import asyncpg_url
from pg_data_service.tables import UserRow
from shared.auth import CallerAuth, requires
from shared.contracts.pg import Order, OrderCreate, User
from shared.events.envelope import OrderPlaced, new_event
from shared.idempotency import request_digest
from shared.observability.http_server import RedMetrics, metrics_router, observe_app
from shared.observability.setup import observe_process
from shared.settings import ServiceSettings, parse_service_tokens

COLUMNS = ", ".join(User.model_fields)


async def jsonb_as_json(connection: asyncpg.Connection) -> None:
    await connection.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(
        os.environ["DATABASE_URL"], min_size=4, max_size=16, init=jsonb_as_json
    )
    engine = create_async_engine(asyncpg_url(os.environ["DATABASE_URL"]), pool_size=10, pool_pre_ping=True)
    app.state.engine = engine
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


BY_ID = select(*(getattr(UserRow, name) for name in User.model_fields)).where(UserRow.id == bindparam("id"))


async def read(user_id: int) -> dict[str, Any]:
    if os.environ.get("READ") == "orm":
        async with app.state.sessions() as session:
            row = await session.get(UserRow, user_id)
        return {name: getattr(row, name) for name in User.model_fields} if row else {}
    if os.environ.get("READ") == "core":  # SQLAlchemy Core: a compiled SELECT, a connection, no session
        async with app.state.engine.connect() as connection:
            found = (await connection.execute(BY_ID, {"id": user_id})).mappings().first()
        return dict(found) if found else {}
    async with app.state.pool.acquire() as connection:
        record = await connection.fetchrow(f"SELECT {COLUMNS} FROM users WHERE id = $1", user_id)
    return dict(record) if record else {}


if os.environ.get("RESPONSE") == "model":

    @app.get("/users/{user_id}", response_model=User, dependencies=dependencies)
    async def get_user_model(user_id: int) -> User:
        return User.model_validate(await read(user_id))

elif os.environ.get("RESPONSE") == "bytes":  # validated by the model, serialised by it, sent as they are

    @app.get("/users/{user_id}", dependencies=dependencies)
    async def get_user_bytes(user_id: int) -> Response:
        body = User.model_validate(await read(user_id)).model_dump_json()
        return Response(body, media_type="application/json")

else:

    @app.get("/users/{user_id}", dependencies=dependencies)
    async def get_user(user_id: int) -> dict[str, Any]:
        return await read(user_id)


CLAIM = """INSERT INTO idempotency_keys (caller, key, request_hash) VALUES ('api', $1, $2)
ON CONFLICT DO NOTHING RETURNING key"""
ORDER = """INSERT INTO orders (user_id, items, total, status, version) VALUES ($1, $2, $3, 'placed', 1)
RETURNING id, user_id, items, total, status, created_at, version"""
OUTBOX = "INSERT INTO outbox (event_id, event_type, envelope) VALUES ($1, $2, $3)"
ANSWER = "UPDATE idempotency_keys SET response = $2 WHERE caller = 'api' AND key = $1"


@app.post("/orders", status_code=201)
async def place(order: OrderCreate, key: Annotated[str, Header(alias="Idempotency-Key")]) -> dict[str, Any]:
    async with app.state.pool.acquire() as connection, connection.transaction():
        if await connection.fetchval(CLAIM, key, request_digest(order)) is None:
            answer: dict[str, Any] = await connection.fetchval(
                "SELECT response FROM idempotency_keys WHERE caller = 'api' AND key = $1", key
            )
            return answer
        if not await connection.fetchval("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)", order.user_id):
            raise HTTPException(422, f"user {order.user_id} does not exist")
        items = [item.model_dump(mode="json") for item in order.items]
        row = await connection.fetchrow(ORDER, order.user_id, items, order.total.quantize(Decimal("0.01")))
        event = new_event(OrderPlaced(order_id=row["id"], user_id=row["user_id"], total=row["total"]))
        await connection.execute(OUTBOX, event.id, event.type, event.model_dump(mode="json"))
        body = Order.model_validate(dict(row)).model_dump(mode="json")
        await connection.execute(ANSWER, key, body)
    return body
