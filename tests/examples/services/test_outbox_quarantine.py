"""The operator's command for quarantined outbox rows: what it prints, and its exit status."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from pg_data_service.outbox_quarantine import main
from pg_data_service.settings import Settings


async def quarantine(postgres_url: str, reason: str) -> int:
    """An outbox row of order 7 as the relay leaves it when it cannot publish it; its id."""
    event_id = uuid.uuid4()
    envelope = f'{{"id": "{event_id}", "type": "order.shipped", "version": 1, "data": {{"order_id": 7}}}}'
    connection = await asyncpg.connect(postgres_url)
    try:
        row_id: int = await connection.fetchval(
            "INSERT INTO outbox (event_id, event_type, envelope, quarantined_at, quarantine_reason)"
            " VALUES ($1, 'order.shipped', $2, now(), $3) RETURNING id",
            event_id,
            envelope,
            reason,
        )
        return row_id
    finally:
        await connection.close()


async def still_quarantined(postgres_url: str) -> list[int]:
    connection = await asyncpg.connect(postgres_url)
    try:
        rows = await connection.fetch("SELECT id FROM outbox WHERE quarantined_at IS NOT NULL ORDER BY id")
    finally:
        await connection.close()
    return [row["id"] for row in rows]


@pytest.fixture
def database(pg_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated database, named in DATABASE_URL as the operator's shell names it."""
    url = str(pg_settings.database_url)
    monkeypatch.setenv("DATABASE_URL", url)
    return url


async def test_list_shows_each_quarantined_row_with_its_reason(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    row = await quarantine(database, "refused by the broker: NO_ROUTE")
    assert await asyncio.to_thread(main, ["list"]) == 0
    out, err = capsys.readouterr()
    assert out == f"{row}\torder 7\torder.shipped\trefused by the broker: NO_ROUTE\n"
    assert err == "1 quarantined outbox row(s)\n"


async def test_replaying_a_row_that_is_not_quarantined_replays_nothing_and_exits_1(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    row = await quarantine(database, "refused by the broker: NO_ROUTE")
    assert await asyncio.to_thread(main, ["replay", "--id", str(row), "--id", "999"]) == 1
    assert "not quarantined, nothing replayed: outbox row(s) 999" in capsys.readouterr().err
    assert await still_quarantined(database) == [row]


async def test_an_unreachable_database_is_named_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/test")
    assert await asyncio.to_thread(main, ["list"]) == 1
    assert "outbox_quarantine: cannot use PostgreSQL at 127.0.0.1:1: " in capsys.readouterr().err


def test_replay_needs_to_be_told_which_rows(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["replay"])
    assert exit_.value.code == 2
    assert "one of the arguments --id --all is required" in capsys.readouterr().err
