"""Health and metrics for services that do not serve HTTP themselves (the bot, the worker).

The same three endpoints as every FastAPI service: ``/health/live``,
``/health/ready`` (runs the dependency checks) and ``/metrics`` for Prometheus.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from shared.checks import Check, failed_checks
from shared.contracts.problem import PROBLEM_JSON, Problem


# --8<-- [start:ops-server]
@asynccontextmanager
async def ops_server(
    host: str,
    port: int,
    checks: Mapping[str, Check],
    registry: CollectorRegistry = REGISTRY,
    timeout: float = 2.0,
) -> AsyncIterator[str]:
    """Serve health and metrics on ``host:port`` while the block runs; yield the base URL."""

    async def live(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(request: web.Request) -> web.Response:
        if failed := await failed_checks(checks, timeout):
            detail = f"not ready: {', '.join(sorted(failed))}"
            problem = Problem(status=503, title="Service Unavailable", detail=detail, checks=failed)
            return web.json_response(
                problem.model_dump(exclude_none=True), status=503, content_type=PROBLEM_JSON
            )
        return web.json_response({"status": "ok", "checks": dict.fromkeys(checks, "ok")})

    async def metrics(request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    app = web.Application()
    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()
        # --8<-- [end:ops-server]
