"""The pg_data_service application: the only process that talks to PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from sqlalchemy import text
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from pg_data_service.outbox import run_relay, watch_outbox
from pg_data_service.reads import read_pool
from pg_data_service.retention import run_retention
from pg_data_service.routes import router
from pg_data_service.settings import Settings
from shared.auth import CallerAuth
from shared.checks import Check
from shared.events.publisher import EventPublisher
from shared.health import health_router
from shared.lifecycle import Job, Lifecycle
from shared.observability.http_server import observe_app
from shared.problems import BodySizeLimit, Problem, install_problem_handlers, problem_response, unavailable

# Who may do what. A caller missing here gets 403 for everything.
PERMISSIONS = {
    "api": frozenset({"users:read", "users:write", "orders:read", "orders:write", "links:create"}),
    "bot": frozenset({"users:read", "users:write", "orders:read", "links:redeem"}),
    "worker": frozenset({"users:read", "orders:read", "orders:write"}),
}

log = logging.getLogger(__name__)


# --8<-- [start:factory]
def create_app(settings: Settings, life: Lifecycle | None = None) -> FastAPI:
    """The app and what it needs at hand; what it opens (pool, publisher, relay) the lifespan opens."""
    app = FastAPI(title="pg_data_service", version="1.0.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.life = life = life or Lifecycle()
    app.state.auth = CallerAuth(settings.service_tokens, PERMISSIONS)
    app.state.checks = {"process": life.check}  # the lifespan adds the database
    install_problem_handlers(app)
    observe_app(app, settings.metrics_token)
    app.add_exception_handler(DBAPIError, database_unavailable)
    app.add_exception_handler(PoolTimeout, database_unavailable)
    app.add_exception_handler(OSError, database_unavailable)  # TimeoutError included
    app.add_exception_handler(asyncpg.PostgresError, database_unavailable)  # the read pool's
    app.add_exception_handler(asyncpg.InterfaceError, database_unavailable)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.include_router(health_router(app.state.checks))
    app.include_router(router)
    return app


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open in order, close in reverse, also when a step fails half-way; background jobs are supervised."""
    settings: Settings = app.state.settings
    life: Lifecycle = app.state.life
    async with AsyncExitStack() as stack:
        engine = create_async_engine(
            settings.async_database_url,
            pool_size=settings.pool_size,
            max_overflow=settings.pool_max_overflow,
            pool_timeout=settings.pool_timeout_seconds,
            pool_pre_ping=True,
            connect_args={
                # A runaway query is cancelled by PostgreSQL itself, not left to hold a connection;
                "server_settings": {"statement_timeout": str(settings.statement_timeout_ms)},
                # a network that hangs is given up on by the driver, a second later.
                "command_timeout": settings.statement_timeout_ms / 1000 + 1,
                "timeout": settings.pool_timeout_seconds,  # to connect
            },
        )
        stack.push_async_callback(engine.dispose)
        trace_statements(engine)
        app.state.sessions = sessions = async_sessionmaker(engine, expire_on_commit=False)
        app.state.checks["postgresql"] = ping(engine)
        app.state.read_pool = await stack.enter_async_context(read_pool(settings))  # reads by id
        jobs: dict[str, Job] = {
            "outbox_gauges": partial(watch_outbox, sessions),
            "retention": partial(run_retention, sessions, settings),
        }
        if settings.rabbitmq_url is not None:
            publisher = await stack.enter_async_context(EventPublisher(str(settings.rabbitmq_url)))
            jobs["outbox_relay"] = partial(run_relay, sessions, publisher)
        await stack.enter_async_context(life.background(**jobs))
        yield
        # --8<-- [end:factory]


def ping(engine: AsyncEngine) -> Check:
    async def postgresql() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    return postgresql


def trace_statements(engine: AsyncEngine) -> None:
    """A span per SQL statement of ``engine``. The instrumentor is one per process, and so is the
    engine in production; re-instrumenting moves it to the newest engine (tests build many)."""
    instrumentor = SQLAlchemyInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    instrumentor.instrument(engine=engine.sync_engine)


def sqlstate(exc: Exception) -> str:
    """PostgreSQL's SQLSTATE for ``exc``, raised by asyncpg or wrapped by SQLAlchemy ("" if none)."""
    error = exc.orig if isinstance(exc, DBAPIError) else exc
    return str(getattr(error, "sqlstate", "") or "")


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """Database errors the repository did not expect: bad data is the caller's (409/422);
    down, slow or out of connections is 503, and the caller may retry."""
    path = request.url.path
    # By SQLSTATE class, not exception class: SQLAlchemy's asyncpg dialect wraps some data errors
    # (a NUL character in text: 22021) as a bare DBAPIError.
    state = sqlstate(exc)
    if isinstance(exc, IntegrityError) or state.startswith("23"):
        return problem_response(Problem.of(409, "conflicts with stored data", instance=path))
    if isinstance(exc, DataError | asyncpg.DataError) or state.startswith("22"):
        detail = "a value PostgreSQL cannot store: out of range, or text with a NUL character"
        return problem_response(Problem.of(422, detail, instance=path))
    # What failed goes to the log; the answer names no exception class (it would tell anyone what runs here).
    log.warning("database unavailable for %s %s: %s: %s", request.method, path, type(exc).__name__, exc)
    return unavailable("PostgreSQL is unavailable", path)
