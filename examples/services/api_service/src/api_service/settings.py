"""Everything api_service reads from its environment."""

from __future__ import annotations

from typing import Annotated, Literal

from limits import parse_many
from pydantic import AfterValidator, Field, RedisDsn, SecretStr
from pydantic_settings import BaseSettings

from shared.settings import DataClientSettings


class EndUserTokens(BaseSettings):
    """End users' tokens: who signs them, for whom, and the key that verifies them (a shared secret
    for HS256, at least 32 characters; a public key in PEM for RS256 or ES256)."""

    jwt_issuer: str = "http://127.0.0.1:8000/local-issuer"
    jwt_audience: str = "api_service"
    jwt_algorithm: Literal["HS256", "RS256", "ES256"] = "HS256"
    jwt_key: Annotated[SecretStr, Field(min_length=32)]


def rate(text: str) -> str:
    """A limit as ``limits`` writes it ("5/minute", "100/hour;10/second"): refused at start-up if not."""
    parse_many(text)  # ValueError: "couldn't parse rate limit string ..."
    return text


type Rate = Annotated[str, AfterValidator(rate)]


class Settings(DataClientSettings, EndUserTokens):
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    redis_url: RedisDsn = RedisDsn("redis://127.0.0.1:6379/0")
    cache_prefix: str = "api:"
    user_cache_ttl_seconds: Annotated[int, Field(ge=1, le=86_400)] = 300
    # After Redis fails a read, reads leave it alone this long (0: try it on every read).
    user_cache_breaker_seconds: Annotated[float, Field(ge=0, le=300)] = 5.0
    max_body_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024
    sign_up_rate: Rate = "10/minute"  # per client address
    link_code_rate: Rate = "5/minute"  # per end user
    openapi_ui: bool = (
        True  # /docs, /redoc and /openapi.json; the deploy files turn them off on the public port
    )
