"""The api_service application: no database driver, only HTTP clients and a cache."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.asyncio import Redis

from api_service.cache import UserCache
from api_service.routes import router
from api_service.settings import Settings
from shared.clients.both import data_clients, liveness_of
from shared.clients.errors import DataServiceError, DependencyUnavailable, Unauthorized
from shared.health import health_router
from shared.observability.setup import observe_app
from shared.problems import BodySizeLimit, Problem, install_problem_handlers, problem_response


# --8<-- [start:factory]
def create_app(settings: Settings) -> FastAPI:
    redis = Redis.from_url(str(settings.redis_url), socket_timeout=0.5, socket_connect_timeout=0.5)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with data_clients(settings) as (pg, mongo):
            app.state.pg, app.state.mongo = pg, mongo
            app.state.users = UserCache(redis, pg, settings.cache_prefix, settings.user_cache_ttl_seconds)
            app.state.checks.update(liveness_of(pg, mongo))
            yield
            await redis.aclose()

    app = FastAPI(title="api_service", version="1.0.0", lifespan=lifespan)
    install_problem_handlers(app)
    observe_app(app)
    app.add_exception_handler(DataServiceError, data_service_error)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.state.checks = {}  # filled in by the lifespan, once the clients are open
    app.include_router(health_router(app.state.checks))
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
