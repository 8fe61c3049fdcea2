"""The id of a row or a user, as every contract and route accepts it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# Positive and within PostgreSQL's BIGINT: a larger number is a 422, never a database error.
type Id = Annotated[int, Field(gt=0, lt=2**63, description="a positive 64-bit id")]
