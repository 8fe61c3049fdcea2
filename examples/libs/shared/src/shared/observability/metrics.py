"""Prometheus metrics every service shares, with label values from a closed set only.

Labels are route *templates* (``/orders/{order_id}``), methods, status codes, target
service names and fixed outcome words: never a raw path, an id or anything a client sent.
This module holds what any service counts (calls to the data services, cache lookups,
business events) and needs only ``prometheus-client``; the RED metrics of an HTTP server
are in :mod:`shared.observability.http_server`.
"""

from __future__ import annotations

import secrets

from prometheus_client import Counter, Histogram
from pydantic import SecretStr

# Buckets around what a user notices: 5 ms (a cache hit) to 5 s (a timeout).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

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


# --8<-- [start:scrape-token]
def may_scrape(authorization: str | None, token: SecretStr | None) -> bool:
    """Whether a request for ``/metrics`` may have it: any request when no token is set (a local run),
    else only one with ``Authorization: Bearer <token>`` (Prometheus's ``authorization`` setting)."""
    if token is None:
        return True
    scheme, _, given = (authorization or "").partition(" ")
    expected = token.get_secret_value()
    # surrogateescape: aiohttp hands undecodable header bytes on as lone surrogates; they must not raise.
    presented = given.encode("utf-8", "surrogateescape")
    return scheme.lower() == "bearer" and secrets.compare_digest(presented, expected.encode())
    # --8<-- [end:scrape-token]
