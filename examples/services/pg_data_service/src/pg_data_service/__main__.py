"""``uv run python -m pg_data_service``: serve on $HOST:$PORT (default 127.0.0.1:8001)."""

import uvicorn

from pg_data_service.app import create_app
from pg_data_service.settings import Settings
from shared.observability.setup import observe_process
from shared.settings import load_settings

settings = load_settings(Settings, "pg_data_service")
# Before the app is built: its clients are instrumented as they are created.
provider = observe_process("pg_data_service", settings)
# log_config=None: uvicorn's records go through our ECS handler. No access log: the RED metrics
# count every request and the traces time them; a line per request is the biggest log cost.
app = create_app(settings)
uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)
provider.shutdown()  # flush the spans still in the batch
