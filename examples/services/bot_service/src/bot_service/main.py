"""Run the bot: long polling against the Telegram Bot API (or any compatible server)."""

from __future__ import annotations

from contextlib import AsyncExitStack

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from redis.asyncio import Redis

from bot_service.handlers import build_router, on_order_confirmed
from bot_service.settings import Settings
from shared.clients.both import data_clients, liveness_of
from shared.events.consumer import EventConsumer
from shared.ops_server import ops_server


# --8<-- [start:run]
async def run(settings: Settings, handle_signals: bool = True) -> None:
    """Poll until SIGTERM/SIGINT (aiogram stops polling and lets handlers finish)."""
    async with AsyncExitStack() as stack:
        pg, mongo = await stack.enter_async_context(data_clients(settings))
        await stack.enter_async_context(ops_server(settings.host, settings.port, liveness_of(pg, mongo)))
        api = TelegramAPIServer.from_base(str(settings.telegram_api_url).rstrip("/"))
        bot = Bot(settings.bot_token.get_secret_value(), session=AiohttpSession(api=api))
        stack.push_async_callback(bot.session.close)
        if settings.rabbitmq_url is not None:
            redis = Redis.from_url(str(settings.redis_url))
            stack.push_async_callback(redis.aclose)
            await stack.enter_async_context(
                EventConsumer(
                    str(settings.rabbitmq_url),
                    "bot.order-confirmed",
                    ["order.confirmed"],
                    on_order_confirmed(bot, pg),
                    redis,
                    remember_prefix=settings.redis_prefix,
                )
            )
        dispatcher = Dispatcher()
        dispatcher.include_router(build_router(pg, mongo))
        await dispatcher.start_polling(bot, handle_signals=handle_signals, polling_timeout=10)
        # --8<-- [end:run]
