"""Everything worker_service reads from its environment."""

from __future__ import annotations

from typing import Annotated

from pydantic import AmqpDsn, Field, RedisDsn

from shared.events.topology import RETRY_DELAYS_MS
from shared.settings import DataClientSettings


class Settings(DataClientSettings):
    port: Annotated[int, Field(ge=1, le=65535)] = 9101  # health and metrics
    confirm_job: bool = True  # the periodic job that confirms placed orders the events missed
    job_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 5.0
    batch_size: Annotated[int, Field(ge=1, le=100)] = 20
    # A placed order not confirmed this long after it was placed is cancelled (the saga's timeout).
    confirm_within_seconds: Annotated[float, Field(gt=0, le=7 * 24 * 3600)] = 900.0
    rabbitmq_url: AmqpDsn | None = None  # set: consume order.placed events
    redis_url: RedisDsn = RedisDsn("redis://127.0.0.1:6379/0")  # which events were handled
    redis_prefix: str = "worker:"
    prefetch: Annotated[int, Field(ge=1, le=1000)] = 16
    deduplicate_events: bool = True  # false only to watch what it prevents (the fault tests do)
    retry_delays_ms: tuple[Annotated[int, Field(gt=0, le=3_600_000)], ...] = RETRY_DELAYS_MS  # JSON list
