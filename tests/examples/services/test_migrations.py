"""pg_data_service's Alembic migrations: they build the tables the code maps, and undo cleanly."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import asyncpg
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import create_async_engine

from pg_data_service.migrate import MIGRATIONS, alembic_config, draft
from pg_data_service.settings import asyncpg_url
from pg_data_service.tables import Base


async def on(database_url: str, look: Any) -> Any:
    """Run ``look(connection)`` on a synchronous view of a connection to ``database_url``."""
    engine = create_async_engine(asyncpg_url(database_url))
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(look)
    finally:
        await engine.dispose()


def differences(connection: Connection) -> list[Any]:
    """What autogenerate would write next: nothing, if the migrations match the mapped tables."""
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


def tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_the_migrations_build_exactly_the_mapped_tables_and_downgrade_to_nothing(
    postgres_url: str,
) -> None:
    config = alembic_config(postgres_url)
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await on(postgres_url, differences) == []
    await asyncio.to_thread(command.downgrade, config, "base")
    assert await on(postgres_url, tables) == {"alembic_version"}
    await asyncio.to_thread(command.upgrade, config, "head")  # and up again, as a rollback's redeploy does
    assert await on(postgres_url, tables) == {"alembic_version", *Base.metadata.tables}


async def test_the_revision_command_drafts_what_the_mapped_tables_add(
    postgres_url: str, tmp_path: Path
) -> None:
    """0006 drafted again: a database at 0005 and today's tables give the column, and nothing of
    what the page says autogenerate cannot see (the backfill, the CHECK constraint)."""
    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    (migrations / "versions" / "0006_order_cancellation.py").unlink()
    await asyncio.to_thread(command.upgrade, alembic_config(postgres_url, migrations), "head")
    drafted = await asyncio.to_thread(draft, postgres_url, "order cancellation", migrations)
    assert drafted.name == "0006_order_cancellation.py"
    text = drafted.read_text()
    assert "down_revision = '0005'" in text
    assert "op.add_column('orders', sa.Column('cancellation_reason', sa.String(length=32)" in text
    assert "op.drop_column('orders', 'cancellation_reason')" in text
    assert "UPDATE" not in text
    assert "CHECK" not in text.upper()


async def test_0006_gives_the_orders_cancelled_before_it_a_reason(postgres_url: str) -> None:
    config = alembic_config(postgres_url)
    await asyncio.to_thread(command.upgrade, config, "0005")
    connection = await asyncpg.connect(postgres_url)
    try:
        user = await connection.fetchval(
            "INSERT INTO users (email, name, version) VALUES ('old@example.org', 'Old', 1) RETURNING id"
        )
        insert = "INSERT INTO orders (user_id, items, total, status, version) VALUES ($1, '[]', 1, $2, 1)"
        for status in ("placed", "confirmed", "cancelled"):
            await connection.execute(insert, user, status)
        await asyncio.to_thread(command.upgrade, config, "head")
        rows = await connection.fetch("SELECT status, cancellation_reason FROM orders ORDER BY id")
        assert [tuple(row) for row in rows] == [
            ("placed", None),
            ("confirmed", None),
            ("cancelled", "support"),
        ]
        validated = "SELECT convalidated FROM pg_constraint WHERE conname = 'orders_cancelled_has_reason'"
        assert await connection.fetchval(validated) is True  # VALIDATE ran, after the commit
    finally:
        await connection.close()
