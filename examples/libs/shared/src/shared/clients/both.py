"""Open the clients of both data services together, as every business service does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from shared.checks import Check
from shared.clients.http import DataServiceClient
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


# --8<-- [start:ready-checks]
def needed(*clients: DataServiceClient) -> dict[str, Check]:
    """Readiness checks of a business service: each data service it cannot serve without is ready
    (answers its own ``/health/ready``). A data service it can do without is left out: its outage
    answers 503 on the routes that need it, and the replica stays in rotation for the rest."""
    return {client.service: partial(client.request, "GET", "/health/ready") for client in clients}
    # --8<-- [end:ready-checks]
