"""Health and metrics for services that do not serve HTTP themselves (the bot, the worker).

The same three endpoints as every FastAPI service: ``/health/live``,
``/health/ready`` (runs the dependency checks) and ``/metrics`` for Prometheus.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from pydantic import SecretStr

from shared.checks import Check, failed_checks
from shared.contracts.problem import PROBLEM_JSON, Problem
from shared.observability.metrics import may_scrape


# --8<-- [start:ops-server]
@asynccontextmanager
async def ops_server(
    host: str,
    port: int,
    checks: Mapping[str, Check],
    registry: CollectorRegistry = REGISTRY,
    timeout: float = 2.0,
    metrics_token: SecretStr | None = None,
) -> AsyncIterator[str]:
    """Serve health and metrics on ``host:port`` while the block runs; yield the base URL.
    With ``metrics_token``, ``/metrics`` answers only a bearer of it."""

    def problem(status: int, detail: str, **members: object) -> web.Response:
        body = Problem.of(status, detail, **members).model_dump(exclude_none=True)
        return web.json_response(body, status=status, content_type=PROBLEM_JSON)

    async def live(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(request: web.Request) -> web.Response:
        if failed := await failed_checks(checks, timeout):
            return problem(503, f"not ready: {', '.join(sorted(failed))}", checks=failed)
        return web.json_response({"status": "ok", "checks": dict.fromkeys(checks, "ok")})

    async def metrics(request: web.Request) -> web.Response:
        if not may_scrape(request.headers.get("Authorization"), metrics_token):
            answer = problem(401, "/metrics needs the scrape token", instance="/metrics")
            answer.headers["WWW-Authenticate"] = "Bearer"
            return answer
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
