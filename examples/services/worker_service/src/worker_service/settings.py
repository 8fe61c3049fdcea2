"""Everything worker_service reads from its environment."""

from __future__ import annotations

from typing import Annotated

from pydantic import AnyHttpUrl, Field, SecretStr

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    port: Annotated[int, Field(ge=1, le=65535)] = 9101  # health and metrics
    pg_data_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8001")
    mongo_data_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8002")
    service_token: SecretStr
    data_timeout_seconds: Annotated[float, Field(gt=0, le=30)] = 2.0
    job_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 5.0
    batch_size: Annotated[int, Field(ge=1, le=100)] = 20
