"""The shared HTTP client: deadlines, retries only when safe, typed errors with problem details."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import SecretStr

from patterns.testing.servers import serving
from reference_system.ports import free_port
from shared.clients.errors import (
    Conflict,
    DataServiceError,
    DependencyUnavailable,
    InvalidRequest,
    NotFound,
    Unauthorized,
)
from shared.clients.http import DataServiceClient
from shared.contracts.deadline import TIMEOUT_HEADER
from shared.contracts.problem import PROBLEM_JSON

TOKEN = SecretStr("client-test-token-0123456789")


class Flaky:
    """A data service that fails ``failures`` times with ``status`` before it answers 200."""

    def __init__(self) -> None:
        self.calls = 0
        self.failures = 0
        self.status = 503
        self.app = FastAPI()
        self.app.add_api_route("/thing", self.answer, methods=["GET", "POST", "PUT"])
        self.app.add_api_route("/status/{code}", self.problem, methods=["GET"])
        self.app.add_api_route("/html", self.html, methods=["GET"])
        self.app.add_api_route("/whoami", self.whoami, methods=["GET"])

    async def answer(self) -> JSONResponse:
        self.calls += 1
        if self.calls <= self.failures:
            return JSONResponse({"title": "x", "status": self.status}, self.status, media_type=PROBLEM_JSON)
        return JSONResponse({"ok": True, "calls": self.calls})

    async def problem(self, code: int) -> JSONResponse:
        return JSONResponse(
            {"title": "t", "status": code, "detail": f"said {code}"}, code, media_type=PROBLEM_JSON
        )

    async def html(self) -> HTMLResponse:
        return HTMLResponse("<h1>502 Bad Gateway</h1>", status_code=502)

    async def whoami(self, request: Request) -> dict[str, str]:
        return {
            "authorization": request.headers.get("authorization", ""),
            "time_left_ms": request.headers.get(TIMEOUT_HEADER, ""),
        }


@pytest.fixture
async def flaky() -> AsyncIterator[tuple[Flaky, DataServiceClient]]:
    service = Flaky()
    async with serving(service.app) as url, DataServiceClient("flaky", url, TOKEN, timeout=1) as client:
        yield service, client


async def test_every_call_carries_the_service_token_and_the_time_left(
    flaky: tuple[Flaky, DataServiceClient],
) -> None:
    _, client = flaky
    body = (await client.request("GET", "/whoami")).body
    assert body["authorization"] == f"Bearer {TOKEN.get_secret_value()}"
    assert 0 < int(body["time_left_ms"]) <= 1000  # of the client's 1 s deadline


async def test_a_read_is_retried_through_transient_503s(flaky: tuple[Flaky, DataServiceClient]) -> None:
    service, client = flaky
    service.failures = 2
    response = await client.request("GET", "/thing")
    assert response.body == {"ok": True, "calls": 3}


async def test_a_plain_post_is_never_retried(flaky: tuple[Flaky, DataServiceClient]) -> None:
    service, client = flaky
    service.failures = 1
    with pytest.raises(DependencyUnavailable):
        await client.request("POST", "/thing", json={})
    assert service.calls == 1


async def test_a_post_with_an_idempotency_key_is_retried(flaky: tuple[Flaky, DataServiceClient]) -> None:
    service, client = flaky
    service.failures = 1
    response = await client.request("POST", "/thing", json={}, headers={"Idempotency-Key": "k1"})
    assert response.body == {"ok": True, "calls": 2}


async def test_retries_stop_after_the_last_attempt(flaky: tuple[Flaky, DataServiceClient]) -> None:
    service, client = flaky
    service.failures = 10
    with pytest.raises(DependencyUnavailable):
        await client.request("GET", "/thing")
    assert service.calls == 3


async def test_a_hanging_service_costs_one_deadline_not_one_per_attempt() -> None:
    calls = 0
    app = FastAPI()

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(4)  # well past the deadline; short, so the server stops soon
        return {"ok": True}

    async with serving(app) as url, DataServiceClient("slow", url, TOKEN, timeout=1) as client:
        with pytest.raises(DependencyUnavailable) as raised:
            await client.request("GET", "/slow")
    assert raised.value.problem.status == 503
    assert calls == 1  # the first attempt used the whole deadline: no second one (three 1 s attempts before)


async def test_a_client_error_is_not_retried(flaky: tuple[Flaky, DataServiceClient]) -> None:
    service, client = flaky
    service.failures, service.status = 1, 409
    with pytest.raises(Conflict):
        await client.request("GET", "/thing")
    assert service.calls == 1


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (400, InvalidRequest),
        (422, InvalidRequest),
        (401, Unauthorized),
        (403, Unauthorized),
        (404, NotFound),
        (409, Conflict),
        (412, Conflict),
        (504, DependencyUnavailable),
        (500, DataServiceError),
    ],
)
async def test_each_status_maps_to_a_typed_error_carrying_the_problem(
    flaky: tuple[Flaky, DataServiceClient], code: int, error: type[DataServiceError]
) -> None:
    _, client = flaky
    with pytest.raises(error) as raised:
        await client.request("GET", f"/status/{code}", idempotent=False)
    assert type(raised.value) is error
    assert raised.value.problem.status == code
    assert raised.value.problem.detail == f"said {code}"
    assert str(raised.value) == f"flaky: {code} t: said {code}"


async def test_an_html_error_page_from_a_proxy_becomes_a_typed_error(
    flaky: tuple[Flaky, DataServiceClient],
) -> None:
    _, client = flaky
    with pytest.raises(DependencyUnavailable) as raised:
        await client.request("GET", "/html", idempotent=False)
    assert raised.value.problem.detail == "<h1>502 Bad Gateway</h1>"


async def test_nobody_listening_is_dependency_unavailable() -> None:
    async with DataServiceClient("gone", f"http://127.0.0.1:{free_port()}", TOKEN) as client:
        with pytest.raises(
            DependencyUnavailable, match="gone: 503 Service Unavailable: ClientConnectorError"
        ):
            await client.request("GET", "/thing")


async def test_a_client_used_outside_its_block_says_so() -> None:
    client = DataServiceClient("pg", "http://127.0.0.1:1", TOKEN)
    with pytest.raises(RuntimeError, match="client is not open"):
        await client.request("GET", "/", idempotent=False)
