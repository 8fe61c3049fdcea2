"""Run the bot: long polling against the Telegram Bot API (or any compatible server)."""

from __future__ import annotations

from contextlib import AsyncExitStack

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot_service.handlers import build_router
from bot_service.settings import Settings
from shared.clients.mongo import MongoDataClient
from shared.clients.pg import PgDataClient
from shared.ops_server import ops_server


# --8<-- [start:run]
async def run(settings: Settings, handle_signals: bool = True) -> None:
    """Poll until SIGTERM/SIGINT (aiogram stops polling and lets handlers finish)."""
    timeout = settings.data_timeout_seconds
    async with AsyncExitStack() as stack:
        pg = await stack.enter_async_context(
            PgDataClient(str(settings.pg_data_url), settings.service_token, timeout=timeout)
        )
        mongo = await stack.enter_async_context(
            MongoDataClient(str(settings.mongo_data_url), settings.service_token, timeout=timeout)
        )
        checks = {"pg_data_service": lambda: pg.request("GET", "/health/live")}
        await stack.enter_async_context(ops_server(settings.host, settings.port, checks))
        api = TelegramAPIServer.from_base(str(settings.telegram_api_url).rstrip("/"))
        bot = Bot(settings.bot_token.get_secret_value(), session=AiohttpSession(api=api))
        stack.push_async_callback(bot.session.close)
        dispatcher = Dispatcher()
        dispatcher.include_router(build_router(pg, mongo))
        await dispatcher.start_polling(bot, handle_signals=handle_signals, polling_timeout=10)
        # --8<-- [end:run]
