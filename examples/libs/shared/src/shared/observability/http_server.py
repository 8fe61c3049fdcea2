"""What every FastAPI service adds to its app: RED metrics, ``/metrics``, request ids, server spans.

The server half of observability (the ``server`` extra), kept apart from
:mod:`shared.observability.setup` so that a service without an HTTP API (the bot, the worker)
never installs FastAPI or Starlette. An unmatched path is counted as ``<unmatched>``, so a
scanner trying ten thousand URLs adds one series, not ten thousand.
"""

from __future__ import annotations

import re
import time
import uuid

from fastapi import APIRouter, FastAPI, Request, Response
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from pydantic import SecretStr
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.observability.logs import REQUEST_ID
from shared.observability.metrics import LATENCY_BUCKETS, may_scrape
from shared.observability.tracing import context_from
from shared.problems import Problem, problem_response

REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
NOT_TRACED = "health/live,health/ready,metrics"

# --8<-- [start:red]
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUESTS = Counter("http_requests", "HTTP requests served", ["route", "method", "status"])
DURATION = Histogram(
    "http_request_duration_seconds", "Time to serve a request", ["route", "method"], buckets=LATENCY_BUCKETS
)
IN_FLIGHT = Gauge("http_requests_in_flight", "Requests being served now")


class RedMetrics:
    """Rate, errors and duration per route template: a pure ASGI middleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app raises before answering

        async def remember_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        start = time.perf_counter()
        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, remember_status)
        finally:
            IN_FLIGHT.dec()
            # The router stores the matched route in the scope: its template, not the path.
            route = getattr(scope.get("route"), "path", "<unmatched>")
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            REQUESTS.labels(route, method, str(status)).inc()
            DURATION.labels(route, method).observe(time.perf_counter() - start)
            # --8<-- [end:red]


def metrics_router(token: SecretStr | None = None) -> APIRouter:
    """``GET /metrics`` in the Prometheus text format; with ``token``, only for a bearer of it."""
    router = APIRouter(tags=["observability"])

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if not may_scrape(request.headers.get("authorization"), token):
            problem = Problem.of(401, "/metrics needs the scrape token", instance="/metrics")
            return problem_response(problem, headers={"WWW-Authenticate": "Bearer"})
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router


# --8<-- [start:app]
def observe_app(app: FastAPI, metrics_token: SecretStr | None = None) -> None:
    """RED metrics, ``/metrics`` (for a bearer of ``metrics_token`` when one is set), request ids and
    a server span per request."""
    app.add_middleware(RequestContext)
    app.add_middleware(RedMetrics)
    app.include_router(metrics_router(metrics_token))
    # One span per request: the per-message "http send"/"http receive" spans add nothing a reader of a
    # trace needs and cost CPU (benchmarks/observability_overhead.py measures it).
    FastAPIInstrumentor.instrument_app(app, excluded_urls=NOT_TRACED, exclude_spans=["receive", "send"])


class RequestContext:
    """Take the caller's ``X-Request-ID`` (or make one), log with it, and send it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        if "traceparent" in headers:  # the instrumentation used it; look again only to log a malformed one
            context_from(headers, f"{scope['method']} {scope['path'][:100]}")
        given = headers.get("x-request-id", "")
        request_id = given if REQUEST_ID_PATTERN.fullmatch(given) else uuid.uuid4().hex

        async def with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("X-Request-ID", request_id)
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, with_request_id)
        finally:
            REQUEST_ID.reset(token)
            # --8<-- [end:app]
