"""The worker's event handlers: ``order.placed`` in, the order confirmed, ``order.confirmed`` out;
``order.cancelled`` in, the cancellation recorded in the user's activity."""

from __future__ import annotations

from shared.clients.errors import NotFound
from shared.clients.mongo import MongoDataClient
from shared.clients.pg import PgDataClient
from shared.contracts.pg import Order, OrderStatus
from shared.events.consumer import Handler, Permanent
from shared.events.envelope import Envelope, Event, OrderCancelled, OrderConfirmed, OrderPlaced, new_event
from shared.events.publisher import EventPublisher
from shared.observability.tracing import trace_headers
from worker_service.jobs import confirm, withdraw_if_never_confirmed


async def order_of(pg: PgDataClient, order_id: int) -> Order:
    """The order an event is about; one that does not exist is parked, as no retry brings it."""
    try:
        return await pg.get_order(order_id)
    except NotFound as error:
        raise Permanent(f"order {order_id} does not exist") from error


# --8<-- [start:handler]
def on_order_placed(pg: PgDataClient, mongo: MongoDataClient, publisher: EventPublisher) -> Handler:
    async def handle(event: Envelope, data: Event) -> None:
        assert isinstance(data, OrderPlaced)
        order = await order_of(pg, data.order_id)
        if order.status == OrderStatus.cancelled:  # nothing to confirm, nothing to announce; but a
            await withdraw_if_never_confirmed(mongo, order)  # first try may have died half-way
            return
        if order.status == OrderStatus.placed and not await confirm(pg, mongo, order):
            order = await pg.get_order(order.id)  # changed under us: announce only a real confirmation
            if order.status != OrderStatus.confirmed:
                return
        # Publish before the consumer acks: a crash in between repeats this whole handler, which
        # is safe because every step above is idempotent and the repeat publishes the same event
        # id (derived from this event's), which the bot de-duplicates.
        # The trace context of *this* hop, so the next consumer's spans are children of ours.
        confirmed = new_event(
            OrderConfirmed(order_id=order.id, user_id=order.user_id), trace=trace_headers(), caused_by=event
        )
        await publisher.publish(confirmed, correlation_id=str(event.id))

    return handle
    # --8<-- [end:handler]


# --8<-- [start:cancelled]
def on_order_cancelled(pg: PgDataClient, mongo: MongoDataClient) -> Handler:
    """Record the cancellation in the user's activity; if the order was never confirmed, withdraw
    a confirmation record a worker may have left behind."""

    async def handle(event: Envelope, data: Event) -> None:
        assert isinstance(data, OrderCancelled)
        await mongo.append_activity(
            data.user_id,
            "order.cancelled",
            {"order_id": data.order_id, "reason": data.reason},
            idempotency_key=f"order-cancelled-{data.order_id}",
        )
        await withdraw_if_never_confirmed(mongo, await order_of(pg, data.order_id))

    return handle
    # --8<-- [end:cancelled]
