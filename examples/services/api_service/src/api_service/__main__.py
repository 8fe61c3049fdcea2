"""``uv run python -m api_service``: serve on $HOST:$PORT (default 127.0.0.1:8000)."""

from api_service.app import create_app
from api_service.settings import Settings
from shared.observability.setup import observe_process
from shared.serve import serve
from shared.settings import load_settings

settings = load_settings(Settings, "api_service")
# Before the app is built: its clients are instrumented as they are created.
provider = observe_process("api_service", settings)
serve(create_app(settings), settings, provider)
