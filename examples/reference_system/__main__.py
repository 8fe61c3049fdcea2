"""``uv run python -m reference_system``: run all five services locally until Ctrl-C.

Environment: DATABASE_URL, REDIS_URL, RABBITMQ_URL and MONGODB_URL (defaults: the local servers;
without a MongoDB on 127.0.0.1:27017 the nx-27017 stand-in is started). The bot runs
against TELEGRAM_API_URL with BOT_TOKEN; without TELEGRAM_API_URL it runs against a
local fake Telegram, so the whole system works offline. API_PORT, PG_DATA_PORT,
MONGO_DATA_PORT, WORKER_PORT and BOT_PORT move the services off 8000-8002, 9101 and 9102;
MONGODB_DATABASE, CACHE_PREFIX, JOB_INTERVAL_SECONDS, OTEL_EXPORTER_OTLP_ENDPOINT, JWT_KEY and
METRICS_TOKEN are passed on as the services read them (the last two are made up when unset).
"""

from __future__ import annotations

import asyncio
import signal
from contextlib import AsyncExitStack

from reference_system.processes import StoppedBadly, local_config, running_system


async def main() -> None:
    async with AsyncExitStack() as stack:
        config, _ = await stack.enter_async_context(local_config())
        system = await stack.enter_async_context(running_system(config))
        for name, running in system.items():
            print(f"{name:20} ready   {running.url}")
        print(f"End users' tokens: JWT_KEY={config.jwt_key} uv run python -m api_service.token <user id>")
        print(
            f"Metrics: curl -H 'Authorization: Bearer {config.metrics_token}' http://127.0.0.1:{config.ports.api}/metrics"
        )
        print(f"API: http://127.0.0.1:{config.ports.api}/docs   (Ctrl-C stops everything)")
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        await stopping.wait()
        print("stopping…")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except StoppedBadly as error:  # every service was still stopped; say which one did not go cleanly
        raise SystemExit(f"reference_system: {error}") from None
