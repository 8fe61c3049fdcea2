"""pg_data_service deletes sent outbox rows and idempotency keys past their retention, and nothing else."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from patterns.testing.servers import in_process
from pg_data_service.app import create_app
from pg_data_service.retention import Deleted, delete_expired
from pg_data_service.settings import Settings
from pg_data_service.tables import IdempotencyRow, OutboxRow, TelegramLinkCodeRow, UserRow
from reference_system.waiting import eventually

NOW = datetime.now(UTC)
OLD, YOUNG = NOW - timedelta(days=8), NOW - timedelta(days=6)  # the retention is 7 days by default


@pytest.fixture
async def sessions(pg_settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(pg_settings.async_database_url)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


def outbox_row(name: str, created_at: datetime, published_at: datetime | None = None) -> OutboxRow:
    envelope = {"id": str(uuid.uuid4()), "type": name, "version": 1, "data": {}}
    return OutboxRow(
        event_id=envelope["id"],
        event_type=name,
        envelope=envelope,
        created_at=created_at,
        published_at=published_at,
        quarantined_at=OLD if name == "quarantined" else None,
    )


def key(name: str, created_at: datetime) -> IdempotencyRow:
    return IdempotencyRow(caller="api", key=name, request_hash="0" * 64, response={}, created_at=created_at)


async def remaining(sessions: async_sessionmaker[AsyncSession]) -> tuple[set[str], set[str]]:
    async with sessions() as session:
        return set(await session.scalars(select(OutboxRow.event_type))), set(
            await session.scalars(select(IdempotencyRow.key))
        )


async def test_rows_past_their_retention_are_deleted_and_unsent_or_young_ones_kept(
    pg_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as session, session.begin():
        session.add_all(outbox_row(f"sent-long-ago-{n}", OLD, published_at=OLD) for n in range(5))
        session.add_all(
            [
                outbox_row("sent-lately", OLD, published_at=YOUNG),
                outbox_row("never-sent", OLD - timedelta(days=30)),
                outbox_row("quarantined", OLD - timedelta(days=30)),
            ]
        )
        session.add_all([key("old-1", OLD), key("old-2", OLD), key("old-3", OLD), key("young", YOUNG)])
    # chunk=2: more has piled up than one chunk deletes, as after a long time without retention
    assert await delete_expired(sessions, pg_settings, chunk=2) == Deleted(5, 3)
    assert await remaining(sessions) == ({"sent-lately", "never-sent", "quarantined"}, {"young"})


async def test_the_service_runs_retention_in_the_background(
    pg_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as session, session.begin():
        session.add_all([outbox_row("sent-long-ago", OLD, published_at=OLD), key("old", OLD)])
    async with in_process(create_app(pg_settings)):

        async def deleted() -> bool:
            return await remaining(sessions) == (set(), set())

        await eventually(deleted, "the expired rows are deleted", timeout=5)


async def test_expired_link_codes_are_deleted_and_live_ones_kept(
    pg_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as session, session.begin():
        user = UserRow(email="codes@example.org", name="Codes")
        session.add(user)
        await session.flush()
        now = datetime.now(UTC)
        session.add_all(
            TelegramLinkCodeRow(code_hash=f"{n:064d}", user_id=user.id, expires_at=now - timedelta(minutes=n))
            for n in (1, 2, 3)
        )
        session.add(
            TelegramLinkCodeRow(code_hash="f" * 64, user_id=user.id, expires_at=now + timedelta(minutes=9))
        )
    assert (await delete_expired(sessions, pg_settings, chunk=2)).link_codes == 3
    async with sessions() as session:
        assert list(await session.scalars(select(TelegramLinkCodeRow.code_hash))) == ["f" * 64]
