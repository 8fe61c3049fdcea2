"""RFC 9457 problem details on the server: every error of a FastAPI app becomes one.

The :class:`~shared.contracts.problem.Problem` model itself lives in
:mod:`shared.contracts.problem`, where the clients read it without FastAPI; this module
raises it from routes, installs the handlers and limits request bodies.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Re-exported: a FastAPI service builds problems with the handlers it installs from here.
from shared.contracts.problem import PROBLEM_JSON as PROBLEM_JSON
from shared.contracts.problem import Problem as Problem

log = logging.getLogger(__name__)


# --8<-- [start:error]
class ProblemError(Exception):
    """Raise from a route to answer with a problem; ``extensions`` become extra members."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.problem = Problem.of(status, detail, **extensions)
        self.headers = dict(headers or {})
        # --8<-- [end:error]


def problem_response(problem: Problem, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        problem.model_dump(mode="json", exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=dict(headers or {}),
    )


def unavailable(detail: str, instance: str) -> JSONResponse:
    """503 for a dependency that is down or slow: the caller may retry after a second."""
    return problem_response(Problem.of(503, detail, instance=instance), {"Retry-After": "1"})


# --8<-- [start:handlers]
def install_problem_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` a problem+json response, including the unexpected ones."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        exc.problem.instance = request.url.path
        return problem_response(exc.problem, exc.headers)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        title = HTTPStatus(exc.status_code).phrase
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
        problem = Problem(status=exc.status_code, title=title, detail=detail, instance=request.url.path)
        return problem_response(problem, exc.headers)

    async def on_invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        # Echo where and why, never the input itself: it may be huge or hostile.
        errors = [
            {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type", "")}
            for error in exc.errors()
        ]
        problem = Problem(
            status=422,
            title="Unprocessable Content",
            detail=f"{len(errors)} invalid field(s) in the request",
            instance=request.url.path,
            errors=errors,
        )
        return problem_response(problem)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        problem = Problem(status=500, title="Internal Server Error", instance=request.url.path)
        return problem_response(problem)

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_invalid_request)
    app.add_exception_handler(Exception, on_unexpected)
    # --8<-- [end:handlers]


class BodySizeLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` with 413, before parsing them."""

    def __init__(self, app: ASGIApp, max_bytes: int = 64 * 1024) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._too_large(scope, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await self._too_large(scope, send)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        problem = Problem(
            status=413,
            title="Content Too Large",
            detail=f"request body over {self.max_bytes} bytes",
            instance=scope.get("path"),
        )
        response = problem_response(problem)
        await response(scope, _no_receive, send)


class _TooLarge(Exception):
    pass


async def _no_receive() -> Message:  # pragma: no cover - a JSONResponse never reads the request
    return {"type": "http.disconnect"}
