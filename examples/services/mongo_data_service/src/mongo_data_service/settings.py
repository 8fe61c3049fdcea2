"""Everything mongo_data_service reads from its environment."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, MongoDsn

from shared.settings import ServiceSettings, ServiceTokens


class Settings(ServiceSettings):
    port: Annotated[int, Field(ge=1, le=65535)] = 8002
    mongodb_url: MongoDsn
    mongodb_database: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,63}$")] = "hybrid"
    service_tokens: ServiceTokens
    server_selection_timeout_ms: Annotated[int, Field(ge=100, le=60_000)] = 2_000
    operation_timeout_ms: Annotated[int, Field(ge=100, le=600_000)] = 5_000
    max_body_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024
