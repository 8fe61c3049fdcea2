"""The worker's periodic job: confirm placed orders, through the data services only.

The order of the two writes is deliberate. The activity record is appended first,
with an idempotency key; the order is confirmed second, with ``If-Match``. If the
worker dies between the two, the order is still ``placed``, the next run repeats
both steps, and the key turns the repeated append into a no-op. The other order
(confirm, then append) would lose the activity record on such a crash.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter

from shared.clients.errors import Conflict
from shared.clients.mongo import MongoDataClient
from shared.clients.pg import PgDataClient
from shared.contracts.pg import Order, OrderStatus

log = logging.getLogger(__name__)
CONFIRMED = Counter("worker_orders_confirmed", "Orders the worker confirmed")
SKIPPED = Counter("worker_orders_skipped", "Orders changed by someone else while the worker confirmed them")


# --8<-- [start:confirm]
async def confirm(pg: PgDataClient, mongo: MongoDataClient, order: Order) -> bool:
    """Record and confirm one placed order; ``False`` if someone else changed it first."""
    await mongo.append_activity(
        order.user_id,
        "order.confirmed",
        {"order_id": order.id, "total": str(order.total)},
        # One key per order, whichever path (job or event) gets there first.
        idempotency_key=f"order-confirmed-{order.id}",
    )
    try:
        await pg.set_order_status(order.id, OrderStatus.confirmed, version=order.version)
    except Conflict:
        SKIPPED.inc()  # cancelled or confirmed meanwhile: its new state wins
        return False
    CONFIRMED.inc()
    return True


async def confirm_placed_orders(pg: PgDataClient, mongo: MongoDataClient, batch_size: int = 20) -> int:
    """Confirm up to ``batch_size`` placed orders; return how many this run confirmed."""
    page = await pg.list_orders(status=OrderStatus.placed, limit=batch_size)
    return sum([await confirm(pg, mongo, order) for order in page.items])
    # --8<-- [end:confirm]
