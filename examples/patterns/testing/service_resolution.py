"""Give each test a real backing service, found in a fixed order, or a clear reason why not.

The order is the same for every dependency: an env URL, then the service on its
default local port, then a Testcontainers container where a Docker engine is
reachable; MongoDB has one more step, the ``nx-27017`` wire-protocol server
(``reference_system.nx_27017``, which the local system starts too).
When nothing is found the caller gets :class:`Unavailable` with the reason,
which a pytest fixture turns into a skip (or a failure under ``REQUIRE_SERVICES=1``).

```py
from contextlib import ExitStack

from patterns.testing.service_resolution import REDIS, resolve

with ExitStack() as stack:
    found = resolve(REDIS, stack, environ={"REDIS_URL": "redis://cache.internal:6379/0"})
    print(found.source, found.url)
    #> env redis://cache.internal:6379/0
```
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass

from reference_system.nx_27017 import NotInstalled, start_nx_27017
from reference_system.ports import port_is_open
from reference_system.waiting import Aborted
from shared.observability.logs import redact


class Unavailable(Exception):
    """No instance of a dependency could be found; ``str(error)`` says why."""


@dataclass(frozen=True)
class Found:
    """Where a dependency lives and how it was found (printed in the test report)."""

    name: str
    url: str
    source: str


# --8<-- [start:dependencies]
@dataclass(frozen=True)
class Dependency:
    """One kind of backing service and the ways to find it."""

    name: str
    env_var: str
    local_url: str
    container: Callable[[ExitStack], str] | None = None
    fallback: Callable[[ExitStack], str] | None = None
    fallback_name: str = ""


def _postgres_container(stack: ExitStack) -> str:  # pragma: no cover (needs a Docker engine)
    from testcontainers.postgres import PostgresContainer

    pg = stack.enter_context(PostgresContainer("postgres:17-alpine", driver=None))
    return str(pg.get_connection_url())


def _redis_container(stack: ExitStack) -> str:  # pragma: no cover (needs a Docker engine)
    from testcontainers.redis import RedisContainer

    redis = stack.enter_context(RedisContainer("redis:7-alpine"))
    return f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0"


def _rabbitmq_container(stack: ExitStack) -> str:  # pragma: no cover (needs a Docker engine)
    from testcontainers.rabbitmq import RabbitMqContainer

    rabbit = stack.enter_context(RabbitMqContainer("rabbitmq:4.1-management-alpine"))
    host, port = rabbit.get_container_host_ip(), rabbit.get_exposed_port(5672)
    os.environ.setdefault("RABBITMQ_MANAGEMENT_URL", f"http://{host}:{rabbit.get_exposed_port(15672)}")
    return f"amqp://guest:guest@{host}:{port}/"


def _mongodb_container(stack: ExitStack) -> str:  # pragma: no cover (needs a Docker engine)
    from testcontainers.mongodb import MongoDbContainer

    mongo = stack.enter_context(MongoDbContainer("mongo:8.0"))
    return str(mongo.get_connection_url())


# --8<-- [end:dependencies]


# --8<-- [start:resolve]
def resolve(dependency: Dependency, stack: ExitStack, environ: Mapping[str, str] = os.environ) -> Found:
    """Find ``dependency``: env URL → local default port → Testcontainers → its fallback."""
    if url := environ.get(dependency.env_var):
        return Found(dependency.name, url, "env")
    if port_is_open(dependency.local_url):
        return Found(dependency.name, dependency.local_url, "local")
    tried = [f"${dependency.env_var} is not set", f"nothing listens at {dependency.local_url}"]
    if dependency.container is not None:
        if docker_engine_reachable():
            return Found(dependency.name, dependency.container(stack), "testcontainers")
        tried.append("no Docker engine for Testcontainers")
    if dependency.fallback is not None:
        return Found(dependency.name, dependency.fallback(stack), dependency.fallback_name)
    raise Unavailable(f"{dependency.name}: " + "; ".join(tried))
    # --8<-- [end:resolve]


def docker_engine_reachable() -> bool:
    """True when a Docker engine answers a ping (the client alone is not enough)."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no socket, no permission, no engine: all mean "no"
        return False


def nx_27017(stack: ExitStack) -> str:
    """The nx-27017 stand-in (``reference_system.nx_27017``), as a last resort for MongoDB."""
    try:
        return start_nx_27017(stack)
    except (NotInstalled, Aborted, TimeoutError) as error:
        raise Unavailable(str(error)) from error


# --8<-- [start:catalogue]
POSTGRES = Dependency(
    "postgres", "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test", _postgres_container
)
REDIS = Dependency("redis", "REDIS_URL", "redis://127.0.0.1:6379/0", _redis_container)
RABBITMQ = Dependency("rabbitmq", "RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/", _rabbitmq_container)
MONGODB = Dependency(
    "mongodb",
    "MONGODB_URL",
    "mongodb://127.0.0.1:27017/",
    _mongodb_container,
    fallback=nx_27017,
    fallback_name="nx-27017",
)
# --8<-- [end:catalogue]


# --8<-- [start:report]
def describe(dependency: Dependency, environ: Mapping[str, str] = os.environ) -> tuple[bool, str]:
    """Say where tests would find ``dependency``, starting nothing: (found, one line)."""
    if url := environ.get(dependency.env_var):
        return True, f"{dependency.name:9} env             {redact(url)}"
    if port_is_open(dependency.local_url):
        return True, f"{dependency.name:9} local           {redact(dependency.local_url)}"
    if dependency.container is not None and docker_engine_reachable():
        return True, f"{dependency.name:9} testcontainers  (a container will be started)"
    if dependency.fallback is not None:
        return True, f"{dependency.name:9} {dependency.fallback_name:15} (will be started on a free port)"
    hint = f"set ${dependency.env_var} or start it on {dependency.local_url}"
    return False, f"{dependency.name:9} MISSING         {hint}"
    # --8<-- [end:report]
