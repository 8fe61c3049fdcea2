"""The outbox relay: publish unsent outbox rows with confirms, then mark them sent.

Rows are claimed with ``FOR UPDATE SKIP LOCKED``, so several relays (one per replica)
share the work and never publish the same row in the normal case. A row is marked sent
only after the broker confirmed it; if the process dies between the confirm and the
commit, the row is published again after restart. That is the one duplicate the
outbox allows, and why consumers are idempotent by event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from prometheus_client import Counter, Gauge
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pg_data_service.tables import OutboxRow
from shared.events.envelope import Envelope
from shared.events.publisher import EventPublisher, NotPublished
from shared.observability.tracing import context_from

log = logging.getLogger(__name__)
PUBLISHED = Counter("outbox_published", "Outbox events published and confirmed")
FAILED = Counter("outbox_publish_failures", "Outbox publishes not confirmed (retried later)")
BACKLOG = Gauge("outbox_backlog", "Unsent outbox rows, as of the relay's last look")
OLDEST = Gauge("outbox_oldest_unsent_age_seconds", "Age of the oldest unsent outbox row (0: none)")
TRACER = trace.get_tracer(__name__)


# --8<-- [start:relay-once]
async def relay_once(
    sessions: async_sessionmaker[AsyncSession], publisher: EventPublisher, batch: int = 100
) -> int:
    """Publish up to ``batch`` unsent events, oldest first; return how many were confirmed."""
    async with sessions() as session, session.begin():
        with suppress_instrumentation():  # polling is not a request: no trace per poll
            rows = (
                await session.scalars(
                    select(OutboxRow)
                    .where(OutboxRow.published_at.is_(None))
                    .order_by(OutboxRow.id)
                    .limit(batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
        sent: list[int] = []
        for row in rows:
            event = Envelope.model_validate(row.envelope)
            # Continue the trace of the request that wrote the row, not the relay's own.
            carried = context_from(event.trace, f"outbox row {row.id}")
            try:
                with TRACER.start_as_current_span(f"outbox relay {event.type}", context=carried):
                    await publisher.publish(event)
            except NotPublished as error:
                FAILED.inc()
                log.warning("outbox: %s; %d sent in this batch, the rest wait", error, len(sent))
                break  # keep order: later rows wait for this one
            sent.append(row.id)
        if sent:
            with suppress_instrumentation():
                await session.execute(
                    update(OutboxRow).where(OutboxRow.id.in_(sent)).values(published_at=datetime.now(UTC))
                )
        PUBLISHED.inc(len(sent))
        return len(sent)
        # --8<-- [end:relay-once]


async def backlog(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        with suppress_instrumentation():
            count, oldest = (
                await session.execute(
                    select(func.count(), func.min(OutboxRow.created_at)).where(
                        OutboxRow.published_at.is_(None)
                    )
                )
            ).one()
    BACKLOG.set(count)
    OLDEST.set((datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0)
    return int(count)


# --8<-- [start:relay-loop]
async def run_relay(
    sessions: async_sessionmaker[AsyncSession],
    publisher: EventPublisher,
    stop: asyncio.Event,
    idle_seconds: float = 0.2,
    batch: int = 100,
) -> None:
    """Relay until ``stop``: straight on while there is work, a short sleep when idle or failing."""
    while not stop.is_set():
        sent = 0
        try:
            sent = await relay_once(sessions, publisher, batch)
            if sent < batch:
                await backlog(sessions)
        except Exception:  # the database blipped: the rows are safe, try again shortly
            log.exception("outbox relay round failed")
        if sent < batch:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=idle_seconds)
                # --8<-- [end:relay-loop]
