"""Quarantined outbox rows: ``uv run python -m pg_data_service.outbox_quarantine list|replay``.

``list`` shows each row the relay quarantined, with its reason. ``replay --id N`` (repeatable) or
``replay --all`` hands rows back to the relay once the cause is fixed; the relay publishes each one
before the later events of its order, which waited behind it. Reads ``DATABASE_URL``.
Exit status: 0 done; 1 a row is not quarantined (nothing is replayed) or PostgreSQL is unusable;
2 a bad argument or setting.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import asyncpg
from pydantic import PostgresDsn
from pydantic_settings import BaseSettings
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from pg_data_service.settings import asyncpg_url
from pg_data_service.tables import OutboxRow
from shared.settings import load_settings

PROG = "outbox_quarantine"


class NotQuarantined(Exception):
    """Some of the rows asked for are not quarantined: no such row, sent, or replayed already."""


# --8<-- [start:quarantine]
async def quarantined(sessions: async_sessionmaker[AsyncSession]) -> list[OutboxRow]:
    """The quarantined rows, oldest first."""
    async with sessions() as session:
        query = select(OutboxRow).where(OutboxRow.quarantined_at.is_not(None)).order_by(OutboxRow.id)
        return list((await session.scalars(query)).all())


async def replay(sessions: async_sessionmaker[AsyncSession], ids: list[int] | None) -> list[int]:
    """Hand rows ``ids`` (None: all) back to the relay; all or nothing. Return the ids released."""
    release = (
        update(OutboxRow)
        .where(OutboxRow.quarantined_at.is_not(None))
        .values(quarantined_at=None, quarantine_reason=None)
        .returning(OutboxRow.id)
    )
    if ids is not None:
        release = release.where(OutboxRow.id.in_(ids))
    async with sessions() as session, session.begin():
        released = sorted((await session.scalars(release)).all())
        if ids is not None and (missing := sorted(set(ids) - set(released))):
            raise NotQuarantined(", ".join(map(str, missing)))  # rolls the transaction back
    return released
    # --8<-- [end:quarantine]


class DatabaseSettings(BaseSettings):
    database_url: PostgresDsn


async def run(database_url: str, args: argparse.Namespace) -> None:
    engine = create_async_engine(asyncpg_url(database_url))
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    try:
        if args.action == "list":
            rows = await quarantined(sessions)
            for row in rows:
                print(f"{row.id}\torder {row.order_id}\t{row.event_type}\t{row.quarantine_reason}")
            print(f"{len(rows)} quarantined outbox row(s)", file=sys.stderr)
        else:
            released = await replay(sessions, None if args.all else args.ids)
            print(f"released {len(released)} outbox row(s) to the relay: {released}", file=sys.stderr)
    finally:
        await engine.dispose()


def root(error: BaseException) -> BaseException:
    """The innermost cause: the driver's own words, without SQLAlchemy's wrapping."""
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m pg_data_service.{PROG}",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    action = parser.add_subparsers(dest="action", required=True)
    action.add_parser("list", help="show the quarantined rows and why")
    which = action.add_parser("replay", help="hand rows back to the relay").add_mutually_exclusive_group(
        required=True
    )
    which.add_argument("--id", type=int, action="append", dest="ids", metavar="N", help="this row")
    which.add_argument("--all", action="store_true", help="every quarantined row")
    args = parser.parse_args(argv)
    settings = load_settings(DatabaseSettings, PROG)
    try:
        asyncio.run(run(str(settings.database_url), args))
    except NotQuarantined as error:
        print(f"{PROG}: not quarantined, nothing replayed: outbox row(s) {error}", file=sys.stderr)
        return 1
    except (OSError, DBAPIError, asyncpg.PostgresError) as error:
        where = settings.database_url.hosts()[0]
        print(
            f"{PROG}: cannot use PostgreSQL at {where['host']}:{where['port']}: {root(error)}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
