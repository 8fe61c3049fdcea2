"""``uv run python -m worker_service``: run the periodic jobs; health and metrics on $PORT (default 9101)."""

import asyncio

from shared.observability.setup import observe_process
from shared.settings import load_settings
from worker_service.main import run
from worker_service.settings import Settings

settings = load_settings(Settings, "worker_service")
provider = observe_process("worker_service", settings)
asyncio.run(run(settings))
provider.shutdown()  # flush the spans still in the batch
