"""Everything pg_data_service reads from its environment."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import parse_qs, unquote

from pydantic import AmqpDsn, Field, PostgresDsn
from sqlalchemy import URL, make_url

from shared.settings import ServiceSettings, ServiceTokens


# --8<-- [start:settings]
class Settings(ServiceSettings):
    port: Annotated[int, Field(ge=1, le=65535)] = 8001
    database_url: PostgresDsn
    service_tokens: ServiceTokens
    pool_size: Annotated[int, Field(ge=1, le=100)] = 10
    pool_max_overflow: Annotated[int, Field(ge=0, le=100)] = 5
    pool_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 2.0
    statement_timeout_ms: Annotated[int, Field(ge=100, le=600_000)] = 5_000
    max_body_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024
    rabbitmq_url: AmqpDsn | None = None  # set: the outbox relay runs inside this service
    # Retention, as ISO 8601 durations (P7D, PT1H). Keys must outlive every client's retries:
    # a retry that comes after its key was deleted creates a second order.
    idempotency_key_retention: Annotated[timedelta, Field(gt=timedelta(0))] = timedelta(days=7)
    sent_outbox_retention: Annotated[timedelta, Field(gt=timedelta(0))] = timedelta(days=7)
    retention_interval: Annotated[timedelta, Field(gt=timedelta(0))] = timedelta(hours=1)
    # --8<-- [end:settings]

    @property
    def async_database_url(self) -> str:
        """The URL for SQLAlchemy's asyncpg dialect."""
        return asyncpg_url(str(self.database_url))

    @property
    def plain_database_url(self) -> str:
        """The URL for asyncpg itself (``postgresql://``), whichever driver ``DATABASE_URL`` names;
        asyncpg reads several hosts in libpq's form as they are."""
        return "postgresql://" + str(self.database_url).split("://", 1)[1]


# --8<-- [start:multi-host]
def asyncpg_url(database_url: str) -> str:
    """``database_url`` with SQLAlchemy's asyncpg driver (``postgresql+asyncpg://``), password kept.

    Several hosts in libpq's form (``user@h1:5432,h2:5432/db``, what ``PostgresDsn`` accepts and
    asyncpg reads) become SQLAlchemy's (``user@/db?host=h1:5432&host=h2:5432``).
    """
    dsn = PostgresDsn(database_url)
    if len(hosts := dsn.hosts()) == 1:
        return (
            make_url(database_url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
        )
    first = hosts[0]
    url = URL.create(
        "postgresql+asyncpg",
        username=first["username"] and unquote(first["username"]),
        password=first["password"] and unquote(first["password"]),
        database=(dsn.path or "/").removeprefix("/"),
        query=parse_qs(dsn.query or "") | {"host": [f"{h['host']}:{h['port'] or 5432}" for h in hosts]},
    )
    return url.render_as_string(hide_password=False)
    # --8<-- [end:multi-host]
