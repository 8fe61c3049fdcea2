"""The service-examples page names the settings each service requires (no default in its settings class)."""

from __future__ import annotations

import re

from pydantic_settings import BaseSettings

from api_service.settings import Settings as ApiSettings
from bot_service.settings import Settings as BotSettings
from mongo_data_service.settings import Settings as MongoSettings
from pg_data_service.settings import Settings as PgSettings
from tests.site_builds import ROOT
from worker_service.settings import Settings as WorkerSettings

SETTINGS: dict[str, type[BaseSettings]] = {
    "pg_data_service": PgSettings,
    "mongo_data_service": MongoSettings,
    "api_service": ApiSettings,
    "bot_service": BotSettings,
    "worker_service": WorkerSettings,
}


def test_the_table_names_every_required_setting_and_no_other() -> None:
    page = (ROOT / "docs" / "reference" / "service-examples.md").read_text()
    rows = dict(re.findall(r"^\| [^|]+ \| `(\w+)` \| ([^|]+) \|", page, re.MULTILINE))
    for service, settings in SETTINGS.items():
        required = {name.upper() for name, field in settings.model_fields.items() if field.is_required()}
        assert set(re.findall(r"`(\w+)`", rows[service])) == required, service
