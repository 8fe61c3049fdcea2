"""No route of any HTTP service runs a dependency in a worker thread.

FastAPI runs a plain ``def`` dependency through its thread pool: a hand-off to a thread and
back on every request. On the data service's hot read that hand-off cost about 40 % of its
throughput (``benchmarks/hop.py``, "+ a def dependency"), so every dependency here is
``async def`` (none blocks: they read settings, headers and app state).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import SecretStr
from starlette.routing import BaseRoute

from api_service.app import create_app as create_api_app
from api_service.settings import Settings as ApiSettings
from mongo_data_service.app import create_app as create_mongo_app
from mongo_data_service.settings import Settings as MongoSettings
from pg_data_service.app import create_app as create_pg_app
from pg_data_service.settings import Settings as PgSettings
from tests.examples.services.conftest import TOKENS

NOWHERE = "127.0.0.1:9"  # the apps are only built, never started: nothing is reached


def threaded(call: Callable[..., Any]) -> bool:
    """What FastAPI would run in its thread pool: neither a coroutine nor an async generator."""
    target = call if inspect.isroutine(call) else type(call).__call__
    return not (inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target))


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every route, also inside included routers (FastAPI 0.165 keeps those as one entry each)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (included := getattr(route, "original_router", None)) is not None:
            yield from api_routes(included.routes)


def dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for dependency in dependant.dependencies:
        yield dependency
        yield from dependencies(dependency)


def threaded_dependencies(app: FastAPI) -> list[str]:
    return [
        f"{route.path}: {getattr(dependency.call, '__name__', dependency.call)}"
        for route in api_routes(app.routes)
        for dependency in dependencies(route.dependant)
        if dependency.call is not None and threaded(dependency.call)
    ]


def test_every_dependency_of_every_route_is_async() -> None:
    apps = {
        "pg_data_service": create_pg_app(
            PgSettings(database_url=f"postgresql://postgres@{NOWHERE}/none", service_tokens=TOKENS)
        ),
        "mongo_data_service": create_mongo_app(
            MongoSettings(mongodb_url=f"mongodb://{NOWHERE}/", mongodb_database="none", service_tokens=TOKENS)
        ),
        "api_service": create_api_app(
            ApiSettings(service_token=SecretStr(TOKENS["api"]), jwt_key=SecretStr("k" * 32))
        ),
    }
    found = {name: threaded_dependencies(app) for name, app in apps.items()}
    assert found == {name: [] for name in apps}
    routes = sum(1 for app in apps.values() for _ in api_routes(app.routes))
    assert routes > 20  # the walk saw the routes it checks


def test_the_check_sees_a_plain_def_dependency() -> None:
    """The counterfactual: a ``def`` dependency is found, an ``async def`` one is not."""

    def plain() -> int:
        return 1

    async def awaited() -> int:
        return 1

    assert threaded(plain)
    assert not threaded(awaited)
