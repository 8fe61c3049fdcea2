"""The real aiogram bot, polling a fake Telegram Bot API on loopback, over the real data services."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from bot_service.main import run
from bot_service.settings import Settings
from patterns.testing.pytest_fixtures import RedisTarget
from reference_system.fake_telegram import FakeTelegram, fake_telegram
from reference_system.ports import free_port
from reference_system.waiting import eventually
from shared.events.envelope import OrderCancelled, OrderConfirmed, new_event
from shared.events.parking_lot import inspect
from shared.events.publisher import EventPublisher
from shared.lifecycle import Lifecycle
from tests.examples.services.conftest import TOKENS
from tests.examples.services.test_pg_data_service import ITEMS

CHAT = 4242


def bot_settings(telegram_url: str, pg_url: str, mongo_url: str, **overrides: Any) -> Settings:
    return Settings(
        port=free_port(),
        bot_token=SecretStr("123456:TEST-token-for-the-fake-server"),
        telegram_api_url=telegram_url,
        pg_data_url=pg_url,
        mongo_data_url=mongo_url,
        service_token=SecretStr(TOKENS["bot"]),
        **overrides,
    )


@asynccontextmanager
async def running_bot(settings: Settings) -> AsyncIterator[None]:
    """The real bot, polling, until the block ends."""
    life = Lifecycle()
    bot = asyncio.create_task(run(settings, life))
    try:
        yield
    finally:
        life.stop()  # as SIGTERM does
        await asyncio.wait_for(bot, 15)
    assert life.crash is None


@pytest.fixture
async def telegram(pg_url: str, mongo_url: str) -> AsyncIterator[FakeTelegram]:
    async with (
        fake_telegram() as (fake, telegram_url),
        running_bot(bot_settings(telegram_url, pg_url, mongo_url)),
    ):
        yield fake


async def test_start_registers_a_new_user_once(telegram: FakeTelegram, pg: httpx.AsyncClient) -> None:
    await telegram.send_command(CHAT, "/start", first_name="Alice")
    [welcome] = await telegram.replies(CHAT, 1)
    assert welcome.startswith("Welcome, Alice! You are customer #")
    await telegram.send_command(CHAT, "/start")
    assert (await telegram.replies(CHAT, 2))[1] == "Welcome back, Alice!"
    users = (await pg.get("/users", params={"telegram_chat_id": CHAT})).json()["items"]
    assert len(users) == 1
    assert users[0]["email"] == f"telegram-{CHAT}@users.example.org"


async def test_orders_and_activity_commands_read_through_the_data_services(
    telegram: FakeTelegram, pg: httpx.AsyncClient, mongo: httpx.AsyncClient
) -> None:
    await telegram.send_command(CHAT, "/orders")
    assert (await telegram.replies(CHAT, 1))[0] == "I don't know you yet: send /start first."
    await telegram.send_command(CHAT, "/start")
    await telegram.replies(CHAT, 2)
    user = (await pg.get("/users", params={"telegram_chat_id": CHAT})).json()["items"][0]
    order = (await pg.post("/orders", json={"user_id": user["id"], "items": ITEMS})).json()
    await mongo.post("/activity", json={"user_id": user["id"], "kind": "order.placed"})
    await telegram.send_command(CHAT, "/orders")
    await telegram.replies(CHAT, 3)  # updates are handled concurrently: one command at a time
    await telegram.send_command(CHAT, "/activity")
    replies = await telegram.replies(CHAT, 4)
    assert replies[2] == f"Your latest orders:\n#{order['id']} · placed · 26.25"
    assert replies[3].startswith("Recent activity:\n")
    assert replies[3].endswith("· order.placed")


async def test_a_data_service_outage_gets_a_polite_answer(mongo_url: str) -> None:
    async with fake_telegram() as (fake, telegram_url):
        settings = bot_settings(
            telegram_url, f"http://127.0.0.1:{free_port()}", mongo_url, data_timeout_seconds=0.3
        )
        async with running_bot(settings):
            await fake.send_command(CHAT, "/orders")
            assert await fake.replies(CHAT, 1) == ["We are busy right now, please try again in a minute."]


@asynccontextmanager
async def consuming_bot(
    pg_url: str, mongo_url: str, rabbitmq_url: str, redis: RedisTarget
) -> AsyncIterator[tuple[FakeTelegram, EventPublisher]]:
    """The real bot consuming order.confirmed from this test's vhost; yield Telegram and a publisher."""
    async with fake_telegram() as (fake, telegram_url):
        events = {"rabbitmq_url": rabbitmq_url, "redis_url": redis.url, "redis_prefix": redis.prefix}
        settings = bot_settings(telegram_url, pg_url, mongo_url, **events)
        async with running_bot(settings), EventPublisher(rabbitmq_url) as publisher:
            yield fake, publisher


