"""Pytest fixtures that give every test real PostgreSQL, Redis, RabbitMQ and MongoDB.

Each dependency is resolved once per session (env URL → local port → Testcontainers
→ nx-27017 for MongoDB → skip); each test then gets its own database, key
prefix, vhost or Mongo database, removed when the test ends. ``REQUIRE_SERVICES=1``
turns every skip for a missing service into a failure, which is how CI runs.

Load it from a ``conftest.py``: ``pytest_plugins = ["patterns.testing.pytest_fixtures"]``.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from patterns.testing.isolation import mongo_database, postgres_database, rabbitmq_vhost, redis_namespace
from patterns.testing.service_resolution import (
    MONGODB,
    POSTGRES,
    RABBITMQ,
    REDIS,
    Dependency,
    Found,
    Unavailable,
    resolve,
)
from shared.observability.logs import redact

if TYPE_CHECKING:
    from patterns.testing.spans import SpanRecorder

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES", "") not in {"", "0", "false", "no"}
_found: dict[str, Found] = {}


# --8<-- [start:require]
def skip_or_fail(reason: str, require: bool = REQUIRE_SERVICES) -> NoReturn:
    """Skip the test for a missing service, or fail it when services are required."""
    if require:
        pytest.fail(f"REQUIRE_SERVICES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def resolve_or_skip(dependency: Dependency, stack: ExitStack, require: bool = REQUIRE_SERVICES) -> Found:
    try:
        found = resolve(dependency, stack)
    except Unavailable as error:
        skip_or_fail(str(error), require)
    _found[dependency.name] = found
    return found
    # --8<-- [end:require]


@pytest.fixture(scope="session")
def services() -> Iterator[ExitStack]:
    """Owns every container or server process the session starts."""
    with ExitStack() as stack:
        yield stack


@pytest.fixture(scope="session")
def postgres_server(services: ExitStack) -> Found:
    return resolve_or_skip(POSTGRES, services)


@pytest.fixture(scope="session")
def redis_server(services: ExitStack) -> Found:
    return resolve_or_skip(REDIS, services)


@pytest.fixture(scope="session")
def rabbitmq_server(services: ExitStack) -> Found:
    return resolve_or_skip(RABBITMQ, services)


@pytest.fixture(scope="session")
def mongodb_server(services: ExitStack) -> Found:
    return resolve_or_skip(MONGODB, services)


# --8<-- [start:postgres]
@pytest.fixture
async def postgres_url(postgres_server: Found) -> AsyncIterator[str]:
    """A URL of an empty PostgreSQL database that only this test uses."""
    async with postgres_database(postgres_server.url) as url:
        yield url
        # --8<-- [end:postgres]


@dataclass(frozen=True)
class RedisTarget:
    url: str
    prefix: str


@pytest.fixture
async def redis_target(redis_server: Found) -> AsyncIterator[RedisTarget]:
    """The Redis URL and a key prefix that only this test uses."""
    async with redis_namespace(redis_server.url) as prefix:
        yield RedisTarget(redis_server.url, prefix)


@pytest.fixture
async def rabbitmq_url(rabbitmq_server: Found) -> AsyncIterator[str]:
    """An AMQP URL of a virtual host that only this test uses."""
    async with AsyncExitStack() as stack:
        try:
            url = await stack.enter_async_context(rabbitmq_vhost(rabbitmq_server.url))
        except Unavailable as error:
            skip_or_fail(str(error))
        yield url


@dataclass(frozen=True)
class MongoTarget:
    url: str
    database: str


@pytest.fixture
async def mongo_target(mongodb_server: Found) -> AsyncIterator[MongoTarget]:
    """The MongoDB URL and a database name that only this test uses."""
    async with mongo_database(mongodb_server.url) as name:
        yield MongoTarget(mongodb_server.url, name)


@pytest.fixture
def spans() -> Iterator[SpanRecorder]:
    """The spans this test finishes, recorded in memory (the process's one tracer provider)."""
    from patterns.testing.spans import span_recorder  # OpenTelemetry and FastAPI: only where asked for

    recorder = span_recorder()
    recorder.clear()
    yield recorder
    recorder.clear()


@pytest.fixture
def ecs_log_lines() -> Iterator[io.StringIO]:
    """Every log record of this test as the services write it (ECS JSON lines), into a buffer;
    the root logger's handlers (pytest's capture among them) are given back afterwards."""
    from shared.observability.logs import configure_logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging("test_service", "1.2.3", "test", "info", stream=stream)
    yield stream
    root.handlers, root.level = handlers, level


def pytest_report_header(config: pytest.Config) -> str:
    return f"REQUIRE_SERVICES={'1' if REQUIRE_SERVICES else '0'}"


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On a pytest-xdist worker, hand what it found to the controller, which writes the report."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["backing_services"] = [(f.name, f.url, f.source) for f in _found.values()]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    for name, url, source in getattr(node, "workeroutput", {}).get("backing_services", []):
        _found[name] = Found(name, url, source)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say what each service-backed test really ran against."""
    if _found:
        terminalreporter.section("backing services")
        for found in sorted(_found.values(), key=lambda f: f.name):
            terminalreporter.write_line(f"{found.name:9} {found.source:15} {redact(found.url)}")
