"""The outbox relay: publish unsent outbox rows with confirms, then mark them sent.

Rows are claimed with ``FOR UPDATE SKIP LOCKED``, so several relays (one per replica)
share the work and never publish the same row in the normal case. A row is marked sent
only after the broker confirmed it; if the process dies between the confirm and the
commit, the row is published again after restart. That is the one duplicate the
outbox allows, and why consumers are idempotent by event id.

Order is kept per order, and only per order: a relay claims a row only when no earlier row
of the same order is unsent, so concurrent relays cannot overtake one another within an
order, and a quarantined row holds back the later events of its order until it is replayed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from aio_pika.exceptions import PublishError
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from prometheus_client import Counter, Gauge
from pydantic import ValidationError
from sqlalchemy import ColumnElement, Exists, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from pg_data_service.tables import OutboxRow
from shared.events.envelope import Envelope
from shared.events.publisher import EventPublisher, NotPublished, Unpublishable
from shared.lifecycle import pause
from shared.observability.tracing import context_from

log = logging.getLogger(__name__)
PUBLISHED = Counter("outbox_published", "Outbox events published and confirmed")
FAILED = Counter("outbox_publish_failures", "Outbox publishes the broker did not answer (retried later)")
BACKLOG = Gauge("outbox_backlog", "Unsent outbox rows the relay should be publishing")
OLDEST = Gauge("outbox_oldest_unsent_age_seconds", "Age of the oldest of them (0: none)")
QUARANTINED = Gauge(
    "outbox_quarantined", "Unsent outbox rows waiting for an operator: quarantined, or behind one"
)
TRACER = trace.get_tracer(__name__)


# --8<-- [start:order]
earlier = aliased(OutboxRow)


def behind(*matching: ColumnElement[bool]) -> Exists:
    """True for a row with an earlier unsent row of the same order (that is also ``matching``)."""
    return exists().where(
        earlier.order_id == OutboxRow.order_id,
        earlier.id < OutboxRow.id,
        earlier.published_at.is_(None),
        *matching,
    )
    # --8<-- [end:order]


# --8<-- [start:relay-once]
async def relay_once(
    sessions: async_sessionmaker[AsyncSession], publisher: EventPublisher, batch: int = 100
) -> int:
    """Publish up to ``batch`` events, oldest first and one per order; return how many were confirmed.

    The batch holds at most one row of each order (``behind``), so its publishes may overlap without
    reordering any order's events: they are all sent at once and each waits for its own confirm, which
    takes one round trip for the batch instead of one per event. A row that can never be published is
    quarantined with the reason; a row the broker did not answer stays for the next round.
    """
    async with sessions() as session, session.begin():
        with suppress_instrumentation():  # polling is not a request: no trace per poll
            rows = (
                await session.scalars(
                    select(OutboxRow)
                    .where(OutboxRow.published_at.is_(None), OutboxRow.quarantined_at.is_(None))
                    .where(~behind())  # an order's next event waits until the one before it is sent
                    .order_by(OutboxRow.id)
                    .limit(batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
        readable = [(row, event) for row in rows if (event := readable_event(row)) is not None]
        outcomes = await asyncio.gather(*(publish(publisher, row, event) for row, event in readable))
        sent = 0
        for (row, _), outcome in zip(readable, outcomes, strict=True):
            if outcome is None:
                row.published_at = datetime.now(UTC)
                sent += 1
            elif outcome is not UNANSWERED:
                quarantine(row, outcome)
        if unanswered := outcomes.count(UNANSWERED):
            FAILED.inc(unanswered)
            log.warning(
                "outbox: the broker did not confirm %d events; they wait for the next round", unanswered
            )
        with suppress_instrumentation():
            await session.flush()
        PUBLISHED.inc(sent)
        return sent
        # --8<-- [end:relay-once]


UNANSWERED = "unanswered"


def readable_event(row: OutboxRow) -> Envelope | None:
    try:
        return Envelope.model_validate(row.envelope)
    except ValidationError as error:  # e.g. a field a newer version added: never readable here
        quarantine(row, f"unreadable envelope: {errors_of(error)}")
        return None


async def publish(publisher: EventPublisher, row: OutboxRow, event: Envelope) -> str | None:
    """Publish one row's event in the trace of the request that wrote it. ``None`` once confirmed,
    :data:`UNANSWERED` when the broker did not answer (try again later), else why it never will be."""
    carried = context_from(event.trace, f"outbox row {row.id}")
    try:
        with TRACER.start_as_current_span(f"outbox relay {event.type}", context=carried):
            await publisher.publish(event)
    except Unpublishable as error:  # too big for any consumer: it never will be
        return f"unpublishable: {error}"
    except NotPublished as error:
        if isinstance(error.__cause__, PublishError):  # returned: no queue is bound for it
            return f"refused by the broker: {error}"
        return UNANSWERED
    return None


def quarantine(row: OutboxRow, reason: str) -> None:
    """Take ``row`` out of the relay's way, with the reason an operator reads before replaying it."""
    log.error("outbox: row %d (%s %s) quarantined: %s", row.id, row.event_type, row.event_id, reason)
    row.quarantined_at = datetime.now(UTC)
    row.quarantine_reason = reason[:1000]


def errors_of(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())


# --8<-- [start:relay-loop]
async def run_relay(
    sessions: async_sessionmaker[AsyncSession],
    publisher: EventPublisher,
    stop: asyncio.Event,
    idle_seconds: float = 0.2,
    batch: int = 100,
) -> None:
    """Relay until ``stop``: straight on while events leave, a short sleep when idle or failing."""
    while not stop.is_set():
        sent = 0
        try:
            sent = await relay_once(sessions, publisher, batch)
        except Exception:  # the database blipped: the rows are safe, try again shortly
            log.exception("outbox relay round failed")
        if not sent:
            await pause(stop, idle_seconds)
            # --8<-- [end:relay-loop]


@dataclass(frozen=True)
class Measured:
    backlog: int
    oldest_age_seconds: float
    quarantined: int


# --8<-- [start:measure]
async def measure(sessions: async_sessionmaker[AsyncSession]) -> Measured:
    """Count the unsent rows, as the gauges show them."""
    waiting = OutboxRow.quarantined_at.is_not(None) | behind(earlier.quarantined_at.is_not(None))
    async with sessions() as session:
        with suppress_instrumentation():
            backlog, oldest, quarantined = (
                await session.execute(
                    select(
                        func.count().filter(~waiting),
                        func.min(OutboxRow.created_at).filter(~waiting),
                        func.count().filter(waiting),
                    ).where(OutboxRow.published_at.is_(None))
                )
            ).one()
    age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
    BACKLOG.set(backlog)
    OLDEST.set(age)
    QUARANTINED.set(quarantined)
    return Measured(backlog, age, quarantined)


async def watch_outbox(
    sessions: async_sessionmaker[AsyncSession], stop: asyncio.Event, every: float = 5.0
) -> None:
    """Measure every ``every`` seconds on a schedule of its own: a relay stuck on a failure still
    shows its backlog growing, which a gauge set after each successful round never would."""
    while not stop.is_set():
        try:
            await measure(sessions)
        except Exception:  # the database blipped: the gauges keep their last values
            log.exception("outbox: measuring the backlog failed")
        await pause(stop, every)
        # --8<-- [end:measure]
