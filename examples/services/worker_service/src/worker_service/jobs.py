"""The worker's periodic job: confirm placed orders, through the data services only.

The order of the two writes is deliberate. The activity record is appended first,
with an idempotency key; the order is confirmed second, with ``If-Match``. If the
worker dies between the two, the order is still ``placed``, the next run repeats
both steps, and the key turns the repeated append into a no-op. The other order
(confirm, then append) would lose the activity record on such a crash.

The price of that order is a compensation: when the confirm is refused because the user
cancelled in between, the record already appended is withdrawn by a second record (the
activity log is append-only: what happened stays, and so does its undoing).

The job is also the saga's timer: an order still placed ``confirm_within`` after it was
placed is cancelled, and its user told, instead of waiting on for an outage to end.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter

from shared.clients.errors import Conflict
from shared.clients.mongo import MongoDataClient
from shared.clients.pg import PgDataClient
from shared.contracts.pg import CancellationReason, Order, OrderStatus

log = logging.getLogger(__name__)
CONFIRMED = Counter("worker_orders_confirmed", "Orders the worker confirmed")
SKIPPED = Counter("worker_orders_skipped", "Orders changed by someone else while the worker confirmed them")
WITHDRAWN = Counter("worker_confirmations_withdrawn", "Compensations run, repeats included")
TIMED_OUT = Counter("worker_orders_timed_out", "Placed orders cancelled for not being confirmed in time")


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
        await withdraw_if_never_confirmed(mongo, await pg.get_order(order.id))
        return False
    CONFIRMED.inc()
    return True
    # --8<-- [end:confirm]


# --8<-- [start:compensate]
def never_confirmed(order: Order) -> bool:
    """Cancelled straight from placed. An order is placed at version 1 and each write moves it on by
    one, so cancelled at version 2 is placed → cancelled; via confirmed it would be version 3."""
    return order.status == OrderStatus.cancelled and order.version == 2


async def withdraw_if_never_confirmed(mongo: MongoDataClient, order: Order) -> None:
    """The compensation of :func:`confirm`'s first step, for an order cancelled before it was
    confirmed: if the record was appended (the confirm was refused, or a worker died between the
    two steps), a second record withdraws it. Found by its key, withdrawn under a key: safe to
    run from every path that meets such an order, as often as it does."""
    if not never_confirmed(order) or await mongo.find_activity(f"order-confirmed-{order.id}") is None:
        return
    await mongo.append_activity(
        order.user_id,
        "order.confirmation_withdrawn",
        {"order_id": order.id, "reason": str(order.cancellation_reason)},
        idempotency_key=f"order-confirmation-withdrawn-{order.id}",
    )
    WITHDRAWN.inc()
    # --8<-- [end:compensate]


# --8<-- [start:timeout]
async def cancel_late_orders(pg: PgDataClient, confirm_within: timedelta) -> int:
    """The saga's timeout: cancel each order still placed ``confirm_within`` after it was placed.

    ``If-Match`` with the version read: an order confirmed since the listing is left confirmed.
    The clock compared is this process's against PostgreSQL's ``now()``: with NTP, milliseconds
    apart, against a deadline of minutes.
    """
    deadline, cursor, cancelled = datetime.now(UTC) - confirm_within, None, 0
    while True:  # every placed order, newest first, a page at a time (keyset: no page is skipped)
        page = await pg.list_orders(status=OrderStatus.placed, limit=100, cursor=cursor)
        for order in (o for o in page.items if o.created_at < deadline):
            try:
                now = await pg.cancel_order(order.id, CancellationReason.not_confirmed_in_time, order.version)
            except Conflict:
                continue  # confirmed meanwhile: the saga ended well after all
            if now.cancellation_reason == CancellationReason.not_confirmed_in_time:  # not the user's
                TIMED_OUT.inc()
                cancelled += 1
        if page.next_cursor is None:
            return cancelled
        cursor = page.next_cursor


async def confirm_placed_orders(
    pg: PgDataClient,
    mongo: MongoDataClient,
    batch_size: int = 20,
    confirm_within: timedelta = timedelta(minutes=15),
) -> int:
    """Cancel the late orders first (that needs PostgreSQL alone, so it works through a MongoDB
    outage); then confirm up to ``batch_size`` placed orders. Return how many were confirmed."""
    await cancel_late_orders(pg, confirm_within)
    page = await pg.list_orders(status=OrderStatus.placed, limit=batch_size)
    return sum([await confirm(pg, mongo, order) for order in page.items])
    # --8<-- [end:timeout]
