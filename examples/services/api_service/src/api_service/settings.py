"""Everything api_service reads from its environment."""

from __future__ import annotations

from typing import Annotated

from pydantic import AnyHttpUrl, Field, RedisDsn, SecretStr

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    pg_data_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8001")
    mongo_data_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8002")
    service_token: SecretStr
    redis_url: RedisDsn = RedisDsn("redis://127.0.0.1:6379/0")
    cache_prefix: str = "api:"
    user_cache_ttl_seconds: Annotated[int, Field(ge=1, le=86_400)] = 300
    data_timeout_seconds: Annotated[float, Field(gt=0, le=30)] = 2.0
    max_body_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024
