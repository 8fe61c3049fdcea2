"""pg_data_service's Alembic migrations: they build the tables the code maps, and undo cleanly."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import create_async_engine

from pg_data_service.migrate import alembic_config
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
