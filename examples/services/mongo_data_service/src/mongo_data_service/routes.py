"""The HTTP API of mongo_data_service: activity (append, list) and preferences (get, put)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import pymongo
from fastapi import APIRouter, Depends, Header, Path, Query, Request, status
from fastapi.responses import JSONResponse
from pymongo.asynchronous.database import AsyncDatabase

from mongo_data_service.repository import ActivityRepository, Document, PreferencesRepository
from shared.auth import requires
from shared.contracts.deadline import TIMEOUT_HEADER
from shared.contracts.ids import Id
from shared.contracts.mongo import Activity, ActivityCreate, Kind, Preferences, PreferencesUpdate
from shared.contracts.pages import Cursor, Limit, Page
from shared.idempotency import IdempotencyKey, KeyQuery

# --8<-- [start:deadline]
MIN_BUDGET_MS = 1_000
type Budget = Annotated[int | None, Header(alias=TIMEOUT_HEADER, ge=1, le=3_600_000)]


async def database(request: Request, budget_ms: Budget = None) -> AsyncIterator[AsyncDatabase[Document]]:
    """The database, for one request. With the caller's time left (never below ``MIN_BUDGET_MS``),
    every operation of the request ends by then: PyMongo's ``timeout`` applies to all of them."""
    db: AsyncDatabase[Document] = request.app.state.db
    if budget_ms is None:
        yield db
        return
    with pymongo.timeout(max(budget_ms, MIN_BUDGET_MS) / 1000):
        yield db
        # --8<-- [end:deadline]


type Db = Annotated[AsyncDatabase[Document], Depends(database)]


type Writes = Annotated[str, Depends(requires("activity:write"))]
READS = Depends(requires("activity:read"))

router = APIRouter()


@router.post("/activity", status_code=status.HTTP_201_CREATED, response_model=Activity, tags=["activity"])
async def append_activity(
    data: ActivityCreate,
    db: Db,
    caller: Writes,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    activity, replayed = await ActivityRepository(db).append(data, caller, idempotency_key)
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    return JSONResponse(activity.model_dump(mode="json"), status_code=201, headers=headers)


# --8<-- [start:by-key]
@router.get("/activity/by-key", response_model=Activity | None, tags=["activity"])
async def activity_by_key(key: KeyQuery, db: Db, caller: Writes) -> Activity | None:
    """What you appended under this ``Idempotency-Key``, or ``null``: whether a step of yours ran, for
    a caller that has to undo it. Keys are per caller: another's are not found. (``null``, not 404:
    a 404 stays "no such route", so a caller deployed before this route fails loudly.)"""
    return await ActivityRepository(db).by_key(caller, key)
    # --8<-- [end:by-key]


@router.get("/activity", response_model=Page[Activity], tags=["activity"], dependencies=[READS])
async def list_activity(
    db: Db,
    user_id: Annotated[Id, Query()],
    kind: Annotated[Kind | None, Query()] = None,
    limit: Limit = 20,
    cursor: Cursor | None = None,
) -> Page[Activity]:
    return await ActivityRepository(db).list(user_id, kind, limit, cursor)


@router.get("/preferences/{user_id}", response_model=Preferences, tags=["preferences"], dependencies=[READS])
async def get_preferences(user_id: Annotated[Id, Path()], db: Db) -> Preferences:
    return await PreferencesRepository(db).get(user_id)


@router.put("/preferences/{user_id}", response_model=Preferences, tags=["preferences"])
async def put_preferences(
    user_id: Annotated[Id, Path()],
    data: PreferencesUpdate,
    db: Db,
    _: Writes,
) -> Preferences:
    return await PreferencesRepository(db).put(user_id, data)
