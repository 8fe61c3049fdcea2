"""mongo_data_service against a MongoDB wire-protocol server: activity, preferences, injection guard."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import ExecutionTimeout

from mongo_data_service.app import create_app
from mongo_data_service.routes import database
from mongo_data_service.settings import Settings as MongoSettings
from patterns.testing.pytest_fixtures import MongoTarget
from patterns.testing.servers import in_process
from patterns.testing.tcp_proxy import tcp_proxy
from shared.contracts.deadline import TIMEOUT_HEADER
from tests.examples.services.conftest import auth
from tests.examples.services.test_pg_data_service import assert_problem


async def test_appended_activity_is_listed_newest_first(mongo: httpx.AsyncClient) -> None:
    for n in range(3):
        response = await mongo.post(
            "/activity", json={"user_id": 7, "kind": "order.placed", "payload": {"n": n}}
        )
        assert response.status_code == 201
    await mongo.post("/activity", json={"user_id": 8, "kind": "order.placed"})
    page = (await mongo.get("/activity", params={"user_id": 7})).json()
    assert [item["payload"]["n"] for item in page["items"]] == [2, 1, 0]
    assert page["next_cursor"] is None


async def test_cursor_pagination_walks_all_activity_once(mongo: httpx.AsyncClient) -> None:
    for n in range(7):
        await mongo.post("/activity", json={"user_id": 7, "kind": "login", "payload": {"n": n}})
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"user_id": 7, "limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await mongo.get("/activity", params=params)).json()
        seen += [item["payload"]["n"] for item in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert sorted(seen) == list(range(7))
    assert len(seen) == 7


async def test_filter_by_kind(mongo: httpx.AsyncClient) -> None:
    await mongo.post("/activity", json={"user_id": 7, "kind": "login"})
    await mongo.post("/activity", json={"user_id": 7, "kind": "order.placed"})
    page = (await mongo.get("/activity", params={"user_id": 7, "kind": "login"})).json()
    assert [item["kind"] for item in page["items"]] == ["login"]


async def test_retried_append_with_same_key_stores_one_document(
    mongo: httpx.AsyncClient, mongo_target: MongoTarget
) -> None:
    body = {"user_id": 7, "kind": "order.confirmed", "payload": {"order_id": 1}}
    first = await mongo.post("/activity", json=body, headers={"Idempotency-Key": "confirm-1"})
    again = await mongo.post("/activity", json=body, headers={"Idempotency-Key": "confirm-1"})
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await stored_activity(mongo_target) == 1


async def test_a_retry_with_the_payload_keys_in_another_order_is_the_same_request(
    mongo: httpx.AsyncClient, mongo_target: MongoTarget
) -> None:
    key = {"Idempotency-Key": "confirm-order-1"}
    body = {"user_id": 7, "kind": "order.confirmed"}
    first = await mongo.post("/activity", json=body | {"payload": {"order_id": 1, "total": "9"}}, headers=key)
    again = await mongo.post("/activity", json=body | {"payload": {"total": "9", "order_id": 1}}, headers=key)
    assert again.status_code == 201
    assert again.json() == first.json()
    assert await stored_activity(mongo_target) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "order.cancelled"},
        {"payload": {"order_id": 2}},
        {"payload": {"order_id": 1, "confirmed": 1}},  # equal to True in Python, not in JSON
    ],
)
async def test_reusing_an_idempotency_key_with_a_different_body_is_422(
    mongo: httpx.AsyncClient, mongo_target: MongoTarget, change: dict[str, Any]
) -> None:
    key = {"Idempotency-Key": "confirm-order-1"}
    body = {"user_id": 7, "kind": "order.confirmed", "payload": {"order_id": 1, "confirmed": True}}
    await mongo.post("/activity", json=body, headers=key)
    problem = assert_problem(await mongo.post("/activity", json=body | change, headers=key), 422)
    assert "different request" in problem["detail"]
    assert await stored_activity(mongo_target) == 1


async def stored_activity(target: MongoTarget) -> int:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(target.url)
    try:
        return await client[target.database].activity.count_documents({})
    finally:
        await client.close()


async def test_a_writer_finds_what_it_appended_under_a_key_and_nobody_else_does(
    mongo: httpx.AsyncClient,
) -> None:
    """How a saga's compensation learns whether the step it would undo ever ran."""
    record = {"user_id": 5, "kind": "order.confirmed", "payload": {"order_id": 9}}
    key = "order-confirmed-9"
    appended = await mongo.post("/activity", json=record, headers=auth("worker") | {"Idempotency-Key": key})
    found = await mongo.get("/activity/by-key", params={"key": key}, headers=auth("worker"))
    assert found.status_code == 200
    assert found.json() == appended.json()
    for caller, asked in (("api", key), ("worker", "never-used-key")):  # another's key, or no record
        nothing = await mongo.get("/activity/by-key", params={"key": asked}, headers=auth(caller))
        assert (nothing.status_code, nothing.json()) == (200, None)
    assert_problem(await mongo.get("/activity/by-key", params={"key": key}, headers=auth("bot")), 403)


