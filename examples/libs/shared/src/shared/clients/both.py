"""Open the clients of both data services together, as every business service does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from shared.checks import Check
from shared.clients.mongo import MongoDataClient
from shared.clients.pg import PgDataClient
from shared.settings import DataClientSettings


@asynccontextmanager
async def data_clients(settings: DataClientSettings) -> AsyncIterator[tuple[PgDataClient, MongoDataClient]]:
    """One pooled client per data service for the life of the process; closed on exit."""
    token, timeout = settings.service_token, settings.data_timeout_seconds
    async with (
        PgDataClient(str(settings.pg_data_url), token, timeout=timeout) as pg,
        MongoDataClient(str(settings.mongo_data_url), token, timeout=timeout) as mongo,
    ):
        yield pg, mongo


def liveness_of(pg: PgDataClient, mongo: MongoDataClient) -> dict[str, Check]:
    """Readiness checks of a business service: both data services answer ``/health/live``."""
    return {
        "pg_data_service": lambda: pg.request("GET", "/health/live"),
        "mongo_data_service": lambda: mongo.request("GET", "/health/live"),
    }
