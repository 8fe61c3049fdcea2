"""``uv run python -m pg_data_service``: serve on $HOST:$PORT (default 127.0.0.1:8001)."""

import logging

import uvicorn

from pg_data_service.app import create_app
from pg_data_service.settings import Settings
from shared.settings import load_settings

settings = load_settings(Settings, "pg_data_service")
logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level)
