"""The pg_data_service application: the only process that talks to PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from sqlalchemy import text
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from pg_data_service.outbox import run_relay
from pg_data_service.routes import build_router
from pg_data_service.settings import Settings
from shared.auth import CallerAuth
from shared.events.publisher import EventPublisher
from shared.health import health_router
from shared.observability.setup import observe_app
from shared.problems import BodySizeLimit, Problem, install_problem_handlers, problem_response

# Who may do what. A caller missing here gets 403 for everything.
PERMISSIONS = {
    "api": frozenset({"users:read", "users:write", "orders:read", "orders:write"}),
    "bot": frozenset({"users:read", "users:write", "orders:read"}),
    "worker": frozenset({"users:read", "orders:read", "orders:write"}),
}


def trace_statements(engine: AsyncEngine) -> None:
    """A span per SQL statement of ``engine``. The instrumentor is one per process, and so is the
    engine in production; re-instrumenting moves it to the newest engine (tests build many)."""
    instrumentor = SQLAlchemyInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    instrumentor.instrument(engine=engine.sync_engine)


# --8<-- [start:factory]
def create_app(settings: Settings) -> FastAPI:
    engine = create_async_engine(
        settings.async_database_url,
        pool_size=settings.pool_size,
        max_overflow=settings.pool_max_overflow,
        pool_timeout=settings.pool_timeout_seconds,
        pool_pre_ping=True,
        # A runaway query is cancelled by PostgreSQL itself, not left to hold a connection.
        connect_args={"server_settings": {"statement_timeout": str(settings.statement_timeout_ms)}},
    )
    trace_statements(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.sessions = sessions = async_sessionmaker(engine, expire_on_commit=False)
        async with AsyncExitStack() as stack:
            if settings.rabbitmq_url is not None:
                publisher = await stack.enter_async_context(EventPublisher(str(settings.rabbitmq_url)))
                stop = asyncio.Event()
                relay = asyncio.create_task(run_relay(sessions, publisher, stop))
                stack.push_async_callback(asyncio.wait_for, relay, 10)
                stack.callback(stop.set)
            yield
        await engine.dispose()

    async def database() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    app = FastAPI(title="pg_data_service", version="1.0.0", lifespan=lifespan)
    install_problem_handlers(app)
    observe_app(app)
    app.add_exception_handler(DBAPIError, database_unavailable)
    app.add_exception_handler(PoolTimeout, database_unavailable)
    app.add_exception_handler(OSError, database_unavailable)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.include_router(health_router({"postgresql": database}))
    app.include_router(build_router(CallerAuth(settings.service_tokens, PERMISSIONS)))
    return app
    # --8<-- [end:factory]


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """Database errors the repository did not expect: bad data is the caller's (409/422);
    down, slow or out of connections is 503, and the caller may retry."""
    path = request.url.path
    match exc:
        case IntegrityError():
            return problem_response(
                Problem(status=409, title="Conflict", detail="conflicts with stored data", instance=path)
            )
        case DataError():
            problem = Problem(
                status=422, title="Unprocessable Content", detail="a value is out of range", instance=path
            )
            return problem_response(problem)
    detail = f"PostgreSQL is unavailable ({type(exc).__name__})"
    problem = Problem(status=503, title="Service Unavailable", detail=detail, instance=path)
    return problem_response(problem, {"Retry-After": "1"})
