"""Versioned event envelopes, and the checks a consumer runs before it trusts a message.

Every event travels as the same JSON envelope: an ``id`` (the idempotency key of
everything it causes), a ``type`` and ``version`` (what ``data`` means), when it
happened, the trace context, and the ``data`` itself.

```py
from shared.events.envelope import OrderPlaced, new_event

event = new_event(OrderPlaced(order_id=7, user_id=1, total="26.25"))
print(event.type, event.version, event.data)
#> order.placed 1 {'order_id': 7, 'user_id': 1, 'total': '26.25'}
```
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_BODY_BYTES = 64 * 1024


# --8<-- [start:events]
class Event(BaseModel):
    """The data of one event type at one version."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1


class OrderPlaced(Event):
    TYPE = "order.placed"
    order_id: int
    user_id: int
    total: Decimal


class OrderConfirmed(Event):
    TYPE = "order.confirmed"
    order_id: int
    user_id: int


# --8<-- [start:order-cancelled]
class OrderCancelled(Event):
    TYPE = "order.cancelled"
    order_id: int
    user_id: int
    reason: str  # a CancellationReason value; a reader that does not know it still tells the user


# --8<-- [end:order-cancelled]


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    version: int
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    trace: dict[str, str] = Field(default_factory=dict)
    data: dict[str, Any]
    # --8<-- [end:events]


# --8<-- [start:new-event]
def new_event(
    data: Event, trace: dict[str, str] | None = None, caused_by: Envelope | None = None
) -> Envelope:
    """Wrap ``data`` in an envelope. An event derived from another (``caused_by``) gets an id
    derived from the cause's id and its own type: handling the same cause twice publishes the
    same event twice, and consumers de-duplicate it by id. An event with no cause gets a random id.
    """
    event_id = uuid.uuid5(caused_by.id, data.TYPE) if caused_by is not None else uuid.uuid4()
    data_json = data.model_dump(mode="json")
    return Envelope(id=event_id, type=data.TYPE, version=data.VERSION, data=data_json, trace=trace or {})
    # --8<-- [end:new-event]


class Rejected(Exception):
    """A message no retry can fix: it goes to the parking lot with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --8<-- [start:registry]
type Upcast = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Registry:
    """What a reader understands: the current model of each event type, and the upcasts that bring
    an older version's data up to it (``(type, n)`` turns version n's data into version n + 1's)."""

    current: dict[str, type[Event]]
    upcasts: dict[tuple[str, int], Upcast] = field(default_factory=dict)

    def read(self, envelope: Envelope) -> Event:
        """The event's data as the current model; :class:`Rejected` if this reader cannot read it."""
        kind = self.current.get(envelope.type)
        if kind is None:
            raise Rejected(f"unknown event {envelope.type!r}")
        if envelope.version > kind.VERSION:  # parked, not lost: replayed once this reader is upgraded
            raise Rejected(
                f"{envelope.type} v{envelope.version} is newer than this reader (v{kind.VERSION}): "
                "deploy readers before writers"
            )
        data, version = envelope.data, envelope.version
        try:
            while version < kind.VERSION:
                upcast = self.upcasts.get((envelope.type, version))
                if upcast is None:
                    raise Rejected(
                        f"{envelope.type} v{version} is no longer read (no upcast to v{version + 1})"
                    )
                data, version = upcast(data), version + 1
            # A tolerant reader: fields it does not know (a newer writer's additions) are ignored.
            return kind.model_validate(data, extra="ignore")
        except (ValidationError, ValueError, KeyError, TypeError, ArithmeticError) as error:
            detail = f"{error.error_count()} error(s)" if isinstance(error, ValidationError) else repr(error)
            raise Rejected(f"invalid {envelope.type} v{envelope.version} data: {detail[:200]}") from None


EVENTS = Registry({e.TYPE: e for e in (OrderPlaced, OrderConfirmed, OrderCancelled)})
# --8<-- [end:registry]


# --8<-- [start:decode]
def decode(body: bytes, content_type: str | None, registry: Registry = EVENTS) -> tuple[Envelope, Event]:
    """Check a message from the outside world; raise :class:`Rejected` saying why it is unusable."""
    if content_type != "application/json":
        raise Rejected(f"content type {content_type!r} is not application/json")
    if len(body) > MAX_BODY_BYTES:
        raise Rejected(f"body of {len(body)} bytes is over {MAX_BODY_BYTES}")
    try:
        # Envelope attributes a newer writer added are ignored here too (the relay, which
        # re-serialises the envelope, stays strict: it must not drop them).
        envelope = Envelope.model_validate(json.loads(body), extra="ignore")
    except (ValueError, ValidationError) as error:
        raise Rejected(f"not an event envelope: {str(error).splitlines()[0][:200]}") from None
    return envelope, registry.read(envelope)
    # --8<-- [end:decode]
