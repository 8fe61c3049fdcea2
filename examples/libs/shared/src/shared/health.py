"""Liveness and readiness endpoints, the same on every service.

``/health/live`` answers as long as the process serves requests (restart me if not);
``/health/ready`` also checks each dependency with a time limit (send me traffic only
if this passes). Mixing the two makes an orchestrator restart healthy processes when
the database blips.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from shared.checks import Check, failed_checks
from shared.contracts.problem import Problem
from shared.problems import problem_response


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
