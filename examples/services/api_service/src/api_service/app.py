"""The api_service application: no database driver, only HTTP clients and a cache."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.asyncio import Redis

from api_service.auth import EndUsers
from api_service.cache import UserCache
from api_service.rate_limit import RateLimits
from api_service.routes import router
from api_service.settings import Settings
from shared.clients.both import data_clients, needed
from shared.clients.errors import DataServiceError, DependencyUnavailable, Unauthorized
from shared.health import health_router
from shared.lifecycle import Lifecycle
from shared.observability.http_server import observe_app
from shared.problems import BodySizeLimit, Problem, install_problem_handlers, problem_response, unavailable


# --8<-- [start:factory]
def create_app(settings: Settings, life: Lifecycle | None = None) -> FastAPI:
    """The app and what it needs at hand; the clients and the cache the lifespan opens."""
    ui = settings.openapi_ui
    app = FastAPI(
        title="api_service",
        version="1.0.0",
        lifespan=lifespan,
        docs_url="/docs" if ui else None,
        redoc_url="/redoc" if ui else None,
        openapi_url="/openapi.json" if ui else None,
    )
    app.state.settings = settings
    app.state.life = life = life or Lifecycle()
    app.state.end_users = EndUsers(settings)
    app.state.checks = {"process": life.check}  # the lifespan adds the data services
    install_problem_handlers(app)
    observe_app(app, settings.metrics_token)
    app.add_exception_handler(DataServiceError, data_service_error)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.include_router(health_router(app.state.checks))
    app.include_router(router)
    return app


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open in order, close in reverse, also when a step fails half-way."""
    settings: Settings = app.state.settings
    async with AsyncExitStack() as stack:
        redis = Redis.from_url(str(settings.redis_url), socket_timeout=0.5, socket_connect_timeout=0.5)
        stack.push_async_callback(redis.aclose)
        app.state.pg, app.state.mongo = await stack.enter_async_context(data_clients(settings))
        pg = app.state.pg
        app.state.users = UserCache(
            redis,
            pg,
            settings.cache_prefix,
            settings.user_cache_ttl_seconds,
            breaker_seconds=settings.user_cache_breaker_seconds,
        )
        app.state.rate_limits = RateLimits(str(settings.redis_url), settings.cache_prefix)
        app.state.checks.update(needed(pg))  # activity (MongoDB) is optional: 503 on its route only
        yield
        # --8<-- [end:factory]


# --8<-- [start:errors]
async def data_service_error(request: Request, exc: Exception) -> JSONResponse:
    """Pass a data service's answer on to our client, except what is ours to hide."""
    assert isinstance(exc, DataServiceError)
    path = request.url.path
    match exc:
        case DependencyUnavailable():
            return unavailable(f"{exc.service} is unavailable; try again shortly", path)
        case Unauthorized():
            # Our own credentials were refused: the client can do nothing about it.
            return problem_response(Problem.of(502, f"{exc.service} refused this service", instance=path))
        case _:
            problem = exc.problem.model_copy(update={"instance": path})
            return problem_response(problem)
    # --8<-- [end:errors]
