"""Liveness and readiness endpoints, the same on every service.

``/health/live`` answers as long as the process serves requests (restart me if not);
``/health/ready`` also checks each dependency with a time limit (send me traffic only
if this passes). Mixing the two makes an orchestrator restart healthy processes when
the database blips.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from shared.problems import Problem, problem_response

type Check = Callable[[], Awaitable[object]]


async def failed_checks(checks: Mapping[str, Check], timeout: float) -> dict[str, str]:
    """Run every check concurrently, each with ``timeout``; name the ones that failed and how."""
    results = await asyncio.gather(
        *(asyncio.wait_for(check(), timeout) for check in checks.values()), return_exceptions=True
    )
    return {
        name: type(result).__name__
        for name, result in zip(checks, results, strict=True)
        if isinstance(result, BaseException)
    }


# --8<-- [start:router]
def health_router(checks: Mapping[str, Check], timeout: float = 2.0) -> APIRouter:
    """``/health/live`` and ``/health/ready``; ready runs every check concurrently."""
    router = APIRouter(prefix="/health", tags=["health"])

    @router.get("/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/ready", responses={503: {"description": "a dependency is not ready"}})
    async def ready() -> JSONResponse:
        if failed := await failed_checks(checks, timeout):
            detail = f"not ready: {', '.join(sorted(failed))}"
            return problem_response(
                Problem(status=503, title="Service Unavailable", detail=detail, checks=failed)
            )
        return JSONResponse({"status": "ok", "checks": dict.fromkeys(checks, "ok")})

    return router
    # --8<-- [end:router]
