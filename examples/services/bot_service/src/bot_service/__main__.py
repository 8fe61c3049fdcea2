"""``uv run python -m bot_service``: poll Telegram; health and metrics on $PORT (default 9102)."""

import asyncio
import logging

from bot_service.main import run
from bot_service.settings import Settings
from shared.settings import load_settings

settings = load_settings(Settings, "bot_service")
logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
asyncio.run(run(settings))
