"""The tables pg_data_service owns. Alembic migrations create them; nothing else writes them."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Numeric,
    String,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


# --8<-- [start:tables]
class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    telegram_chat_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    version: Mapped[int] = mapped_column(default=1)


class TelegramLinkCodeRow(Base):
    """A one-time code that links a Telegram chat to a user; only its hash is kept."""

    __tablename__ = "telegram_link_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


CANCELLED_HAS_REASON = "(status = 'cancelled') = (cancellation_reason IS NOT NULL)"


class OrderRow(Base):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("status IN ('placed', 'confirmed', 'cancelled')", name="orders_status_valid"),
        CheckConstraint(CANCELLED_HAS_REASON, name="orders_cancelled_has_reason"),
        Index("orders_user_id_id", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    total: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    status: Mapped[str] = mapped_column(String(16), default="placed")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    version: Mapped[int] = mapped_column(default=1)
    cancellation_reason: Mapped[str | None] = mapped_column(String(32))


class IdempotencyRow(Base):
    """The first answer to a create, kept under the caller's key so a retry gets the same answer."""

    __tablename__ = "idempotency_keys"

    caller: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # --8<-- [end:tables]


# --8<-- [start:outbox-table]
class OutboxRow(Base):
    """An event waiting to be published, written in the transaction of the change it announces."""

    __tablename__ = "outbox"
    # The relay only ever looks at unsent rows: keep its indexes small.
    __table_args__ = (
        Index("outbox_unsent", "id", postgresql_where=text("published_at IS NULL")),
        Index("outbox_unsent_by_order", "order_id", "id", postgresql_where=text("published_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    envelope: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # The order the event is about, read from its data by PostgreSQL: no writer can forget it.
    order_id: Mapped[int | None] = mapped_column(
        BigInteger, Computed("(envelope #>> '{data,order_id}')::bigint", persisted=True)
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when the relay cannot publish the row (see outbox.py); cleared by an operator's replay.
    quarantined_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    quarantine_reason: Mapped[str | None] = mapped_column(Text)
    # --8<-- [end:outbox-table]
