"""``uv run python -m reference_system``: run all five services locally until Ctrl-C.

Environment: DATABASE_URL, REDIS_URL, RABBITMQ_URL and MONGODB_URL (defaults: the local servers;
without a MongoDB on 127.0.0.1:27017 the nx-27017 stand-in is started). The bot runs
against TELEGRAM_API_URL with BOT_TOKEN; without TELEGRAM_API_URL it runs against a
local fake Telegram, so the whole system works offline. API_PORT, PG_DATA_PORT,
MONGO_DATA_PORT, WORKER_PORT and BOT_PORT move the services off 8000-8002, 9101 and 9102;
MONGODB_DATABASE, CACHE_PREFIX, JOB_INTERVAL_SECONDS, OTEL_EXPORTER_OTLP_ENDPOINT, JWT_KEY and
METRICS_TOKEN are passed on as the services read them (the last two are made up when unset).
The fake Telegram listens on FAKE_TELEGRAM_PORT (9103): play a user there by hand
(``POST /chats/<id>/messages`` sends to the bot, ``GET`` reads what it sent).
"""

from __future__ import annotations

import asyncio
import os
import signal
from contextlib import AsyncExitStack

from reference_system.processes import StoppedBadly, local_config, preflight, running_system


async def main() -> None:
    async with AsyncExitStack() as stack:
        telegram_port = int(os.environ.get("FAKE_TELEGRAM_PORT", "9103"))
        if problems := preflight(os.environ, telegram_port):
            raise SystemExit("reference_system cannot start:\n  " + "\n  ".join(problems))
        config, _ = await stack.enter_async_context(local_config(telegram_port=telegram_port))
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
