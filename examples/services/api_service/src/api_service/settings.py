"""Everything api_service reads from its environment."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, RedisDsn

from shared.settings import DataClientSettings


class Settings(DataClientSettings):
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    redis_url: RedisDsn = RedisDsn("redis://127.0.0.1:6379/0")
    cache_prefix: str = "api:"
    user_cache_ttl_seconds: Annotated[int, Field(ge=1, le=86_400)] = 300
    max_body_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024
