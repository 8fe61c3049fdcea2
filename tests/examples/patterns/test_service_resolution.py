"""The order in which tests find their backing services, and what each helper isolates."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import ExitStack

import aio_pika
import asyncpg
import pytest
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from patterns.testing import service_resolution, services_up
from patterns.testing.isolation import mongo_database, postgres_database, rabbitmq_vhost, redis_namespace
from patterns.testing.pytest_fixtures import MongoTarget, RedisTarget, resolve_or_skip, skip_or_fail
from patterns.testing.service_resolution import (
    MONGODB,
    REDIS,
    Dependency,
    Found,
    Unavailable,
    describe,
    resolve,
)
from patterns.testing.urls import with_path
from reference_system.nx_27017 import NotInstalled, start_nx_27017
from reference_system.ports import free_port, port_is_open


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield int(server.getsockname()[1])


def test_env_url_wins_over_everything_else() -> None:
    with ExitStack() as stack:
        found = resolve(REDIS, stack, environ={"REDIS_URL": "redis://elsewhere:6390/2"})
    assert found == Found("redis", "redis://elsewhere:6390/2", "env")


def test_local_default_port_is_used_when_no_env_url(listening_port: int) -> None:
    dependency = Dependency("thing", "THING_URL", f"thing://127.0.0.1:{listening_port}/")
    with ExitStack() as stack:
        found = resolve(dependency, stack, environ={})
    assert found.source == "local"
    assert found.url == f"thing://127.0.0.1:{listening_port}/"


def test_nothing_found_raises_with_every_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_resolution, "docker_engine_reachable", lambda: False)
    port = free_port()
    dependency = Dependency("thing", "THING_URL", f"thing://127.0.0.1:{port}/", container=lambda _: "never")
    with ExitStack() as stack, pytest.raises(Unavailable) as error:
        resolve(dependency, stack, environ={})
    assert str(error.value) == (
        f"thing: $THING_URL is not set; nothing listens at thing://127.0.0.1:{port}/; "
        "no Docker engine for Testcontainers"
    )


def test_fallback_runs_when_no_env_port_or_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_resolution, "docker_engine_reachable", lambda: False)
    dependency = Dependency(
        "thing",
        "THING_URL",
        f"thing://127.0.0.1:{free_port()}/",
        fallback=lambda _: "thing://fallback/",
        fallback_name="fake",
    )
    with ExitStack() as stack:
        assert resolve(dependency, stack, environ={}) == Found("thing", "thing://fallback/", "fake")


def test_docker_engine_is_reported_unreachable_without_a_daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{free_port()}")
    assert service_resolution.docker_engine_reachable() is False


async def test_nx_27017_serves_the_real_pymongo_driver_and_stops_with_the_stack() -> None:
    with ExitStack() as stack:
        url = start_nx_27017(stack)
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url)
        try:
            await client.demo.activity.insert_one({"user_id": 1, "kind": "order.placed"})
            found = await client.demo.activity.find_one({"user_id": 1}, {"_id": 0})
        finally:
            await client.close()
        assert found == {"user_id": 1, "kind": "order.placed"}
    assert not port_is_open(url)


def test_mongodb_has_nx_27017_as_its_last_resort() -> None:
    assert MONGODB.fallback is service_resolution.nx_27017
    assert MONGODB.fallback_name == "nx-27017"


def test_with_path_replaces_database_or_vhost() -> None:
    assert with_path("postgresql://u:p@h:5432/test", "t1") == "postgresql://u:p@h:5432/t1"
    assert with_path("amqp://guest:guest@h:5672/", "v%2F1") == "amqp://guest:guest@h:5672/v%2F1"


async def test_each_test_gets_an_empty_postgres_database_that_is_dropped(postgres_server: Found) -> None:
    async with postgres_database(postgres_server.url) as url:
        connection = await asyncpg.connect(url)
        try:
            await connection.execute("CREATE TABLE users (id int)")
            database = await connection.fetchval("SELECT current_database()")
        finally:
            await connection.close()
    admin = await asyncpg.connect(postgres_server.url)
    try:
        assert await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", database) == 0
    finally:
        await admin.close()


async def test_redis_namespace_deletes_only_its_own_keys(redis_target: RedisTarget) -> None:
    client = Redis.from_url(redis_target.url)
    try:
        await client.set(redis_target.prefix + "outside", "kept")
        async with redis_namespace(redis_target.url) as prefix:
            await client.set(prefix + "user:1", "cached")
            assert await client.get(prefix + "user:1") == b"cached"
        assert await client.exists(prefix + "user:1") == 0
        assert await client.get(redis_target.prefix + "outside") == b"kept"
    finally:
        await client.aclose()


async def test_rabbitmq_vhost_is_usable_and_removed(rabbitmq_server: Found) -> None:
    async with rabbitmq_vhost(rabbitmq_server.url) as url:
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue("probe", auto_delete=True)
            await channel.default_exchange.publish(aio_pika.Message(b"ping"), routing_key="probe")
            message = await queue.get(timeout=5)
            assert message is not None
            await message.ack()
            assert message.body == b"ping"
    with pytest.raises(aio_pika.exceptions.AMQPError):  # the broker closes: no such vhost
        await aio_pika.connect(url)


async def test_mongo_database_is_dropped(mongo_target: MongoTarget) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_target.url)
    try:
        async with mongo_database(mongo_target.url) as name:
            await client[name].preferences.insert_one({"user_id": 7, "channels": ["telegram"]})
            assert name in await client.list_database_names()
        assert name not in await client.list_database_names()
    finally:
        await client.close()


def test_a_missing_service_skips_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_resolution, "docker_engine_reachable", lambda: False)
    gone = Dependency("thing", "THING_URL_UNSET", f"thing://127.0.0.1:{free_port()}/")
    with (
        ExitStack() as stack,
        pytest.raises(pytest.skip.Exception, match=r"thing: \$THING_URL_UNSET is not set"),
    ):
        resolve_or_skip(gone, stack, require=False)


def test_a_missing_service_fails_when_services_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_resolution, "docker_engine_reachable", lambda: False)
    gone = Dependency("thing", "THING_URL_UNSET", f"thing://127.0.0.1:{free_port()}/")
    with ExitStack() as stack, pytest.raises(pytest.fail.Exception, match="REQUIRE_SERVICES=1 but thing: "):
        resolve_or_skip(gone, stack, require=True)


def test_the_report_never_prints_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    _, line = describe(REDIS, environ={"REDIS_URL": "redis://:s3cret@cache.internal:6379/0"})
    assert line == "redis     env             redis://:[REDACTED]@cache.internal:6379/0"


def test_a_stand_in_that_cannot_start_is_a_reason_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(stack: ExitStack) -> str:
        raise NotInstalled("mongodb: nx-27017 is not installed (uv sync installs it)")

    monkeypatch.setattr(service_resolution, "start_nx_27017", not_installed)
    with ExitStack() as stack, pytest.raises(Unavailable, match="nx-27017 is not installed"):
        service_resolution.nx_27017(stack)


async def test_the_database_is_dropped_even_when_the_test_fails_with_connections_open(
    postgres_server: Found,
) -> None:
    leaked = None
    with pytest.raises(RuntimeError, match="test body failed"):
        async with postgres_database(postgres_server.url) as url:
            leaked = await asyncpg.connect(url)  # never closed by the "test"
            name = await leaked.fetchval("SELECT current_database()")
            raise RuntimeError("test body failed")
    assert leaked is not None
    admin = await asyncpg.connect(postgres_server.url)
    try:
        assert await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name) == 0
    finally:
        await admin.close()
        leaked.terminate()


async def test_keys_are_deleted_even_when_the_test_fails(redis_server: Found) -> None:
    client = Redis.from_url(redis_server.url)
    try:
        with pytest.raises(RuntimeError):
            async with redis_namespace(redis_server.url) as prefix:
                await client.set(prefix + "order:1", "x")
                raise RuntimeError("test body failed")
        assert await client.exists(prefix + "order:1") == 0
    finally:
        await client.aclose()


async def test_a_vhost_cannot_be_made_without_api_or_local_rabbitmqctl(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RABBITMQ_MANAGEMENT_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(Unavailable, match="cannot create a vhost"):
        async with rabbitmq_vhost("amqp://guest:guest@broker.invalid:5672/"):
            pass


async def test_a_management_url_that_is_not_http_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RABBITMQ_MANAGEMENT_URL", "file:///etc/passwd")
    with pytest.raises(Unavailable, match="must be http"):
        async with rabbitmq_vhost("amqp://guest:guest@127.0.0.1:5672/"):
            pass


def test_skip_or_fail_without_requirement_skips() -> None:
    with pytest.raises(pytest.skip.Exception, match="no broker"):
        skip_or_fail("no broker", require=False)


def test_describe_says_where_each_service_would_come_from_without_starting_anything(
    monkeypatch: pytest.MonkeyPatch, listening_port: int
) -> None:
    monkeypatch.setattr(service_resolution, "docker_engine_reachable", lambda: False)
    closed = f"thing://127.0.0.1:{free_port()}/"
    assert describe(REDIS, {"REDIS_URL": "redis://:pw@cache:6379/0"}) == (
        True,
        "redis     env             redis://:[REDACTED]@cache:6379/0",
    )
    assert describe(Dependency("thing", "T", f"thing://127.0.0.1:{listening_port}/"), {})[1].startswith(
        "thing     local"
    )
    assert describe(
        Dependency("thing", "T", closed, fallback=start_nx_27017, fallback_name="nx-27017"), {}
    ) == (
        True,
        "thing     nx-27017        (will be started on a free port)",
    )
    assert describe(Dependency("thing", "T", closed, container=lambda _: "x"), {}) == (
        False,
        f"thing     MISSING         set $T or start it on {closed}",
    )


async def test_the_postgres_url_fixture_gives_an_empty_database_of_its_own(postgres_url: str) -> None:
    connection = await asyncpg.connect(postgres_url)
    try:
        tables = await connection.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        database = await connection.fetchval("SELECT current_database()")
    finally:
        await connection.close()
    assert tables == 0
    assert database.startswith("test_")


async def test_the_rabbitmq_url_fixture_gives_a_vhost_of_its_own(rabbitmq_url: str) -> None:
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        assert connection.url.path.startswith("/test-")


def test_main_prints_every_service_and_exits_0_when_all_are_found(capsys: pytest.CaptureFixture[str]) -> None:
    assert services_up.main() == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == ["postgres", "redis", "rabbitmq", "mongodb"]
