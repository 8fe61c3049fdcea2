"""The public API: users, orders and activity, composed from both data services."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse

from api_service.cache import UserCache
from shared.clients.mongo import MongoDataClient
from shared.clients.pg import PgDataClient
from shared.contracts.ids import Id
from shared.contracts.mongo import Activity
from shared.contracts.pages import Cursor, Limit, Page
from shared.contracts.pg import Order, OrderCreate, User, UserCreate, UserUpdate
from shared.idempotency import IdempotencyKey, RequiredIdempotencyKey
from shared.observability.metrics import ORDERS_PLACED, USERS_REGISTERED
from shared.preconditions import ExpectedVersion, etag

type PathId = Annotated[Id, Path()]

router = APIRouter()


def pg(request: Request) -> PgDataClient:
    client: PgDataClient = request.app.state.pg
    return client


def mongo(request: Request) -> MongoDataClient:
    client: MongoDataClient = request.app.state.mongo
    return client


def users(request: Request) -> UserCache:
    cache: UserCache = request.app.state.users
    return cache


type Pg = Annotated[PgDataClient, Depends(pg)]
type Mongo = Annotated[MongoDataClient, Depends(mongo)]
type Users = Annotated[UserCache, Depends(users)]


@router.post("/users", status_code=status.HTTP_201_CREATED, tags=["users"])
async def register(
    data: UserCreate,
    pg: Pg,
    key: IdempotencyKey = None,
) -> User:
    user = await pg.create_user(data, idempotency_key=key)
    USERS_REGISTERED.labels("api").inc()
    return user


# --8<-- [start:read-user]
@router.get("/users/{user_id}", tags=["users"])
async def get_user(user_id: PathId, users: Users, response: Response) -> User:
    user = await users.get(user_id)
    response.headers["ETag"] = etag(user.version)
    return user
    # --8<-- [end:read-user]


@router.patch("/users/{user_id}", tags=["users"])
async def update_user(
    user_id: PathId,
    change: UserUpdate,
    pg: Pg,
    users: Users,
    response: Response,
    version: ExpectedVersion,
) -> User:
    try:
        user = await pg.update_user(user_id, change, version)
    except Exception:
        await users.forget(user_id)  # it may have happened all the same: no copy until reads are fresh
        raise
    await users.store(user)
    response.headers["ETag"] = etag(user.version)
    return user


# --8<-- [start:place-order]
@router.post("/orders", status_code=status.HTTP_201_CREATED, tags=["orders"])
async def place_order(data: OrderCreate, key: RequiredIdempotencyKey, pg: Pg, users: Users) -> JSONResponse:
    """Place an order. ``Idempotency-Key`` is required: a client retrying a timed-out
    request must get the first order back, not a second one."""
    await users.get(data.user_id)  # 404 for an unknown user, from the cache when warm
    order = await pg.create_order(data, idempotency_key=key)
    ORDERS_PLACED.inc()
    return JSONResponse(
        order.model_dump(mode="json"), status_code=201, headers={"Location": f"/orders/{order.id}"}
    )
    # --8<-- [end:place-order]


@router.get("/users/{user_id}/orders", tags=["orders"])
async def user_orders(
    user_id: PathId, pg: Pg, users: Users, limit: Limit = 20, cursor: Cursor | None = None
) -> Page[Order]:
    await users.get(user_id)
    return await pg.list_orders(user_id=user_id, limit=limit, cursor=cursor)


@router.get("/users/{user_id}/activity", tags=["activity"])
async def user_activity(
    user_id: PathId,
    users: Users,
    mongo: Mongo,
    limit: Limit = 20,
    cursor: Cursor | None = None,
    kind: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z][a-z0-9_.]*$")] = None,
) -> Page[Activity]:
    await users.get(user_id)
    return await mongo.list_activity(user_id, kind=kind, limit=limit, cursor=cursor)
