"""RFC 9457 problem details: every HTTP error of every service, in one shape.

A client never has to guess the error format: the status, a short ``title``, a
human ``detail`` and, for validation errors, the offending fields. The model lives
here, with no web framework, because both sides read it: the FastAPI handlers in
:mod:`shared.problems` write it, the typed clients in :mod:`shared.clients` parse it.

```py
from shared.contracts.problem import Problem

problem = Problem(status=412, title="Precondition Failed", detail="order 7 moved on")
print(problem.model_dump_json(exclude_none=True))
#> {"type":"about:blank","title":"Precondition Failed","status":412,"detail":"order 7 moved on"}
```
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ConfigDict

PROBLEM_JSON = "application/problem+json"


# --8<-- [start:model]
class Problem(BaseModel):
    """An RFC 9457 problem details object; extension members are allowed."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    # --8<-- [end:model]

    @classmethod
    def of(cls, status: int, detail: str | None = None, **members: Any) -> Problem:
        """A problem titled with the standard phrase for ``status`` (503: "Service Unavailable")."""
        return cls(status=status, title=HTTPStatus(status).phrase, detail=detail, **members)
