"""Everything worker_service reads from its environment."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from shared.settings import DataClientSettings


class Settings(DataClientSettings):
    port: Annotated[int, Field(ge=1, le=65535)] = 9101  # health and metrics
    job_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 5.0
    batch_size: Annotated[int, Field(ge=1, le=100)] = 20
