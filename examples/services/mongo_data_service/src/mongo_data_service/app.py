"""The mongo_data_service application: the only process that talks to MongoDB."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
from pymongo import AsyncMongoClient
from pymongo.errors import ConnectionFailure, ExecutionTimeout, PyMongoError

from mongo_data_service.repository import Document, create_indexes
from mongo_data_service.routes import router
from mongo_data_service.settings import Settings
from shared.auth import CallerAuth
from shared.health import health_router
from shared.lifecycle import Lifecycle
from shared.observability.http_server import observe_app
from shared.problems import BodySizeLimit, install_problem_handlers, unavailable

PERMISSIONS = {
    "api": frozenset({"activity:read", "activity:write"}),
    "bot": frozenset({"activity:read"}),
    "worker": frozenset({"activity:read", "activity:write"}),
}


# --8<-- [start:factory]
def create_app(settings: Settings, life: Lifecycle | None = None) -> FastAPI:
    """The app and what it needs at hand; the MongoDB client the lifespan opens."""
    app = FastAPI(title="mongo_data_service", version="1.0.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.life = life = life or Lifecycle()
    app.state.auth = CallerAuth(settings.service_tokens, PERMISSIONS)
    app.state.checks = {"process": life.check}  # the lifespan adds the database
    install_problem_handlers(app)
    observe_app(app, settings.metrics_token)
    # Unreachable, or out of time: a server-side time limit, or too little of the caller's budget left to
    # send the next operation at all (PyMongo's ExecutionTimeout: an OperationFailure, no ConnectionFailure).
    app.add_exception_handler(ConnectionFailure, mongodb_unavailable)
    app.add_exception_handler(ExecutionTimeout, mongodb_unavailable)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.include_router(health_router(app.state.checks))
    app.include_router(router)
    return app


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open in order, close in reverse, also when a step fails half-way."""
    settings: Settings = app.state.settings
    async with AsyncExitStack() as stack:
        if not PymongoInstrumentor().is_instrumented_by_opentelemetry:
            PymongoInstrumentor().instrument()  # a global command listener: before the client exists
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            str(settings.mongodb_url),
            serverSelectionTimeoutMS=settings.server_selection_timeout_ms,
            timeoutMS=settings.operation_timeout_ms,  # every operation, retries included: a hang ends
            tz_aware=True,
        )
        stack.push_async_callback(client.close)
        app.state.db = db = client[settings.mongodb_database]
        app.state.checks["mongodb"] = lambda: client.admin.command("ping")
        await create_indexes(db)
        yield
        # --8<-- [end:factory]


async def mongodb_unavailable(request: Request, exc: Exception) -> JSONResponse:
    kind = "timed out" if isinstance(exc, PyMongoError) and exc.timeout else "failed"
    return unavailable(f"MongoDB {kind}", request.url.path)
