"""Users and orders in PostgreSQL. The only module of the service that writes SQL.

Routes speak pydantic contracts; this module turns them into rows and back, and
raises :class:`~shared.problems.ProblemError` for the outcomes a client must handle
(not found, stale version, conflict).
"""

from __future__ import annotations

from decimal import Decimal
from typing import NoReturn

from sqlalchemy import exists, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pg_data_service.tables import Base, OrderRow, OutboxRow, UserRow
from shared.contracts.pages import InvalidCursor, Page, decode_cursor, page_of
from shared.contracts.pg import (
    ALLOWED_TRANSITIONS,
    CancellationReason,
    Order,
    OrderCreate,
    OrderStatus,
    User,
    UserCreate,
    UserUpdate,
)
from shared.events.envelope import Event, OrderCancelled, OrderPlaced, new_event
from shared.observability.tracing import trace_headers
from shared.problems import ProblemError

# Core statements on these tables where a write is hot: no unit of work, no identity map.
ORDERS, OUTBOX = (Base.metadata.tables[row.__tablename__] for row in (OrderRow, OutboxRow))


FOREIGN_KEY_VIOLATION = "23503"  # orders.user_id references users.id


def _user(row: UserRow) -> User:
    return User.model_validate(row, from_attributes=True)


def _order(row: OrderRow) -> Order:
    return Order.model_validate(row, from_attributes=True)


def _after(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        (last_id,) = decode_cursor(cursor, int)
    except InvalidCursor as error:
        raise ProblemError(422, str(error)) from error
    return int(last_id)


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, data: UserCreate) -> User:
        row = UserRow(
            email=data.email.lower(), name=data.name, telegram_chat_id=data.telegram_chat_id, version=1
        )
        self.session.add(row)
        try:
            await self.session.flush()
        except IntegrityError as error:
            raise ProblemError(409, "a user with this email or telegram_chat_id exists") from error
        await self.session.refresh(row)
        return _user(row)

    async def get(self, user_id: int) -> User:
        row = await self.session.get(UserRow, user_id)
        if row is None:
            raise ProblemError(404, f"user {user_id} does not exist")
        return _user(row)

    async def list(
        self, *, limit: int, cursor: str | None, email: str | None, telegram_chat_id: int | None
    ) -> Page[User]:
        query = select(UserRow).order_by(UserRow.id.desc()).limit(limit + 1)
        if (after := _after(cursor)) is not None:
            query = query.where(UserRow.id < after)
        if email is not None:
            query = query.where(UserRow.email == email.lower())
        if telegram_chat_id is not None:
            query = query.where(UserRow.telegram_chat_id == telegram_chat_id)
        rows = list((await self.session.scalars(query)).all())
        return page_of([_user(row) for row in rows], limit, key=lambda user: (user.id,))

    # --8<-- [start:update]
    async def update(self, user_id: int, change: UserUpdate, expected_version: int) -> User:
        """Apply ``change`` only if the row is still at ``expected_version`` (else 412)."""
        values = change.model_dump(exclude_unset=True)
        statement = (
            update(UserRow)
            .where(UserRow.id == user_id, UserRow.version == expected_version)
            .values(**values, version=UserRow.version + 1)
            .returning(UserRow)
        )
        try:
            row = (await self.session.execute(statement)).scalar_one_or_none()
        except IntegrityError as error:
            raise ProblemError(409, "another user has this telegram_chat_id") from error
        if row is None:
            await missing_or_stale(self.session, UserRow, user_id, expected_version)
        return _user(row)
        # --8<-- [end:update]


async def missing_or_stale(
    session: AsyncSession, table: type[UserRow | OrderRow], id_: int, version: int
) -> NoReturn:
    """An update matched no row: say whether the row is gone (404) or has moved on (412)."""
    name = table.__tablename__.removesuffix("s")
    if not await session.scalar(select(exists().where(table.id == id_))):
        raise ProblemError(404, f"{name} {id_} does not exist")
    raise ProblemError(412, f"{name} {id_} is no longer at version {version}")


class OrderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --8<-- [start:create-order]
    async def create_order(self, data: OrderCreate) -> Order:
        """Insert the order and its ``order.placed`` event in the caller's transaction: both or neither.

        Two statements, no ORM unit of work: the write is the hot path, and ``RETURNING`` gives back
        what a flush and a refresh would have read. The user's existence is the foreign key's to
        check, in the same round trip as the insert."""
        order = {
            "user_id": data.user_id,
            "items": [item.model_dump(mode="json") for item in data.items],
            "total": data.total.quantize(Decimal("0.01")),
            "status": OrderStatus.placed.value,
            "version": 1,
        }
        try:
            row = (await self.session.execute(insert(ORDERS).values(order).returning(*ORDERS.c))).one()
        except IntegrityError as error:
            if getattr(error.orig, "sqlstate", None) != FOREIGN_KEY_VIOLATION:
                raise  # any other constraint is not the caller's unknown user: 409 by the app's handler
            raise ProblemError(
                422, f"user {data.user_id} does not exist", errors=[{"loc": ["body", "user_id"]}]
            ) from error
        await self.announce(OrderPlaced(order_id=row.id, user_id=row.user_id, total=row.total))
        return Order.model_validate(row._asdict())

    async def announce(self, data: Event) -> None:
        """Queue ``data`` in the outbox, in this transaction: the relay publishes it after commit."""
        event = new_event(data, trace=trace_headers())
        envelope = event.model_dump(mode="json")
        await self.session.execute(
            insert(OUTBOX).values(event_id=event.id, event_type=event.type, envelope=envelope)
        )
        # --8<-- [end:create-order]

    async def get_order(self, order_id: int) -> Order:
        row = await self.session.get(OrderRow, order_id)
        if row is None:
            raise ProblemError(404, f"order {order_id} does not exist")
        return _order(row)

    # --8<-- [start:keyset]
    async def list_orders(
        self, *, limit: int, cursor: str | None, user_id: int | None, status: OrderStatus | None
    ) -> Page[Order]:
        """Newest first, ``limit`` at a time; the cursor is the last id seen (keyset pagination)."""
        query = select(OrderRow).order_by(OrderRow.id.desc()).limit(limit + 1)
        if (after := _after(cursor)) is not None:
            query = query.where(OrderRow.id < after)
        if user_id is not None:
            query = query.where(OrderRow.user_id == user_id)
        if status is not None:
            query = query.where(OrderRow.status == status.value)
        rows = list((await self.session.scalars(query)).all())
        return page_of([_order(row) for row in rows], limit, key=lambda order: (order.id,))
        # --8<-- [end:keyset]

    # --8<-- [start:cancel]
    async def cancel(
        self, order_id: int, reason: CancellationReason, expected_version: int | None = None
    ) -> Order:
        """Cancel a placed or confirmed order (only at ``expected_version``, if given) and announce
        it, once: a cancelled order is answered as it is, so a retry, or two callers at once, change
        nothing more and announce nothing more."""
        statement = (
            update(OrderRow)
            # Two cancels at once: the second waits for the first's row lock, then finds the row
            # cancelled and matches nothing (PostgreSQL re-checks the WHERE after the wait).
            .where(OrderRow.id == order_id, OrderRow.status != OrderStatus.cancelled.value)
            .values(status=OrderStatus.cancelled.value, cancellation_reason=reason.value)
            .values(version=OrderRow.version + 1)
            .returning(OrderRow)
        )
        if expected_version is not None:
            statement = statement.where(OrderRow.version == expected_version)
        row = (await self.session.execute(statement)).scalar_one_or_none()
        if row is None:
            current = await self.get_order(order_id)  # 404 if there is no such order
            if current.status == OrderStatus.cancelled:
                return current
            raise ProblemError(412, f"order {order_id} is no longer at version {expected_version}")
        await self.announce(OrderCancelled(order_id=row.id, user_id=row.user_id, reason=reason.value))
        return _order(row)
        # --8<-- [end:cancel]

    async def set_status(self, order_id: int, status: OrderStatus, expected_version: int) -> Order:
        current = await self.get_order(order_id)
        if current.version != expected_version:
            raise ProblemError(412, f"order {order_id} is no longer at version {expected_version}")
        if status not in ALLOWED_TRANSITIONS[current.status]:
            raise ProblemError(409, f"order {order_id} cannot go from {current.status} to {status}")
        cancelled = status == OrderStatus.cancelled
        support = CancellationReason.support.value  # an operator's cancel, announced like any other
        statement = (
            update(OrderRow)
            .where(OrderRow.id == order_id, OrderRow.version == expected_version)
            .values(status=status.value, version=OrderRow.version + 1)
            .values(cancellation_reason=support if cancelled else None)
            .returning(OrderRow)
        )
        row = (await self.session.execute(statement)).scalar_one_or_none()
        if row is None:
            await missing_or_stale(self.session, OrderRow, order_id, expected_version)
        if cancelled:
            await self.announce(OrderCancelled(order_id=row.id, user_id=row.user_id, reason=support))
        return _order(row)