@pytest.mark.parametrize("key", ["short", "x" * 256, "späterer-key", "with space 123", "tab\there123"])
async def test_a_key_no_writer_could_have_sent_is_422(mongo: httpx.AsyncClient, key: str) -> None:
    assert_problem(await mongo.get("/activity/by-key", params={"key": key}), 422)


async def test_preferences_put_then_get(mongo: httpx.AsyncClient) -> None:
    assert_problem(await mongo.get("/preferences/7"), 404)
    put = await mongo.put("/preferences/7", json={"channels": ["telegram"], "language": "de"})
    assert put.json() == {"user_id": 7, "channels": ["telegram"], "language": "de", "version": 1}
    await mongo.put("/preferences/7", json={"channels": [], "language": "en"})
    assert (await mongo.get("/preferences/7")).json()["version"] == 2


@pytest.mark.parametrize(
    "payload",
    [
        {"$where": "sleep(1000)"},
        {"a.b": 1},
        {"nested": {"$gt": ""}},
        {"list": [{"ok": 1}, {"$set": {"x": 1}}]},
        {"": 1},
        {"deep": {"a": {"b": {"c": {"d": {"e": 1}}}}}},
        {f"k{i}": i for i in range(101)},
    ],
)
async def test_payload_cannot_smuggle_operators_dotted_keys_or_bombs(
    mongo: httpx.AsyncClient, payload: dict[str, Any]
) -> None:
    assert_problem(await mongo.post("/activity", json={"user_id": 7, "kind": "x", "payload": payload}), 422)


@pytest.mark.parametrize(
    "payload",
    [
        {"note": "lone \ud800 half"},
        {"\udfff": 1},
        {"deep": [{"note": "\ud800"}]},
        {"big": 2**64},
        {"small": -(2**63) - 1},
    ],
)
async def test_a_payload_bson_cannot_encode_is_422(mongo: httpx.AsyncClient, payload: dict[str, Any]) -> None:
    """A lone surrogate is no UTF-8 and an integer past 64 bits no BSON type; both come as plain JSON."""
    body = json.dumps({"user_id": 7, "kind": "x", "payload": payload})
    assert_problem(
        await mongo.post("/activity", content=body, headers={"Content-Type": "application/json"}), 422
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "params"),
    [
        ("POST", "/activity", {"user_id": {"$gt": 0}, "kind": "x"}, None),
        ("POST", "/activity", {"user_id": 7, "kind": "Robert'); DROP"}, None),
        ("POST", "/activity", {"user_id": 7, "kind": "x", "extra": 1}, None),
        ("GET", "/activity", None, {"user_id": '{"$gt": 0}'}),
        ("GET", "/activity", None, {"user_id": 7, "kind": "$where"}),
        ("GET", "/activity", None, {"user_id": 7, "limit": 0}),
        ("GET", "/activity", None, {"user_id": 7, "limit": 1000}),
        ("GET", "/activity", None, {"user_id": 7, "cursor": "WyJ4IiwieSJd"}),
        ("GET", "/activity", None, {}),
        ("PUT", "/preferences/7", {"channels": ["carrier-pigeon"]}, None),
        ("PUT", "/preferences/0", {"channels": []}, None),
    ],
)
async def test_malformed_or_hostile_input_is_422(
    mongo: httpx.AsyncClient, method: str, path: str, body: Any, params: Any
) -> None:
    assert_problem(await mongo.request(method, path, json=body, params=params), 422)


