"""The ``Idempotency-Key`` request header and the request digest, declared once for every service.

The key is optional on the data services and required where a client must send one (placing an
order on the API); both accept the same keys.
"""

import hashlib
import json
from typing import Annotated, Any

from fastapi import Header, Query
from pydantic import BaseModel

# Long enough not to collide by accident, short enough to index, visible ASCII only.
MIN_LENGTH = 8
MAX_LENGTH = 255
PATTERN = r"^[\x21-\x7e]+$"


def _header(description: str) -> Any:
    return Header(
        alias="Idempotency-Key",
        min_length=MIN_LENGTH,
        max_length=MAX_LENGTH,
        pattern=PATTERN,
        description=description,
    )


type IdempotencyKey = Annotated[
    str | None, _header("Repeat a create safely: the same key and body return the first result")
]
# The same key, asked for in a query: what the caller wrote under it (mongo_data_service).
type KeyQuery = Annotated[
    str,
    Query(min_length=MIN_LENGTH, max_length=MAX_LENGTH, pattern=PATTERN, description="An Idempotency-Key"),
]
type RequiredIdempotencyKey = Annotated[
    str, _header("Required: a retry with the same key and body returns the first result")
]


def request_digest(request: BaseModel) -> str:
    """A hash of the request body: the same key with another digest is a reused key, not a retry.

    Object keys are sorted, since JSON objects are unordered: a retry that sends the same fields in
    another order is the same request.
    """
    body = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()
