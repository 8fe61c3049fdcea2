"""Optimistic concurrency over HTTP: an ETag carries a record's version, If-Match sends it back.

One parser for every service that updates (the data service that owns the row and the API
that passes the update on), so both refuse the same values the same way.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from shared.problems import ProblemError

MAX_VERSION = 2**31 - 1  # the version columns are INTEGER: a larger value could never match


def etag(version: int) -> str:
    return f'"{version}"'


# --8<-- [start:if-match]
type IfMatch = Annotated[
    str | None, Header(alias="If-Match", max_length=40, description='The ETag you read, e.g. "3"')
]


async def expected_version(if_match: IfMatch = None) -> int:
    """The version an update expects; updates without If-Match are refused (428)."""
    if if_match is None:
        raise ProblemError(428, 'updates need If-Match with the ETag you read, e.g. If-Match: "3"')
    value = if_match.removeprefix("W/").strip('"')
    if not value.isascii() or not value.isdigit() or int(value) > MAX_VERSION:
        raise ProblemError(412, f"If-Match {if_match!r} matches no version of this resource")
    return int(value)
    # --8<-- [end:if-match]


type ExpectedVersion = Annotated[int, Depends(expected_version)]


async def expected_version_if_any(if_match: IfMatch = None) -> int | None:
    """For a change that is safe without If-Match, and conditional with it."""
    return None if if_match is None else await expected_version(if_match)


type VersionIfAny = Annotated[int | None, Depends(expected_version_if_any)]