async def test_confirmed_and_cancelled_events_notify_the_user_on_telegram(
    pg: httpx.AsyncClient, pg_url: str, mongo_url: str, rabbitmq_url: str, redis_target: RedisTarget
) -> None:
    user = (
        await pg.post("/users", json={"email": "eve@example.org", "name": "Eve", "telegram_chat_id": CHAT})
    ).json()
    kept, dropped = await place(pg, user["id"]), await place(pg, user["id"])
    await pg.post(f"/orders/{dropped}/cancellation", json={"reason": "customer"})
    async with consuming_bot(pg_url, mongo_url, rabbitmq_url, redis_target) as (fake, publisher):
        await publisher.publish(new_event(OrderConfirmed(order_id=kept, user_id=user["id"])))
        assert await fake.replies(CHAT, 1, timeout=15) == [f"Your order #{kept} is confirmed."]
        # An announcement held up in a retry queue until after the cancel: not told, it is no longer true.
        before = outdated()
        await publisher.publish(new_event(OrderConfirmed(order_id=dropped, user_id=user["id"])))
        await eventually(lambda: outdated() > before, "the outdated announcement dropped", timeout=15)
        late = OrderCancelled(order_id=kept, user_id=user["id"], reason="not_confirmed_in_time")
        await publisher.publish(new_event(late))
        # A reason this bot does not know yet (a newer producer's) still reaches the user.
        unknown = OrderCancelled(order_id=dropped, user_id=user["id"], reason="fraud")
        await publisher.publish(new_event(unknown))
        assert sorted((await fake.replies(CHAT, 3, timeout=15))[1:]) == sorted(
            [
                f"Your order #{dropped} is cancelled.",
                f"Your order #{kept} is cancelled: we could not confirm it in time.",
            ]
        )
    assert len(fake.sent) == 3


async def place(pg: httpx.AsyncClient, user_id: int) -> int:
    return int((await pg.post("/orders", json={"user_id": user_id, "items": ITEMS})).json()["id"])


def outdated() -> float:
    return REGISTRY.get_sample_value("notifications_sent_total", {"outcome": "outdated"}) or 0.0


async def test_a_user_who_blocked_the_bot_is_parked_at_once_and_flood_control_is_waited_out(
    pg: httpx.AsyncClient, pg_url: str, mongo_url: str, rabbitmq_url: str, redis_target: RedisTarget
) -> None:
    """Telegram's 403 (blocked) can never succeed: parked with the reason, no retry. Its 429 (flood
    control) will: the message arrives after the retry queue's delay, once."""
    blocked_chat = CHAT + 1
    users = [
        (
            await pg.post(
                "/users", json={"email": f"{name}@example.org", "name": name, "telegram_chat_id": chat}
            )
        ).json()
        for name, chat in (("frank", blocked_chat), ("grace", CHAT))
    ]
    orders = [
        (await pg.post("/orders", json={"user_id": user["id"], "items": ITEMS})).json()["id"]
        for user in users
    ]
    async with consuming_bot(pg_url, mongo_url, rabbitmq_url, redis_target) as (fake, publisher):
        fake.blocked.add(blocked_chat)
        fake.rate_limited = 1
        for order_id, user in zip(orders, users, strict=True):
            await publisher.publish(new_event(OrderConfirmed(order_id=order_id, user_id=user["id"])))
        [parked] = await eventually(
            lambda: inspect(rabbitmq_url, "bot.order-confirmed"), "the blocked one parked"
        )
        assert await fake.replies(CHAT, 1, timeout=15) == [f"Your order #{orders[1]} is confirmed."]
    assert parked.reason == f"permanent: chat {blocked_chat}: Forbidden: bot was blocked by the user"
    assert fake.rate_limited == 0  # the 429 was answered, and the retry got through


async def test_link_binds_the_chat_that_sends_the_code_once(
    telegram: FakeTelegram, pg: httpx.AsyncClient
) -> None:
    """The user got a code from the API (for their own account) and sends it from their chat."""
    user = (await pg.post("/users", json={"email": "lena@example.org", "name": "Lena"})).json()
    code = (await pg.post(f"/users/{user['id']}/telegram-link-codes")).json()["code"]
    await telegram.send_command(CHAT, f"/link {code.lower()}")  # typed by hand: case does not matter
    assert await telegram.replies(CHAT, 1) == ["Linked, Lena: your order notifications come here now."]
    assert (await pg.get(f"/users/{user['id']}")).json()["telegram_chat_id"] == CHAT
    await telegram.send_command(CHAT + 1, f"/link {code}")  # the same code, from another chat
    assert await telegram.replies(CHAT + 1, 1) == [
        "That code is unknown, used or expired: ask the app for a new one."
    ]
    await telegram.send_command(CHAT + 2, "/link not-a-code!")
    assert await telegram.replies(CHAT + 2, 1) == [
        "That code is unknown, used or expired: ask the app for a new one."
    ]
    assert (await pg.get(f"/users/{user['id']}")).json()["telegram_chat_id"] == CHAT
