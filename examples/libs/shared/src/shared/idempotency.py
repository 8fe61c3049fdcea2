"""The ``Idempotency-Key`` request header, declared once for every service that accepts it."""

from typing import Annotated

from fastapi import Header

type IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Repeat a create safely: the same key and body return the first result",
    ),
]
