"""``uv run python -m worker_service``: run the periodic jobs; health and metrics on $PORT (default 9101)."""

import asyncio
import logging

from shared.settings import load_settings
from worker_service.main import run
from worker_service.settings import Settings

settings = load_settings(Settings, "worker_service")
logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
asyncio.run(run(settings))
