"""The HTTP hop every data access pays: one pooled aiohttp session, bounded time, careful retries.

Three rules, each learned from an outage:

1. **Every call has a deadline.** A data service that hangs must cost a caller at most
   ``timeout`` seconds, retries included, then a :class:`DependencyUnavailable`, never a
   stuck request. (A per-attempt timeout is not enough: three attempts of 2 s each could keep
   a caller over 6 s while a data service was paused, longer than its own clients wait.)
2. **Only idempotent calls are retried**: reads, ``If-Match`` updates, and creates that
   carry an ``Idempotency-Key``. Retrying a plain POST after a timeout can create twice.
3. **Retries back off exponentially with full jitter**, so a recovering service is not
   hit by every client at the same instant.

aiohttp was chosen by measurement (``benchmarks/http_clients.py``): on this workload it
serves about five times the requests per second of httpx's default transport.
"""

from __future__ import annotations

import json as jsonlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import aiohttp
from pydantic import SecretStr, ValidationError
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from shared.clients.errors import DataServiceError, DependencyUnavailable, error_for
from shared.contracts.deadline import TIMEOUT_HEADER
from shared.contracts.problem import Problem
from shared.observability.logs import REQUEST_ID
from shared.observability.metrics import CLIENT_DURATION, CLIENT_REQUESTS, outcome_of

type Params = Mapping[str, str | int]


def query(**values: str | int | None) -> dict[str, str | int]:
    """Query parameters without the ones left out (``None``)."""
    return {name: value for name, value in values.items() if value is not None}


@dataclass(frozen=True)
class Response:
    status: int
    body: Any
    headers: Mapping[str, str]


# --8<-- [start:client]
class DataServiceClient:
    """A pooled, authenticated JSON client for one data service."""

    def __init__(
        self,
        service: str,
        base_url: str,
        token: SecretStr,
        *,
        timeout: float = 2.0,
        connect_timeout: float = 0.5,
        attempts: int = 3,
        pool_size: int = 100,
    ) -> None:
        self.service = service
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token.get_secret_value()}"}
        self._deadline = timeout  # for the whole call, retries included
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)
        self._attempts = attempts
        self._pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        # One session (one connection pool) per process: opening one per request
        # pays a TCP handshake every time and exhausts ephemeral ports under load.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._pool_size, keepalive_timeout=30),
            timeout=self._timeout,
            headers=self._headers,
            raise_for_status=False,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
            # --8<-- [end:client]

    # --8<-- [start:request]
    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> Response:
        """Send one call; retry it only if it is idempotent; raise a typed error on failure."""
        if idempotent is None:
            idempotent = method in {"GET", "HEAD", "PUT", "DELETE"} or "If-Match" in (headers or {})
            idempotent = idempotent or "Idempotency-Key" in (headers or {})
        retrying = AsyncRetrying(
            # No attempt starts (or waits) past the deadline; each gets only the time left.
            stop=stop_after_attempt(self._attempts if idempotent else 1) | stop_before_delay(self._deadline),
            wait=wait_random_exponential(multiplier=0.05, max=1.0),
            retry=retry_if_exception_type(DependencyUnavailable),
            reraise=True,
        )
        start, outcome = time.perf_counter(), "unavailable"
        deadline = start + self._deadline
        try:
            async for attempt in retrying:
                with attempt:
                    left = max(deadline - time.perf_counter(), 0.001)
                    timeout = aiohttp.ClientTimeout(total=left, sock_connect=self._timeout.sock_connect)
                    # The time left goes along: the data service stops working for us when we stop waiting.
                    budget = {**(headers or {}), TIMEOUT_HEADER: str(max(int(left * 1000), 1))}
                    response = await self._send(
                        method, path, json=json, params=params, headers=budget, timeout=timeout
                    )
            outcome = outcome_of(response.status)
            return response
        except DataServiceError as error:
            if not isinstance(error, DependencyUnavailable):
                outcome = outcome_of(error.problem.status)
            raise
        finally:
            CLIENT_REQUESTS.labels(self.service, method, outcome).inc()
            CLIENT_DURATION.labels(self.service, method).observe(time.perf_counter() - start)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any,
        params: Params | None,
        headers: Mapping[str, str] | None,
        timeout: aiohttp.ClientTimeout,
    ) -> Response:
        if self._session is None:
            raise RuntimeError(f"{self.service} client is not open: use 'async with'")
        if (request_id := REQUEST_ID.get()) is not None:  # one id in the logs of every hop
            headers = {**(headers or {}), "X-Request-ID": request_id}
        try:
            async with self._session.request(
                method, self.base_url + path, json=json, params=params, headers=headers, timeout=timeout
            ) as answer:
                body = _decode(await answer.read())
                if answer.status >= 400:
                    raise error_for(self.service, self._problem(answer.status, body))
                return Response(answer.status, body, dict(answer.headers))
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as error:
            problem = Problem(status=503, title="Service Unavailable", detail=f"{type(error).__name__}")
            raise DependencyUnavailable(self.service, problem) from error
            # --8<-- [end:request]

    def _problem(self, status: int, body: Any) -> Problem:
        try:
            return Problem.model_validate(body)
        except ValidationError:
            return Problem(status=status, title="Unexpected error response", detail=str(body)[:200])


def _decode(raw: bytes) -> Any:
    """JSON if it is JSON; a proxy's HTML error page stays text instead of crashing the caller."""
    if not raw:
        return None
    try:
        return jsonlib.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")
