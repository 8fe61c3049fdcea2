"""The trial's minimal service: FastAPI + an asyncpg pool, one single-row read, nothing else.

Used by ``http_clients.py`` to separate what the *client* costs from what a full data
service (auth, validation, ORM, problem details) costs.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=4, max_size=16)
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/users/{user_id}")
async def get_user(user_id: int) -> dict[str, Any]:
    async with app.state.pool.acquire() as connection:
        row = await connection.fetchrow("SELECT id, email, name, version FROM users WHERE id = $1", user_id)
    return dict(row) if row else {}
