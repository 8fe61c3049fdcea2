"""pg_data_service across a PostgreSQL failover: the primary dies, the standby is promoted.

On a primary and a streaming standby of the test's own (``patterns.testing.postgres_pair``), the
service is configured with both servers in one URL. Writes go on while the standby falls behind,
the primary crashes, the standby is promoted; then the rows on the new primary are counted
against the writes the service acknowledged (201). With synchronous replication none is lost; with
asynchronous replication the ones the standby had not received are, which is what the setting buys.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from patterns.testing.postgres_pair import PostgresPair, postgres_pair
from patterns.testing.pytest_fixtures import skip_or_fail
from patterns.testing.servers import in_process
from patterns.testing.service_resolution import Unavailable
from pg_data_service.app import create_app
from pg_data_service.migrate import upgrade
from pg_data_service.settings import Settings
from reference_system.waiting import eventually
from tests.examples.services.conftest import TOKENS, auth

RECOVERY_SECONDS = 10  # from the promotion to the first write the service acknowledges again
BEHIND = 3  # writes made while the standby receives nothing (synchronous: 2 s each, the client's limit)


@asynccontextmanager
async def pair_of(synchronous: bool) -> AsyncIterator[PostgresPair]:
    try:
        with postgres_pair(synchronous) as pair:
            yield pair
    except Unavailable as error:
        skip_or_fail(str(error))


def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        service_tokens={name: SecretStr(token) for name, token in TOKENS.items()},
        statement_timeout_ms=1000,
        pool_timeout_seconds=1,
    )


async def rows_on(url: str) -> set[int]:
    connection = await asyncpg.connect(url)
    try:
        return {row["id"] for row in await connection.fetch("SELECT id FROM users")}
    finally:
        await connection.close()


@pytest.mark.parametrize("synchronous", [True, False], ids=["synchronous", "asynchronous"])
async def test_after_a_failover_the_service_writes_again_and_loses_only_what_replication_allows(
    synchronous: bool,
) -> None:
    async with pair_of(synchronous) as pair:
        await asyncio.to_thread(upgrade, pair.url())
        acknowledged: list[int] = []
        statuses: list[int] = []

        async def write(pg: httpx.AsyncClient, n: int) -> int:
            answer = await pg.post("/users", json={"email": f"user{n}@example.org", "name": f"User {n}"})
            statuses.append(answer.status_code)
            if answer.status_code == 201:
                acknowledged.append(int(answer.json()["id"]))
            return answer.status_code

        # Whatever the order of the hosts, the writes reach the one that takes them
        async with in_process(create_app(settings(pair.url(standby_first=True))), headers=auth()) as pg:
            assert await write(pg, 0) == 201
        async with in_process(create_app(settings(pair.url())), headers=auth()) as pg:
            assert [await write(pg, n) for n in range(1, 10)] == [201] * 9
            pair.replication(paused=True)
            behind = [await write(pg, n) for n in range(10, 10 + BEHIND)]
            pair.crash_primary()
            orphaned = await write(pg, 99)  # no primary: only a standby answers, read-only
            pair.promote_standby()
            counter = iter(range(100, 10_000))

            async def writes_again() -> bool:
                return await write(pg, next(counter)) == 201

            await eventually(
                writes_again, "a write acknowledged by the promoted standby", timeout=RECOVERY_SECONDS
            )
            first = await pg.get(f"/users/{acknowledged[0]}")  # reads by id: their own pool, same URL
            assert first.status_code == 200, first.text

        stored = await rows_on(pair.standby.url())
        lost = [row for row in acknowledged if row not in stored]
        assert orphaned == 503
        assert set(statuses) <= {201, 503}, statuses  # never a 500, through the whole failover
        if synchronous:
            assert behind == [503] * BEHIND  # not acknowledged while the standby had them not
            assert lost == []
        else:
            assert behind == [201] * BEHIND  # acknowledged at once, as asynchronous replication does
            assert len(lost) == BEHIND, (lost, behind)
