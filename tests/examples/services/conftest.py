"""Each data service, migrated on an isolated database, reachable in-process and on a real port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from mongo_data_service.app import create_app as create_mongo_app
from mongo_data_service.settings import Settings as MongoSettings
from patterns.testing.pytest_fixtures import MongoTarget
from patterns.testing.servers import in_process, serving
from pg_data_service.app import create_app as create_pg_app
from pg_data_service.migrate import upgrade
from pg_data_service.settings import Settings as PgSettings

TOKENS = {
    "api": "api-token-0123456789abcdef",
    "bot": "bot-token-0123456789abcdef",
    "worker": "worker-token-0123456789abcdef",
}


def auth(caller: str = "api") -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[caller]}"}


def secret(caller: str) -> SecretStr:
    return SecretStr(TOKENS[caller])


@pytest.fixture
async def pg_settings(postgres_url: str) -> PgSettings:
    await asyncio.to_thread(upgrade, postgres_url)
    return PgSettings(database_url=postgres_url, service_tokens=TOKENS)


@pytest.fixture
def pg_app(pg_settings: PgSettings) -> FastAPI:
    return create_pg_app(pg_settings)


@pytest.fixture
async def pg(pg_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """pg_data_service in-process, authenticated as the api service."""
    async with in_process(pg_app, headers=auth()) as client:
        yield client


@pytest.fixture
async def pg_url(pg_app: FastAPI) -> AsyncIterator[str]:
    """pg_data_service on a real loopback port."""
    async with serving(pg_app) as url:
        yield url


@pytest.fixture
def mongo_settings(mongo_target: MongoTarget) -> MongoSettings:
    return MongoSettings(
        mongodb_url=mongo_target.url, mongodb_database=mongo_target.database, service_tokens=TOKENS
    )


@pytest.fixture
def mongo_app(mongo_settings: MongoSettings) -> FastAPI:
    return create_mongo_app(mongo_settings)


@pytest.fixture
async def mongo(mongo_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """mongo_data_service in-process, authenticated as the api service."""
    async with in_process(mongo_app, headers=auth()) as c:
        yield c


@pytest.fixture
async def mongo_url(mongo_app: FastAPI) -> AsyncIterator[str]:
    async with serving(mongo_app) as url:
        yield url