async def test_auth_and_permissions(mongo: httpx.AsyncClient) -> None:
    assert_problem(await mongo.get("/activity", params={"user_id": 7}, headers={"Authorization": ""}), 401)
    assert_problem(await mongo.post("/activity", json={"user_id": 7, "kind": "x"}, headers=auth("bot")), 403)
    assert (await mongo.get("/activity", params={"user_id": 7}, headers=auth("bot"))).status_code == 200


async def test_health_and_indexes(mongo: httpx.AsyncClient, mongo_target: MongoTarget) -> None:
    assert (await mongo.get("/health/ready")).json() == {
        "status": "ok",
        "checks": {"process": "ok", "mongodb": "ok"},
    }
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_target.url)
    try:
        indexes = await client[mongo_target.database].preferences.index_information()
    finally:
        await client.close()
    assert any(index.get("unique") for index in indexes.values())


async def test_a_network_that_hangs_is_a_bounded_503_not_a_held_request(
    mongo_settings: MongoSettings,
) -> None:
    """The database's network stops passing bytes: PyMongo's ``timeoutMS`` ends every operation."""
    parts = urlsplit(str(mongo_settings.mongodb_url))
    async with tcp_proxy((parts.hostname or "127.0.0.1", parts.port or 27017)) as proxy:
        through = str(mongo_settings.mongodb_url).replace(f":{parts.port}", f":{proxy.port}", 1)
        settings = mongo_settings.model_copy(update={"mongodb_url": through, "operation_timeout_ms": 1000})
        async with in_process(create_app(settings), headers=auth()) as client:
            assert (await client.get("/preferences/1")).status_code in {200, 404}  # connected
            proxy.stall()
            started = time.monotonic()
            response = await asyncio.wait_for(client.get("/preferences/1"), timeout=10)
            assert_problem(response, 503)
            assert time.monotonic() - started < 4
            proxy.resume()


async def test_the_callers_time_left_ends_the_operations_done_for_it(mongo_settings: MongoSettings) -> None:
    """With 1 s left in ``X-Request-Timeout-Ms``, a request on a hanging network ends after about 1 s,
    not after the service's own 5 s ``OPERATION_TIMEOUT_MS``."""
    parts = urlsplit(str(mongo_settings.mongodb_url))
    async with tcp_proxy((parts.hostname or "127.0.0.1", parts.port or 27017)) as proxy:
        through = str(mongo_settings.mongodb_url).replace(f":{parts.port}", f":{proxy.port}", 1)
        settings = mongo_settings.model_copy(update={"mongodb_url": through})
        async with in_process(create_app(settings), headers=auth()) as client:
            assert (await client.get("/preferences/1")).status_code in {200, 404}  # connected
            proxy.stall()
            started = time.monotonic()
            response = await client.get("/preferences/1", headers={TIMEOUT_HEADER: "1000"})
            assert_problem(response, 503)
            assert time.monotonic() - started < 3
            proxy.resume()
            assert (await client.get("/preferences/1")).status_code in {200, 404}  # no timeout left behind


async def test_too_little_time_left_for_the_next_operation_is_a_503(mongo_settings: MongoSettings) -> None:
    """PyMongo refuses to send an operation it knows will outlive the budget (``ExecutionTimeout``, which is
    no ConnectionFailure): under load, with 1 s left, the fuzzer saw that answered 500."""

    async def no_time_left() -> AsyncIterator[None]:
        raise ExecutionTimeout("operation would exceed time limit", 50, {"ok": 0, "code": 50})
        yield

    app = create_app(mongo_settings)
    app.dependency_overrides[database] = no_time_left
    async with in_process(app, headers=auth()) as client:
        answer = await client.get("/activity", params={"user_id": 7})
    assert_problem(answer, 503)
    assert answer.json()["detail"] == "MongoDB timed out"
    assert answer.headers["Retry-After"] == "1"
