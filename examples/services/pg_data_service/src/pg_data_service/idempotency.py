"""Idempotency keys: a retried create returns the first answer instead of creating twice.

The key row is inserted in the same transaction as the resource. A concurrent retry
with the same key blocks on the primary key until the first transaction commits,
then reads its stored answer; if the first one rolled back, the retry proceeds as
the first. A key reused with a *different* request is a client bug: 422.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from pg_data_service.tables import IdempotencyRow
from shared.idempotency import request_digest
from shared.problems import ProblemError

# Core statements on the table: the hot write path needs no unit of work.
KEYS = IdempotencyRow.metadata.tables[IdempotencyRow.__tablename__]


# --8<-- [start:create-once]
async def create_once(
    session: AsyncSession,
    caller: str,
    key: str | None,
    request: BaseModel,
    create: Callable[[], Awaitable[BaseModel]],
) -> tuple[dict[str, Any], bool]:
    """Run ``create`` once per (caller, key); return (response body, whether it was replayed)."""
    if key is None:
        return (await create()).model_dump(mode="json"), False
    digest = request_digest(request)
    claimed = await session.scalar(
        insert(KEYS)
        .values(caller=caller, key=key, request_hash=digest)
        .on_conflict_do_nothing()
        .returning(KEYS.c.key)
    )
    if claimed is None:  # the key was used before: answer as the first time, or refuse
        first = await session.scalar(
            select(IdempotencyRow).where(IdempotencyRow.caller == caller, IdempotencyRow.key == key)
        )
        assert first is not None  # the claim failed, so the row exists and is committed
        assert first.response is not None
        if first.request_hash != digest:
            raise ProblemError(422, "this Idempotency-Key was used with a different request body")
        return first.response, True
    body = (await create()).model_dump(mode="json")
    await session.execute(
        update(KEYS).where(KEYS.c.caller == caller, KEYS.c.key == key).values(response=body)
    )
    return body, False
    # --8<-- [end:create-once]
