"""Run the bot: long polling against the Telegram Bot API (or any compatible server)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from functools import partial

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from redis.asyncio import Redis

from bot_service.handlers import build_router, on_order_cancelled, on_order_confirmed
from bot_service.settings import Settings
from shared.clients.both import data_clients, needed
from shared.events.consumer import consumers_for
from shared.lifecycle import Lifecycle
from shared.ops_server import ops_server


# --8<-- [start:run]
async def run(settings: Settings, life: Lifecycle) -> None:
    """Poll and consume until ``life`` stops (SIGTERM), then finish the messages in hand."""
    async with AsyncExitStack() as stack:  # opened in order, closed in reverse, also on failure
        pg, mongo = await stack.enter_async_context(data_clients(settings))
        api = TelegramAPIServer.from_base(str(settings.telegram_api_url).rstrip("/"))
        bot = Bot(settings.bot_token.get_secret_value(), session=AiohttpSession(api=api))
        stack.push_async_callback(bot.session.close)
        checks = {"process": life.check, **needed(pg)}
        if settings.rabbitmq_url is not None:
            redis = Redis.from_url(str(settings.redis_url), socket_timeout=2, socket_connect_timeout=2)
            stack.push_async_callback(redis.aclose)
            consumer = consumers_for(settings, redis)
            url = str(settings.rabbitmq_url)
            for queue, key, handler in (
                ("bot.order-confirmed", "order.confirmed", on_order_confirmed(bot, pg)),
                ("bot.order-cancelled", "order.cancelled", on_order_cancelled(bot, pg)),
            ):
                events = await stack.enter_async_context(consumer(url, queue, [key], handler))
                await stack.enter_async_context(life.background(**{queue: events.watch}))
                checks[queue] = events.check
        dispatcher = Dispatcher(pg=pg, mongo=mongo)  # handlers take the clients by name
        dispatcher.include_router(build_router())
        await stack.enter_async_context(life.background(telegram_polling=partial(poll, dispatcher, bot)))
        await stack.enter_async_context(
            ops_server(settings.host, settings.port, checks, metrics_token=settings.metrics_token)
        )
        await life.stopping.wait()
        # --8<-- [end:run]


async def poll(dispatcher: Dispatcher, bot: Bot, stop: asyncio.Event) -> None:
    """aiogram's long polling until ``stop``; the lifecycle, not aiogram, owns the signals."""
    started = asyncio.Event()
    dispatcher.startup.register(started.set)
    polling = asyncio.create_task(
        dispatcher.start_polling(bot, handle_signals=False, close_bot_session=False, polling_timeout=10)
    )
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({polling, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not polling.done():
        await started.wait()  # stop_polling refuses a dispatcher that has not started yet
        await dispatcher.stop_polling()
    await polling  # raises what ended polling early, for the lifecycle to report
