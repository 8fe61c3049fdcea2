"""Activity and preferences in MongoDB, through PyMongo's async API (``AsyncMongoClient``).

Filters are built here from typed values only; nothing a client sends becomes a key
or an operator of a query.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.contracts.mongo import Activity, ActivityCreate, Preferences, PreferencesUpdate
from shared.contracts.pages import InvalidCursor, Page, decode_cursor, page_of
from shared.idempotency import request_digest
from shared.problems import ProblemError

type Document = dict[str, Any]


# --8<-- [start:indexes]
async def create_indexes(db: AsyncDatabase[Document]) -> None:
    """Idempotent: safe on every start-up of every replica."""
    # (user_id, at) serves "newest activity of a user"; ties on `at` are broken by _id in the sort.
    await db.activity.create_index([("user_id", ASCENDING), ("at", DESCENDING)])
    await db.activity.create_index(
        [("caller", ASCENDING), ("idempotency_key", ASCENDING)], unique=True, sparse=True
    )
    await db.preferences.create_index([("user_id", ASCENDING)], unique=True)
    # --8<-- [end:indexes]


def _activity(doc: Document) -> Activity:
    return Activity(
        id=str(doc["_id"]), user_id=doc["user_id"], kind=doc["kind"], payload=doc["payload"], at=doc["at"]
    )


class ActivityRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db.activity

    async def append(
        self, data: ActivityCreate, caller: str, idempotency_key: str | None
    ) -> tuple[Activity, bool]:
        """Insert one activity; with an idempotency key a retry returns the first document.

        As in pg_data_service, the document keeps a digest of the request: the same key with a
        different body is refused (422), not answered with the first document.
        """
        doc: Document = {**data.model_dump(), "at": datetime.now(UTC).replace(microsecond=0)}
        if idempotency_key is not None:
            doc |= {
                "caller": caller,
                "idempotency_key": idempotency_key,
                "request_hash": request_digest(data),
            }
        try:
            result = await self.collection.insert_one(doc)
        except DuplicateKeyError:
            first = await self.collection.find_one({"caller": caller, "idempotency_key": idempotency_key})
            assert first is not None  # the insert collided with it
            if first.get("request_hash") != doc["request_hash"]:
                raise ProblemError(
                    422, "this Idempotency-Key was used with a different request body"
                ) from None
            return _activity(first), True
        doc["_id"] = result.inserted_id
        return _activity(doc), False

    async def by_key(self, caller: str, idempotency_key: str) -> Activity | None:
        """What ``caller`` appended under ``idempotency_key`` (a unique index serves it), if anything."""
        doc = await self.collection.find_one({"caller": caller, "idempotency_key": idempotency_key})
        return None if doc is None else _activity(doc)

    # --8<-- [start:list]
    async def list(self, user_id: int, kind: str | None, limit: int, cursor: str | None) -> Page[Activity]:
        """Newest first; the cursor is the (time, id) of the last document seen."""
        query: Document = {"user_id": user_id}
        if kind is not None:
            query["kind"] = kind
        if cursor is not None:
            at, last_id = _position(cursor)
            query["$or"] = [{"at": {"$lt": at}}, {"at": at, "_id": {"$lt": last_id}}]
        found = self.collection.find(query).sort([("at", DESCENDING), ("_id", DESCENDING)]).limit(limit + 1)
        rows = [_activity(doc) async for doc in found]
        return page_of(rows, limit, key=lambda activity: (activity.at.isoformat(), activity.id))
        # --8<-- [end:list]


def _position(cursor: str) -> tuple[datetime, ObjectId]:
    try:
        at, last_id = decode_cursor(cursor, str, str)
        return datetime.fromisoformat(str(at)), ObjectId(str(last_id))
    except (InvalidCursor, InvalidId, ValueError) as error:
        raise ProblemError(422, "cursor is not one this service issued") from error


class PreferencesRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db.preferences

    async def get(self, user_id: int) -> Preferences:
        doc = await self.collection.find_one({"user_id": user_id})
        if doc is None:
            raise ProblemError(404, f"user {user_id} has no preferences")
        return Preferences.model_validate(doc)

    async def put(self, user_id: int, data: PreferencesUpdate) -> Preferences:
        doc = await self.collection.find_one_and_update(
            {"user_id": user_id},
            {"$set": data.model_dump(mode="json"), "$inc": {"version": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        return Preferences.model_validate(doc)
