"""``uv run python -m api_service``: serve on $HOST:$PORT (default 127.0.0.1:8000) until SIGTERM."""

from api_service.app import create_app
from api_service.settings import Settings
from shared.lifecycle import Lifecycle, run_service
from shared.serve import serve
from shared.settings import load_settings

settings = load_settings(Settings, "api_service")  # exits 2, one line per bad setting


async def main(life: Lifecycle) -> None:
    await serve(create_app(settings, life), settings, life)


run_service("api_service", settings, main)
