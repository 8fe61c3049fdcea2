"""Hot reads: one row by its id, straight through an asyncpg pool, with no ORM session.

The repository's ORM session is what writes need: a transaction, the identity map, a connection
checked with a ping. For a read of one row by its key each of those is a cost and none a benefit:
measured side by side (``benchmarks/hop.py``), the session path made ``GET /users/{id}`` about
three times as expensive. Here a read is its statement plus the reset asyncpg's pool sends when
the connection goes back. So the two reads every caller makes most go through a small
pool of their own, with statements asyncpg prepares once per connection; everything else,
writes included, stays in the repository.

Only the columns the contract names are read, so a column added to the table stays private
until the contract says otherwise.
"""

# --8<-- [start:reads]
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from pg_data_service.settings import Settings
from shared.contracts.pg import Order, User
from shared.problems import ProblemError

USER = f"SELECT {', '.join(User.model_fields)} FROM users WHERE id = $1"
ORDER = f"SELECT {', '.join(Order.model_fields)} FROM orders WHERE id = $1"

tracer = trace.get_tracer(__name__)


@asynccontextmanager
async def read_pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """Up to ``pool_size`` connections, opened on first use (the service starts with the database
    down and says so on /health/ready), with the same statement and network timeouts as the engine."""

    async def decode_json(connection: asyncpg.Connection) -> None:
        await connection.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")

    async with asyncpg.create_pool(
        settings.plain_database_url,
        min_size=0,
        max_size=settings.pool_size,
        init=decode_json,
        server_settings={"statement_timeout": str(settings.statement_timeout_ms)},
        command_timeout=settings.statement_timeout_ms / 1000 + 1,
        timeout=settings.pool_timeout_seconds,  # to connect
    ) as pool:
        yield pool


class Reads:
    """``timeout`` bounds the whole read: the wait for a connection, the row, and giving the
    connection back. When it passes, asyncpg cancels the statement in PostgreSQL too."""

    def __init__(self, pool: asyncpg.Pool, timeout: float) -> None:
        self.pool, self.timeout = pool, timeout

    async def user(self, user_id: int) -> User:
        return User.model_validate(dict(await self._one(USER, "users", user_id)))

    async def order(self, order_id: int) -> Order:
        return Order.model_validate(dict(await self._one(ORDER, "orders", order_id)))

    async def _one(self, query: str, table: str, key: int) -> asyncpg.Record:
        # A span per statement, as the engine's instrumentation makes for the repository's.
        attributes = {"db.system": "postgresql", "db.statement": query}
        with tracer.start_as_current_span(f"SELECT {table}", kind=SpanKind.CLIENT, attributes=attributes):
            async with asyncio.timeout(self.timeout):
                connection = await self.pool.acquire()
                try:
                    row = await connection.fetchrow(query, key)
                except BaseException:
                    connection.terminate()  # cut off mid-statement: closed now, not reset and reused
                    raise
                finally:
                    await self.pool.release(connection)
        if row is None:
            raise ProblemError(404, f"{table.removesuffix('s')} {key} does not exist")
        return row
        # --8<-- [end:reads]
