"""Run the Alembic migrations: ``uv run python -m pg_data_service.migrate [revision]``.

The service never migrates on start-up: with several replicas starting at once that is
a race, and a failed migration should stop a deploy, not crash-loop every replica.
"""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from pydantic import PostgresDsn
from pydantic_settings import BaseSettings

from pg_data_service.settings import asyncpg_url
from shared.settings import load_settings

MIGRATIONS = Path(__file__).with_name("migrations")


# --8<-- [start:migrate]
def alembic_config(database_url: str) -> Config:
    """Alembic's configuration, built in code: no alembic.ini to keep in sync."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    url = asyncpg_url(database_url).replace("%", "%%")  # configparser escapes %
    config.set_main_option("sqlalchemy.url", url)
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)
    # --8<-- [end:migrate]


class MigrationSettings(BaseSettings):
    """Migrating needs the database and nothing else."""

    database_url: PostgresDsn


def main(argv: list[str] | None = None) -> None:
    settings = load_settings(MigrationSettings, "pg_data_service.migrate")
    upgrade(str(settings.database_url), (argv or sys.argv[1:] or ["head"])[0])


if __name__ == "__main__":
    main()
