"""A breaking change to ``order.placed``, shipped while v1 and v2 are both in flight.

v2 carries the total as integer minor units with its currency (``{"total_minor": 2625,
"currency": "EUR"}``) instead of a decimal string (``{"total": "26.25"}``): a JavaScript
consumer reads no decimal, and a second currency would need one. Renaming a field is a
breaking change, so it is a new version, and it ships in this order:

1. readers that read both: :data:`READERS_V2` (v2 as the current model, an upcast for v1);
2. once every reader runs it, the writer starts writing v2;
3. once no v1 is left in any queue, outbox or parking lot, the upcast can go.

The reference system's events are all at v1: this module is the next step, tested against
the real broker with the consumer of today (:data:`~shared.events.envelope.EVENTS`) and
tomorrow (:data:`READERS_V2`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import Field

from shared.events.envelope import EVENTS, Event, Registry


# --8<-- [start:v2]
class OrderPlacedV2(Event):
    TYPE = "order.placed"
    VERSION = 2
    order_id: int
    user_id: int
    total_minor: Annotated[
        int, Field(ge=0, le=10**14)
    ]  # cents, as PostgreSQL keeps the total: numeric(14, 2)
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


def order_placed_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v1's data as v2's: what a v1 event in flight meant, said the v2 way. Every v1 was in euros."""
    v2 = {key: value for key, value in data.items() if key != "total"}  # keep what a newer v1 added
    cents = Decimal(data["total"]).scaleb(2)
    if cents != cents.to_integral_value():  # v1 totals are whole cents: anything else is not a v1
        raise ValueError(f"total {data['total']!r} is not a whole number of cents")
    return v2 | {"total_minor": int(cents), "currency": "EUR"}


READERS_V2 = Registry(
    EVENTS.current | {OrderPlacedV2.TYPE: OrderPlacedV2},
    EVENTS.upcasts | {(OrderPlacedV2.TYPE, 1): order_placed_v1_to_v2},
)
# --8<-- [end:v2]
