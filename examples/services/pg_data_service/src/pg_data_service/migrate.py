"""Run the Alembic migrations: ``uv run python -m pg_data_service.migrate [revision]``, or draft
the next one from the mapped tables: ``... migrate revision "what it does"``.

The service never migrates on start-up: with several replicas starting at once that is
a race, and a failed migration should stop a deploy, not crash-loop every replica.
"""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import Script, ScriptDirectory
from pydantic import DirectoryPath, PostgresDsn
from pydantic_settings import BaseSettings

from pg_data_service.settings import asyncpg_url
from shared.settings import load_settings

MIGRATIONS = Path(__file__).with_name("migrations")


# --8<-- [start:migrate]
def alembic_config(database_url: str, migrations: Path = MIGRATIONS) -> Config:
    """Alembic's configuration, built in code: no alembic.ini to keep in sync."""
    config = Config()
    config.set_main_option("script_location", str(migrations))
    url = asyncpg_url(database_url).replace("%", "%%")  # configparser escapes %
    config.set_main_option("sqlalchemy.url", url)
    return config


def upgrade(database_url: str, revision: str = "head", migrations: Path = MIGRATIONS) -> None:
    command.upgrade(alembic_config(database_url, migrations), revision)
    # --8<-- [end:migrate]


# --8<-- [start:revision]
def draft(database_url: str, message: str, migrations: Path = MIGRATIONS) -> Path:
    """Write the next revision (``0007_…``) with what the mapped tables add to a database at head.

    A draft: autogenerate sees tables, columns, indexes and foreign keys, not CHECK constraints,
    backfills or how long a lock is held. Read it and finish it by hand.
    """
    config = alembic_config(database_url, migrations)
    head = ScriptDirectory.from_config(config).get_current_head()
    next_id = f"{int(head or 0) + 1:04d}"
    script = command.revision(config, message, autogenerate=True, rev_id=next_id)
    assert isinstance(script, Script)  # one script: this is not a merge of branches
    return Path(script.path)
    # --8<-- [end:revision]


class MigrationSettings(BaseSettings):
    """Migrating needs the database and nothing else (and, for tests, where the scripts are)."""

    database_url: PostgresDsn
    migrations_dir: DirectoryPath = MIGRATIONS


def main(argv: list[str] | None = None) -> None:
    settings = load_settings(MigrationSettings, "pg_data_service.migrate")
    args = argv if argv is not None else sys.argv[1:]
    url, migrations = str(settings.database_url), settings.migrations_dir
    if args[:1] == ["revision"]:
        if len(args) != 2 or not args[1].strip():
            raise SystemExit('usage: python -m pg_data_service.migrate revision "what it does"')
        print(f"drafted {draft(url, args[1], migrations)}: read it and finish it before you commit it")
        return
    upgrade(url, (args or ["head"])[0], migrations)


if __name__ == "__main__":
    main()
