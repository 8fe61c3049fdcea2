"""The whole reference system as five real processes on loopback, driven through its front doors."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
from pymongo import AsyncMongoClient

from reference_system.waiting import eventually
from tests.examples.services.test_api_service import sign_up
from tests.system.running import SHARED_SYSTEM, System

pytestmark = SHARED_SYSTEM

CHAT = 777001
ITEMS = [{"sku": "book-1", "quantity": 2, "unit_price": "12.50"}]


async def test_register_order_confirm_and_ask_the_bot(system: System) -> None:
    api_url, telegram = system.api_url, system.telegram
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as api:
        # 1. sign up through the API, then link the Telegram chat: a one-time code, sent from the chat
        user = await sign_up(api, {"email": "dana@example.org", "name": "Dana"})
        code = (await api.post(f"/users/{user['id']}/telegram-link")).json()["code"]
        await telegram.send_command(CHAT, f"/link {code}")
        assert (await telegram.replies(CHAT, 1, timeout=15))[0].startswith("Linked, Dana")
        # 2. place an order, retrying once with the same key as a client would after a timeout
        key = {"Idempotency-Key": "system-test-order-0001"}
        orders = f"/users/{user['id']}/orders"
        order = (await api.post(orders, json={"items": ITEMS}, headers=key)).json()
        retry = (await api.post(orders, json={"items": ITEMS}, headers=key)).json()
        assert retry["id"] == order["id"]

        # 3. the outbox relays order.placed; the worker consumes it and confirms through both data services
        async def confirmed() -> bool:
            orders = (await api.get(f"/users/{user['id']}/orders")).json()["items"]
            return bool(orders) and orders[0]["status"] == "confirmed"

        await eventually(confirmed, "the order confirmed", timeout=20, interval=0.2)
        activity = (await api.get(f"/users/{user['id']}/activity")).json()["items"]
        assert [a["kind"] for a in activity] == ["order.confirmed"]

    # 4. the worker's order.confirmed event reaches the bot, which notifies the user
    notice = (await telegram.replies(CHAT, 2, timeout=15))[1]
    assert notice == f"Your order #{order['id']} is confirmed."
    # 5. and the bot answers from the same data
    await telegram.send_command(CHAT, "/orders")
    replies = await telegram.replies(CHAT, 3, timeout=15)
    assert replies[2] == f"Your latest orders:\n#{order['id']} · confirmed · 25.00"

    # 6. both stores hold exactly one of each for this user
    connection = await asyncpg.connect(system.database_url)
    try:
        rows = await connection.fetch("SELECT status, version FROM orders WHERE user_id = $1", user["id"])
    finally:
        await connection.close()
    assert [(r["status"], r["version"]) for r in rows] == [("confirmed", 2)]
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(system.mongo.url)
    try:
        docs = (
            await mongo[system.mongo.database]
            .activity.find({"user_id": user["id"]}, {"_id": 0, "kind": 1, "payload": 1})
            .to_list()
        )
    finally:
        await mongo.close()
    assert docs == [{"kind": "order.confirmed", "payload": {"order_id": order["id"], "total": "25.00"}}]

    # 7. the user cancels it: the API cancels through pg_data_service, whose outbox relays
    # order.cancelled; the worker records it beside the confirmation, the bot tells the user
    async with httpx.AsyncClient(base_url=api_url, timeout=10, headers=dict(api.headers)) as api:
        cancelled = (await api.post(f"/orders/{order['id']}/cancellation")).json()
        assert (cancelled["status"], cancelled["cancellation_reason"]) == ("cancelled", "customer")
        assert (await telegram.replies(CHAT, 4, timeout=15))[3] == (
            f"Your order #{order['id']} is cancelled, as you asked."
        )

        async def recorded() -> list[str] | None:
            kinds = [a["kind"] for a in (await api.get(f"/users/{user['id']}/activity")).json()["items"]]
            return kinds if len(kinds) == 2 else None

        kinds = await eventually(recorded, "the cancellation recorded", timeout=20, interval=0.2)
        assert kinds == ["order.cancelled", "order.confirmed"]  # newest first: what happened, and its undoing
