"""Prometheus metrics every service shares, with label values from a closed set only.

Labels are route *templates* (``/orders/{order_id}``), methods, status codes, target
service names and fixed outcome words: never a raw path, an id or anything a client sent.
An unmatched path is counted as ``<unmatched>``, so a scanner trying ten thousand URLs adds
one series, not ten thousand.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# --8<-- [start:red]
# Buckets around what a user notices: 5 ms (a cache hit) to 5 s (a timeout).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
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


# --8<-- [start:dependencies]
CLIENT_REQUESTS = Counter(
    "data_client_requests", "Calls to a data service, by outcome", ["target", "method", "outcome"]
)
CLIENT_DURATION = Histogram(
    "data_client_request_duration_seconds",
    "Time per call to a data service, retries included",
    ["target", "method"],
    buckets=LATENCY_BUCKETS,
)
CACHE = Counter("cache_requests", "Cache lookups by result", ["cache", "result"])  # hit, miss, error
# --8<-- [end:dependencies]

# --8<-- [start:business]
ORDERS_PLACED = Counter("orders_placed", "Orders accepted by the API")
USERS_REGISTERED = Counter("users_registered", "Users registered", ["channel"])  # api, telegram
NOTIFICATIONS = Counter("notifications_sent", "User notifications by outcome", ["outcome"])
# --8<-- [end:business]


def outcome_of(status: int) -> str:
    """``2xx``, ``4xx``, ``5xx``: a status class, which is all a dashboard needs."""
    return f"{status // 100}xx"


def metrics_router() -> APIRouter:
    """``GET /metrics`` in the Prometheus text format."""
    router = APIRouter(tags=["observability"])

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router
