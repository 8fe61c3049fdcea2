"""Keyset (cursor) pagination, the same for every list endpoint.

A cursor is opaque to clients: base64url of the last row's sort key. Unlike
``OFFSET``, a keyset page costs the same at row 10 and at row 10 million, and rows
inserted meanwhile never shift a page.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Annotated

from pydantic import BaseModel, Field

MAX_LIMIT = 100
type Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT, description=f"rows per page, 1 to {MAX_LIMIT}")]
type Cursor = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_-]+={0,2}$")]


class Page[T](BaseModel):
    """One page of results and the cursor of the next page (``None`` on the last)."""

    items: list[T]
    next_cursor: str | None = None


# --8<-- [start:page]
def page_of[T](rows: Sequence[T], limit: int, key: Callable[[T], tuple[int | str, ...]]) -> Page[T]:
    """The page of ``rows`` fetched with ``LIMIT limit + 1``: the extra row only says a next page exists.

    The next cursor is the ``key`` (the sort key) of the last row kept.
    """
    items = list(rows[:limit])
    more = len(rows) > limit
    return Page[T](items=items, next_cursor=encode_cursor(*key(items[-1])) if more else None)
    # --8<-- [end:page]


class InvalidCursor(ValueError):
    """The cursor was not made by this service (or was edited)."""


# --8<-- [start:cursor]
def encode_cursor(*key: int | str) -> str:
    """Make an opaque cursor from the sort key of the last row of a page."""
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode()


def decode_cursor(cursor: str, *types: type[int] | type[str]) -> tuple[int | str, ...]:
    """Read a cursor back into its key, checking each part's type; raise :class:`InvalidCursor`."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise InvalidCursor("cursor is not one this service issued") from error
    if not isinstance(key, list) or len(key) != len(types):
        raise InvalidCursor("cursor is not one this service issued")
    for part, kind in zip(key, types, strict=True):
        if type(part) is not kind:
            raise InvalidCursor("cursor is not one this service issued")
    return tuple(key)
    # --8<-- [end:cursor]
