"""``uv run python -m bot_service``: poll Telegram and consume events until SIGTERM;
health and metrics on $PORT (default 9102)."""

from functools import partial

from bot_service.main import run
from bot_service.settings import Settings
from shared.lifecycle import run_service
from shared.settings import load_settings

settings = load_settings(Settings, "bot_service")  # exits 2, one line per bad setting
run_service("bot_service", settings, partial(run, settings))
