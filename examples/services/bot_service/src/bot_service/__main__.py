"""``uv run python -m bot_service``: poll Telegram; health and metrics on $PORT (default 9102)."""

import asyncio

from bot_service.main import run
from bot_service.settings import Settings
from shared.settings import load_settings

asyncio.run(run(load_settings(Settings, "bot_service")))
