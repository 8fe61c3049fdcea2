"""The public API: users, orders and activity, composed from both data services.

Every route but sign-up needs an end user's bearer token (:mod:`api_service.auth`), and reaches
only that user's own resources.
"""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import EmailStr, Field

from api_service.auth import CurrentUser, own
from api_service.cache import UserCache
from api_service.rate_limit import LinkCodeLimit, SignUpLimit
from shared.clients.mongo import MongoDataClient
from shared.clients.pg import PgDataClient
from shared.contracts.ids import Id
from shared.contracts.mongo import Activity
from shared.contracts.pages import Cursor, Limit, Page
from shared.contracts.pg import (
    CancellationReason,
    LinkCode,
    Name,
    Order,
    OrderCreate,
    OrderItem,
    Strict,
    User,
    UserCreate,
    UserUpdate,
)
from shared.deprecation import Deprecated
from shared.idempotency import IdempotencyKey, RequiredIdempotencyKey
from shared.observability.metrics import ORDERS_PLACED, USERS_REGISTERED
from shared.preconditions import ExpectedVersion, etag
from shared.problems import ProblemError

# --8<-- [start:own-id]
type OwnId = Annotated[int, Depends(own)]  # the path's user id, the caller's own (404 otherwise)


class SignUp(Strict):
    email: EmailStr
    name: Name


class ProfileUpdate(Strict):
    name: Name | None = None  # a Telegram chat is linked through the bot, by a code (below)


def scoped(key: str, user_id: int) -> str:
    """An idempotency key of this user's: two users who send the same key get their own answers."""
    return f"user-{user_id}:{hashlib.sha256(key.encode()).hexdigest()}"
    # --8<-- [end:own-id]


router = APIRouter()


async def pg(request: Request) -> PgDataClient:
    client: PgDataClient = request.app.state.pg
    return client


async def mongo(request: Request) -> MongoDataClient:
    client: MongoDataClient = request.app.state.mongo
    return client


async def users(request: Request) -> UserCache:
    cache: UserCache = request.app.state.users
    return cache


type Pg = Annotated[PgDataClient, Depends(pg)]
type Mongo = Annotated[MongoDataClient, Depends(mongo)]
type Users = Annotated[UserCache, Depends(users)]


@router.post("/users", status_code=status.HTTP_201_CREATED, tags=["users"])
async def register(data: SignUp, pg: Pg, _: SignUpLimit, key: IdempotencyKey = None) -> User:
    """Sign up (the one route without a token). A key reused with another body is refused, so a
    retry returns the first answer and nobody else's."""
    user = await pg.create_user(UserCreate(**data.model_dump()), idempotency_key=key)
    USERS_REGISTERED.labels("api").inc()
    return user


# --8<-- [start:read-user]
@router.get("/users/{user_id}", tags=["users"])
async def get_user(user_id: OwnId, users: Users, response: Response) -> User:
    user = await users.get(user_id)
    response.headers["ETag"] = etag(user.version)
    return user
    # --8<-- [end:read-user]


@router.patch("/users/{user_id}", tags=["users"])
async def update_user(
    user_id: OwnId,
    change: ProfileUpdate,
    pg: Pg,
    users: Users,
    response: Response,
    version: ExpectedVersion,
) -> User:
    try:
        user = await pg.update_user(user_id, UserUpdate(**change.model_dump(exclude_unset=True)), version)
    except Exception:
        await users.forget(user_id)  # it may have happened all the same: no copy until reads are fresh
        raise
    await users.store(user)
    response.headers["ETag"] = etag(user.version)
    return user


# --8<-- [start:place-order]
# --8<-- [start:telegram-link]
@router.post("/users/{user_id}/telegram-link", status_code=status.HTTP_201_CREATED, tags=["users"])
async def telegram_link(user_id: OwnId, pg: Pg, _: LinkCodeLimit) -> LinkCode:
    """A one-time code (ten minutes) that links a Telegram chat to you: send ``/link <code>`` to the bot.
    Only the chat that sends it is linked, so nobody can route your notifications to a chat of theirs."""
    return await pg.create_link_code(user_id)
    # --8<-- [end:telegram-link]


class NewOrder(Strict):
    items: Annotated[list[OrderItem], Field(min_length=1, max_length=50)]


@router.post("/users/{user_id}/orders", status_code=status.HTTP_201_CREATED, tags=["orders"])
async def place_order(
    user_id: OwnId, data: NewOrder, key: RequiredIdempotencyKey, pg: Pg, users: Users
) -> JSONResponse:
    """Place an order. ``Idempotency-Key`` is required: a client retrying a timed-out request must
    get the first order back, not a second one."""
    await users.get(user_id)  # 404 for a user who no longer exists
    order = await pg.create_order(OrderCreate(user_id=user_id, items=data.items), scoped(key, user_id))
    ORDERS_PLACED.inc()
    return JSONResponse(
        order.model_dump(mode="json"), status_code=201, headers={"Location": f"/orders/{order.id}"}
    )
    # --8<-- [end:place-order]


# --8<-- [start:deprecated-route]
ORDERS_V1 = Deprecated(since=date(2026, 12, 1), sunset=date(2027, 6, 1))


@router.post("/orders", status_code=status.HTTP_201_CREATED, tags=["orders"], deprecated=True)
async def place_order_v1(
    data: OrderCreate, key: RequiredIdempotencyKey, current: CurrentUser, pg: Pg, users: Users
) -> JSONResponse:
    """Deprecated: use ``POST /users/{user_id}/orders``, which takes the user from the path like
    every other route of a user's. Answers as before, with ``Deprecation``, ``Sunset`` and ``Link``;
    a key sent here and again there gets the same order."""
    user_id = await own(data.user_id, current)  # first: another user's id is a 404, before and after
    successor = f"/users/{user_id}/orders"
    ORDERS_V1.check(successor)
    placed = await place_order(user_id, NewOrder(items=data.items), key, pg, users)
    placed.headers.update(ORDERS_V1.headers(successor))
    return placed
    # --8<-- [end:deprecated-route]


# --8<-- [start:cancel-order]
@router.post("/orders/{order_id}/cancellation", tags=["orders"])
async def cancel_order(
    order_id: Annotated[Id, Path()], current: CurrentUser, pg: Pg, response: Response
) -> Order:
    """Cancel an order of yours, placed or confirmed; asking again changes nothing. What the
    confirmation did is undone, and you are told, by the consumers of ``order.cancelled``."""
    order = await pg.get_order(order_id)
    if order.user_id != current:  # answered as for an order that does not exist
        raise ProblemError(404, f"order {order_id} does not exist")
    order = await pg.cancel_order(order_id, CancellationReason.customer)
    response.headers["ETag"] = etag(order.version)
    return order
    # --8<-- [end:cancel-order]


@router.get("/users/{user_id}/orders", tags=["orders"])
async def user_orders(
    user_id: OwnId, pg: Pg, users: Users, limit: Limit = 20, cursor: Cursor | None = None
) -> Page[Order]:
    await users.get(user_id)
    return await pg.list_orders(user_id=user_id, limit=limit, cursor=cursor)


@router.get("/users/{user_id}/activity", tags=["activity"])
async def user_activity(
    user_id: OwnId,
    users: Users,
    mongo: Mongo,
    limit: Limit = 20,
    cursor: Cursor | None = None,
    kind: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z][a-z0-9_.]*$")] = None,
) -> Page[Activity]:
    await users.get(user_id)
    return await mongo.list_activity(user_id, kind=kind, limit=limit, cursor=cursor)
