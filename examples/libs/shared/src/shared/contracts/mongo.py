"""Activity and preferences: what ``mongo_data_service`` accepts and returns.

User input reaches MongoDB only as *values* of typed fields, never as keys or
operators: a payload key that starts with ``$`` or holds a ``.`` is rejected,
so ``{"$where": ...}`` or ``{"a.b": ...}`` cannot be smuggled into a document or filter.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from shared.contracts.ids import Id
from shared.contracts.text import encodable

MAX_DEPTH = 5
MAX_KEYS = 100


# --8<-- [start:guard]
INT64 = range(-(2**63), 2**63)  # BSON's widest integer


def safe_document(value: dict[str, Any], depth: int = 1) -> dict[str, Any]:
    """Reject keys MongoDB would read as operators or paths, documents too deep or wide, and values
    BSON cannot hold."""
    if len(value) > MAX_KEYS:
        raise ValueError(f"more than {MAX_KEYS} keys")
    for key, item in value.items():
        if not key or key.startswith("$") or "." in key or "\x00" in key:
            raise ValueError(f"key {key[:40]!r} may not be empty, start with '$' or contain '.' or NUL")
        encodable(key)
        safe_value(item, depth)
    return value


def safe_value(item: object, depth: int) -> None:
    match item:
        case dict() | list() if depth >= MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        case dict():
            safe_document(item, depth + 1)
        case list():
            for child in item:
                safe_value(child, depth + 1)
        case str():
            encodable(item)
        case int() if item not in INT64:
            raise ValueError("integers must fit in 64 bits; send larger numbers as strings")


type SafePayload = Annotated[dict[str, Any], AfterValidator(safe_document)]
# --8<-- [end:guard]

type Kind = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$", max_length=64)]


class ActivityCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"user_id": 1, "kind": "order.confirmed", "payload": {"order_id": 7}}]
        },
    )

    user_id: Id
    kind: Kind
    payload: SafePayload = Field(default_factory=dict)


class Activity(BaseModel):
    id: str
    user_id: int
    kind: str
    payload: dict[str, Any]
    at: datetime


class Channel(StrEnum):
    telegram = "telegram"
    email = "email"


class PreferencesUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"channels": ["telegram"], "language": "en"}]}
    )

    channels: Annotated[list[Channel], Field(max_length=len(Channel))] = Field(default_factory=list)
    language: Annotated[str, Field(pattern=r"^[a-z]{2}(-[A-Z]{2})?$")] = "en"


class Preferences(PreferencesUpdate):
    model_config = ConfigDict(extra="ignore")

    user_id: int
    version: int
