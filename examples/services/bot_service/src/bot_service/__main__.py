"""``uv run python -m bot_service``: poll Telegram; health and metrics on $PORT (default 9102)."""

import asyncio

from bot_service.main import run
from bot_service.settings import Settings
from shared.observability.setup import observe_process
from shared.settings import load_settings

settings = load_settings(Settings, "bot_service")
provider = observe_process("bot_service", settings)
asyncio.run(run(settings))
provider.shutdown()  # flush the spans still in the batch
