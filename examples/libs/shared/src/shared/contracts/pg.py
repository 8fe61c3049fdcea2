"""Users and orders: what ``pg_data_service`` accepts and returns."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field

from shared.contracts.ids import Id
from shared.contracts.text import printable

type Name = Annotated[str, Field(min_length=1, max_length=120), AfterValidator(printable)]
type ChatId = Annotated[int, Field(gt=0, lt=2**52, description="Telegram chat id")]


class Strict(BaseModel):
    """Unknown fields are an error, not silently dropped: a typo must not pass."""

    model_config = ConfigDict(extra="forbid")


# --8<-- [start:users]
class UserCreate(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"email": "alice@example.org", "name": "Alice", "telegram_chat_id": None}]
        }
    )

    email: EmailStr
    name: Name
    telegram_chat_id: ChatId | None = None


class UserUpdate(Strict):
    """A partial update: only the fields given change."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Alice B."}]})

    name: Name | None = None
    telegram_chat_id: ChatId | None = None


class User(BaseModel):
    id: int
    email: str
    name: str
    telegram_chat_id: int | None
    created_at: datetime
    version: int
    # --8<-- [end:users]


class LinkCode(BaseModel):
    """A one-time code that links a Telegram chat to a user: the user sends ``/link <code>`` to the bot."""

    code: str
    expires_at: datetime


class TelegramLink(Strict):
    """The bot redeeming a code for the chat it came from."""

    code: Annotated[str, Field(min_length=4, max_length=32, pattern=r"^[A-Za-z0-9]+$")]
    chat_id: ChatId


class OrderStatus(StrEnum):
    placed = "placed"
    confirmed = "confirmed"
    cancelled = "cancelled"


# placed → confirmed → cancelled, and placed → cancelled; nothing comes back from cancelled.
ALLOWED_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.placed: frozenset({OrderStatus.confirmed, OrderStatus.cancelled}),
    OrderStatus.confirmed: frozenset({OrderStatus.cancelled}),
    OrderStatus.cancelled: frozenset(),
}


# --8<-- [start:orders]
class OrderItem(Strict):
    sku: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    quantity: Annotated[int, Field(ge=1, le=1000)]
    unit_price: Annotated[Decimal, Field(gt=0, le=1_000_000, max_digits=12, decimal_places=2)]


class OrderCreate(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"user_id": 1, "items": [{"sku": "book-1", "quantity": 2, "unit_price": "12.50"}]}]
        }
    )

    user_id: Id
    items: Annotated[list[OrderItem], Field(min_length=1, max_length=50)]

    @property
    def total(self) -> Decimal:
        return sum((item.unit_price * item.quantity for item in self.items), Decimal("0"))


# --8<-- [start:cancellation]
class CancellationReason(StrEnum):
    customer = "customer"  # the user asked
    not_confirmed_in_time = "not_confirmed_in_time"  # the saga's timeout (worker_service.jobs)
    support = "support"  # an operator, through PATCH /orders/{id}


class OrderCancellation(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "customer"}]})

    reason: CancellationReason
    # --8<-- [end:cancellation]


class OrderStatusUpdate(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "confirmed"}]})

    status: OrderStatus


class Order(BaseModel):
    id: int
    user_id: int
    items: list[OrderItem]
    total: Decimal
    status: OrderStatus
    created_at: datetime
    version: int
    # Set when, and only when, cancelled. A string, not the enum: a reason added later must not make
    # this release's clients fail to read the order (the request, OrderCancellation, is strict).
    cancellation_reason: str | None = None
    # --8<-- [end:orders]
