"""Typed errors of a data-service call, each carrying the problem details the service sent."""

from __future__ import annotations

from shared.contracts.problem import Problem


# --8<-- [start:errors]
class DataServiceError(Exception):
    """A data service answered with an error; ``problem`` says what it said."""

    def __init__(self, service: str, problem: Problem) -> None:
        super().__init__(f"{service}: {problem.status} {problem.title}: {problem.detail or ''}".rstrip(": "))
        self.service = service
        self.problem = problem


class InvalidRequest(DataServiceError):
    """400/422: the request is wrong; retrying will not help."""


class Unauthorized(DataServiceError):
    """401/403: this service's token is missing, wrong or not allowed to do this."""


class NotFound(DataServiceError):
    """404: no such resource."""


class Conflict(DataServiceError):
    """409/412: the resource changed or is in the wrong state; re-read and decide."""


class DependencyUnavailable(DataServiceError):
    """The data service is down, overloaded or too slow (connection error, timeout, 502-504)."""


def error_for(service: str, problem: Problem) -> DataServiceError:
    """The typed error for a problem answer."""
    match problem.status:
        case 400 | 413 | 422 | 428:
            kind: type[DataServiceError] = InvalidRequest
        case 401 | 403:
            kind = Unauthorized
        case 404:
            kind = NotFound
        case 409 | 412:
            kind = Conflict
        case 502 | 503 | 504:
            kind = DependencyUnavailable
        case _:
            kind = DataServiceError
    return kind(service, problem)
    # --8<-- [end:errors]
