"""Retention: delete what the service no longer needs, so the tables it scans stay small.

Sent outbox rows older than ``SENT_OUTBOX_RETENTION`` and idempotency keys older than
``IDEMPOTENCY_KEY_RETENTION`` go; unsent and quarantined outbox rows stay however old they are.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from opentelemetry.instrumentation.utils import suppress_instrumentation
from sqlalchemy import Delete, delete, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pg_data_service.settings import Settings
from pg_data_service.tables import IdempotencyRow, OutboxRow, TelegramLinkCodeRow
from shared.lifecycle import pause

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deleted:
    sent_outbox_rows: int
    idempotency_keys: int
    link_codes: int = 0  # expired Telegram link codes: never redeemed, never usable again


# --8<-- [start:retention]
async def delete_expired(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, chunk: int = 1000
) -> Deleted:
    """Delete what is past its retention; unsent outbox rows are never past it."""
    now = datetime.now(UTC)
    sent = select(OutboxRow.id).where(OutboxRow.published_at < now - settings.sent_outbox_retention)
    keys = select(IdempotencyRow.caller, IdempotencyRow.key).where(
        IdempotencyRow.created_at < now - settings.idempotency_key_retention
    )
    key = tuple_(IdempotencyRow.caller, IdempotencyRow.key)
    codes = select(TelegramLinkCodeRow.code_hash).where(TelegramLinkCodeRow.expires_at < now)
    return Deleted(
        await in_chunks(sessions, delete(OutboxRow).where(OutboxRow.id.in_(sent.limit(chunk))), chunk),
        await in_chunks(sessions, delete(IdempotencyRow).where(key.in_(keys.limit(chunk))), chunk),
        await in_chunks(
            sessions,
            delete(TelegramLinkCodeRow).where(TelegramLinkCodeRow.code_hash.in_(codes.limit(chunk))),
            chunk,
        ),
    )


async def in_chunks(sessions: async_sessionmaker[AsyncSession], statement: Delete, chunk: int) -> int:
    """Run ``statement`` (which deletes up to ``chunk`` rows) until less is left; a transaction per
    chunk, so however much has piled up no statement runs into the statement timeout."""
    deleted = 0
    while True:
        async with sessions() as session, session.begin():
            with suppress_instrumentation():  # housekeeping is not a request: no trace per run
                count = len((await session.execute(statement.returning(literal(1)))).all())
        deleted += count
        if count < chunk:
            return deleted
        # --8<-- [end:retention]


async def run_retention(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, stop: asyncio.Event
) -> None:
    """Delete expired rows now and every ``RETENTION_INTERVAL`` until ``stop``."""
    while not stop.is_set():
        try:
            deleted = await delete_expired(sessions, settings)
            log.info(
                "retention: deleted %d sent outbox rows, %d idempotency keys, %d expired link codes",
                deleted.sent_outbox_rows,
                deleted.idempotency_keys,
                deleted.link_codes,
            )
        except Exception:  # the database blipped: try again next time
            log.exception("retention failed")
        await pause(stop, settings.retention_interval.total_seconds())
