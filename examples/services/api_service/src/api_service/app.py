"""The api_service application: no database driver, only HTTP clients and a cache."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.asyncio import Redis

from api_service.cache import UserCache
from api_service.routes import router
from api_service.settings import Settings
from shared.clients.errors import DataServiceError, DependencyUnavailable, Unauthorized
from shared.clients.mongo import MongoDataClient
from shared.clients.pg import PgDataClient
from shared.health import health_router
from shared.problems import BodySizeLimit, Problem, install_problem_handlers, problem_response


# --8<-- [start:factory]
def create_app(settings: Settings) -> FastAPI:
    token, timeout = settings.service_token, settings.data_timeout_seconds
    pg = PgDataClient(str(settings.pg_data_url), token, timeout=timeout)
    mongo = MongoDataClient(str(settings.mongo_data_url), token, timeout=timeout)
    redis = Redis.from_url(str(settings.redis_url), socket_timeout=0.5, socket_connect_timeout=0.5)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.pg = await stack.enter_async_context(pg)
            app.state.mongo = await stack.enter_async_context(mongo)
            stack.push_async_callback(redis.aclose)
            app.state.users = UserCache(redis, pg, settings.cache_prefix, settings.user_cache_ttl_seconds)
            yield

    app = FastAPI(title="api_service", version="1.0.0", lifespan=lifespan)
    install_problem_handlers(app)
    app.add_exception_handler(DataServiceError, data_service_error)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.include_router(
        health_router(
            {
                "pg_data_service": lambda: pg.request("GET", "/health/live"),
                "mongo_data_service": lambda: mongo.request("GET", "/health/live"),
            }
        )
    )
    app.include_router(router)
    return app
    # --8<-- [end:factory]


# --8<-- [start:errors]
async def data_service_error(request: Request, exc: Exception) -> JSONResponse:
    """Pass a data service's answer on to our client, except what is ours to hide."""
    assert isinstance(exc, DataServiceError)
    path = request.url.path
    match exc:
        case DependencyUnavailable():
            detail = f"{exc.service} is unavailable; try again shortly"
            problem = Problem(status=503, title="Service Unavailable", detail=detail, instance=path)
            return problem_response(problem, {"Retry-After": "1"})
        case Unauthorized():
            # Our own credentials were refused: the client can do nothing about it.
            problem = Problem(
                status=502, title="Bad Gateway", detail=f"{exc.service} refused this service", instance=path
            )
            return problem_response(problem)
        case _:
            problem = exc.problem.model_copy(update={"instance": path})
            return problem_response(problem)
    # --8<-- [end:errors]
