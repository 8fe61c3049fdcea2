"""``uv run python -m mongo_data_service``: serve on $HOST:$PORT (default 127.0.0.1:8002)."""

from mongo_data_service.app import create_app
from mongo_data_service.settings import Settings
from shared.observability.setup import observe_process
from shared.serve import serve
from shared.settings import load_settings

settings = load_settings(Settings, "mongo_data_service")
# Before the app is built: its clients are instrumented as they are created.
provider = observe_process("mongo_data_service", settings)
serve(create_app(settings), settings, provider)
