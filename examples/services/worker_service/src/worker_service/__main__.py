"""``uv run python -m worker_service``: consume events and run the periodic job until SIGTERM;
health and metrics on $PORT (default 9101)."""

from functools import partial

from shared.lifecycle import run_service
from shared.settings import load_settings
from worker_service.main import run
from worker_service.settings import Settings

settings = load_settings(Settings, "worker_service")  # exits 2, one line per bad setting
run_service("worker_service", settings, partial(run, settings))
