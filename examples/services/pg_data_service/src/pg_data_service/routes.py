"""The HTTP API of pg_data_service: users and orders, with ETags, If-Match and idempotency keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pg_data_service import telegram_links
from pg_data_service.idempotency import create_once
from pg_data_service.reads import Reads
from pg_data_service.repository import OrderRepository, UserRepository
from shared.auth import requires
from shared.contracts.deadline import TIMEOUT_HEADER
from shared.contracts.ids import Id
from shared.contracts.pages import Cursor, Limit, Page
from shared.contracts.pg import (
    ChatId,
    LinkCode,
    Order,
    OrderCancellation,
    OrderCreate,
    OrderStatus,
    OrderStatusUpdate,
    TelegramLink,
    User,
    UserCreate,
    UserUpdate,
)
from shared.idempotency import IdempotencyKey
from shared.preconditions import ExpectedVersion, VersionIfAny, etag

type PathId = Annotated[Id, Path()]


# --8<-- [start:deadline]
MIN_BUDGET_MS = 1_000
type Budget = Annotated[int | None, Header(alias=TIMEOUT_HEADER, ge=1, le=3_600_000)]


async def session(request: Request, budget_ms: Budget = None) -> AsyncIterator[AsyncSession]:
    """A session per request; writes commit explicitly before the response is built.

    With the caller's time left, no statement of the request runs longer than that (but at least
    ``MIN_BUDGET_MS``, so a tiny value cannot fail a healthy request): PostgreSQL cancels it
    instead of finishing work for a caller that gave up.
    """
    async with request.app.state.sessions() as db:
        limit = request.app.state.settings.statement_timeout_ms
        if budget_ms is not None and budget_ms < limit:
            # Local to the request's transaction: the pooled connection keeps its own setting.
            ms = str(max(budget_ms, MIN_BUDGET_MS))
            await db.execute(select(func.set_config("statement_timeout", ms, True)))
        yield db
        # --8<-- [end:deadline]


type Session = Annotated[AsyncSession, Depends(session)]


# --8<-- [start:hot-reads]
async def reads(request: Request, budget_ms: Budget = None) -> Reads:
    """The hot reads, bounded by the statement timeout or the caller's time left (at least
    ``MIN_BUDGET_MS``), whichever is less."""
    limit_ms = request.app.state.settings.statement_timeout_ms
    if budget_ms is not None:
        limit_ms = min(limit_ms, max(budget_ms, MIN_BUDGET_MS))
    return Reads(request.app.state.read_pool, limit_ms / 1000)


type HotReads = Annotated[Reads, Depends(reads)]
# --8<-- [end:hot-reads]


def created(body: dict[str, Any], replayed: bool, collection: str) -> JSONResponse:
    """201 with the resource's ETag and Location; a replayed answer says so in a header."""
    headers = {"ETag": etag(body["version"]), "Location": f"/{collection}/{body['id']}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(body, status_code=201, headers=headers)


# Who calls, checked against the permissions in app.state.auth (401 or 403 otherwise).
type WritesUsers = Annotated[str, Depends(requires("users:write"))]
type WritesOrders = Annotated[str, Depends(requires("orders:write"))]
type CreatesLinks = Annotated[str, Depends(requires("links:create"))]  # the API, for a signed-in user
type RedeemsLinks = Annotated[str, Depends(requires("links:redeem"))]  # the bot, for the chat it serves
READS_USERS = Depends(requires("users:read"))
READS_ORDERS = Depends(requires("orders:read"))

router = APIRouter()


# --8<-- [start:create-user]
@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=User, tags=["users"])
async def create_user(
    data: UserCreate,
    db: Session,
    caller: WritesUsers,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    body, replayed = await create_once(
        db, caller, idempotency_key, data, lambda: UserRepository(db).create(data)
    )
    await db.commit()  # before answering: a 201 must mean the user is stored
    return created(body, replayed, "users")
    # --8<-- [end:create-user]


@router.get("/users/{user_id}", response_model=User, tags=["users"], dependencies=[READS_USERS])
async def get_user(user_id: PathId, db: HotReads, response: Response) -> User:
    user = await db.user(user_id)
    response.headers["ETag"] = etag(user.version)
    return user


@router.get("/users", response_model=Page[User], tags=["users"], dependencies=[READS_USERS])
async def list_users(
    db: Session,
    limit: Limit = 20,
    cursor: Cursor | None = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
    telegram_chat_id: Annotated[ChatId | None, Query()] = None,
) -> Page[User]:
    return await UserRepository(db).list(
        limit=limit, cursor=cursor, email=email, telegram_chat_id=telegram_chat_id
    )


@router.post(
    "/users/{user_id}/telegram-link-codes",
    status_code=status.HTTP_201_CREATED,
    response_model=LinkCode,
    tags=["users"],
)
async def create_link_code(user_id: PathId, db: Session, caller: CreatesLinks) -> LinkCode:
    code = await telegram_links.create_code(db, user_id)
    await db.commit()
    return code


@router.post("/telegram-links", response_model=User, tags=["users"])
async def link_telegram(data: TelegramLink, db: Session, caller: RedeemsLinks) -> User:
    user = await telegram_links.redeem(db, data.code, data.chat_id)
    await db.commit()
    return user


@router.patch("/users/{user_id}", response_model=User, tags=["users"])
async def update_user(
    user_id: PathId,
    change: UserUpdate,
    version: ExpectedVersion,
    db: Session,
    response: Response,
    _: WritesUsers,
) -> User:
    user = await UserRepository(db).update(user_id, change, version)
    await db.commit()
    response.headers["ETag"] = etag(user.version)
    return user


@router.post("/orders", status_code=status.HTTP_201_CREATED, response_model=Order, tags=["orders"])
async def create_order(
    data: OrderCreate,
    db: Session,
    caller: WritesOrders,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    body, replayed = await create_once(
        db, caller, idempotency_key, data, lambda: OrderRepository(db).create_order(data)
    )
    await db.commit()
    return created(body, replayed, "orders")


@router.get("/orders/{order_id}", response_model=Order, tags=["orders"], dependencies=[READS_ORDERS])
async def get_order(order_id: PathId, db: HotReads, response: Response) -> Order:
    order = await db.order(order_id)
    response.headers["ETag"] = etag(order.version)
    return order


@router.get("/orders", response_model=Page[Order], tags=["orders"], dependencies=[READS_ORDERS])
async def list_orders(
    db: Session,
    limit: Limit = 20,
    cursor: Cursor | None = None,
    user_id: Annotated[Id | None, Query()] = None,
    status: OrderStatus | None = None,
) -> Page[Order]:
    return await OrderRepository(db).list_orders(limit=limit, cursor=cursor, user_id=user_id, status=status)


# --8<-- [start:cancel-route]
@router.post("/orders/{order_id}/cancellation", response_model=Order, tags=["orders"])
async def cancel_order(
    order_id: PathId,
    cancellation: OrderCancellation,
    version: VersionIfAny,
    db: Session,
    response: Response,
    _: WritesOrders,
) -> Order:
    """Cancel the order (200 with it), announcing ``order.cancelled`` once; a cancelled order is
    answered as it is. Without ``If-Match`` a cancel wins over a confirmation in flight (the user
    asked); with it, only the version read is cancelled (the worker's timeout)."""
    order = await OrderRepository(db).cancel(order_id, cancellation.reason, version)
    await db.commit()
    response.headers["ETag"] = etag(order.version)
    return order
    # --8<-- [end:cancel-route]


@router.patch("/orders/{order_id}", response_model=Order, tags=["orders"])
async def set_order_status(
    order_id: PathId,
    change: OrderStatusUpdate,
    version: ExpectedVersion,
    db: Session,
    response: Response,
    _: WritesOrders,
) -> Order:
    order = await OrderRepository(db).set_status(order_id, change.status, version)
    await db.commit()
    response.headers["ETag"] = etag(order.version)
    return order
