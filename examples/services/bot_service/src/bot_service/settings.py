"""Everything bot_service reads from its environment."""

from __future__ import annotations

from typing import Annotated

from pydantic import AmqpDsn, AnyHttpUrl, Field, RedisDsn, SecretStr

from shared.events.topology import RETRY_DELAYS_MS
from shared.settings import DataClientSettings


class Settings(DataClientSettings):
    port: Annotated[int, Field(ge=1, le=65535)] = 9102  # health and metrics
    bot_token: SecretStr
    telegram_api_url: AnyHttpUrl = AnyHttpUrl("https://api.telegram.org")
    rabbitmq_url: AmqpDsn | None = None  # set: notify users of order.confirmed events
    redis_url: RedisDsn = RedisDsn("redis://127.0.0.1:6379/0")
    redis_prefix: str = "bot:"
    deduplicate_events: bool = True  # false only to watch what it prevents (the fault tests do)
    retry_delays_ms: tuple[Annotated[int, Field(gt=0, le=3_600_000)], ...] = RETRY_DELAYS_MS  # JSON list
