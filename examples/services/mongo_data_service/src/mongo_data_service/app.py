"""The mongo_data_service application: the only process that talks to MongoDB."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
from pymongo import AsyncMongoClient
from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError

from mongo_data_service.repository import Document, create_indexes
from mongo_data_service.routes import build_router
from mongo_data_service.settings import Settings
from shared.auth import CallerAuth
from shared.health import health_router
from shared.observability.setup import observe_app
from shared.problems import BodySizeLimit, Problem, install_problem_handlers, problem_response

PERMISSIONS = {
    "api": frozenset({"activity:read", "activity:write"}),
    "bot": frozenset({"activity:read"}),
    "worker": frozenset({"activity:read", "activity:write"}),
}


# --8<-- [start:factory]
def create_app(settings: Settings) -> FastAPI:
    if not PymongoInstrumentor().is_instrumented_by_opentelemetry:
        PymongoInstrumentor().instrument()  # a global command listener: before the client exists
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        str(settings.mongodb_url),
        serverSelectionTimeoutMS=settings.server_selection_timeout_ms,
        tz_aware=True,
    )
    db = client[settings.mongodb_database]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await create_indexes(db)
        app.state.db = db
        yield
        await client.close()

    async def mongodb() -> None:
        await client.admin.command("ping")

    app = FastAPI(title="mongo_data_service", version="1.0.0", lifespan=lifespan)
    install_problem_handlers(app)
    observe_app(app)
    app.add_exception_handler(ConnectionFailure, mongodb_unavailable)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.include_router(health_router({"mongodb": mongodb}))
    app.include_router(build_router(CallerAuth(settings.service_tokens, PERMISSIONS)))
    return app
    # --8<-- [end:factory]


async def mongodb_unavailable(request: Request, exc: Exception) -> JSONResponse:
    kind = "timed out" if isinstance(exc, ServerSelectionTimeoutError) else "failed"
    problem = Problem(
        status=503, title="Service Unavailable", detail=f"MongoDB {kind}", instance=request.url.path
    )
    return problem_response(problem, {"Retry-After": "1"})
