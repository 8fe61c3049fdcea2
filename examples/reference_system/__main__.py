"""``uv run python -m reference_system``: run all five services locally until Ctrl-C.

Environment: DATABASE_URL, REDIS_URL, RABBITMQ_URL and MONGODB_URL (defaults: the local servers;
without a MongoDB on 127.0.0.1:27017 the nx-27017 stand-in is started). The bot runs
against TELEGRAM_API_URL with BOT_TOKEN; without TELEGRAM_API_URL it runs against a
local fake Telegram, so the whole system works offline.
"""

from __future__ import annotations

import asyncio
import os
import signal
from contextlib import AsyncExitStack, ExitStack

from patterns.testing.fake_telegram import fake_telegram
from patterns.testing.service_resolution import port_is_open, start_nx_27017
from reference_system.processes import SystemConfig, running_system


async def main() -> None:
    with ExitStack() as servers:
        mongodb_url = os.environ.get("MONGODB_URL") or "mongodb://127.0.0.1:27017/"
        if "MONGODB_URL" not in os.environ and not port_is_open(mongodb_url):
            mongodb_url = start_nx_27017(servers)
            print(f"MongoDB: nx-27017 stand-in at {mongodb_url}")
        async with AsyncExitStack() as stack:
            telegram_url = os.environ.get("TELEGRAM_API_URL")
            if not telegram_url:
                _, telegram_url = await stack.enter_async_context(fake_telegram())
                print(f"Telegram: local fake Bot API at {telegram_url}")
            config = SystemConfig(
                database_url=os.environ.get("DATABASE_URL", SystemConfig.database_url),
                mongodb_url=mongodb_url,
                redis_url=os.environ.get("REDIS_URL", SystemConfig.redis_url),
                rabbitmq_url=os.environ.get("RABBITMQ_URL", SystemConfig.rabbitmq_url),
                telegram_api_url=telegram_url,
                bot_token=os.environ.get("BOT_TOKEN", SystemConfig.bot_token),
            )
            system = await stack.enter_async_context(running_system(config))
            for name, running in system.items():
                print(f"{name:20} ready   {running.url}")
            print(f"API: http://127.0.0.1:{config.ports.api}/docs   (Ctrl-C stops everything)")
            stopping = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stopping.set)
            await stopping.wait()
            print("stopping…")


if __name__ == "__main__":
    asyncio.run(main())
