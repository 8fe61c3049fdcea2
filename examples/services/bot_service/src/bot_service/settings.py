"""Everything bot_service reads from its environment."""

from __future__ import annotations

from typing import Annotated

from pydantic import AnyHttpUrl, Field, SecretStr

from shared.settings import DataClientSettings


class Settings(DataClientSettings):
    port: Annotated[int, Field(ge=1, le=65535)] = 9102  # health and metrics
    bot_token: SecretStr
    telegram_api_url: AnyHttpUrl = AnyHttpUrl("https://api.telegram.org")
