"""pg_data_service against a real PostgreSQL: the contract a business service relies on."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from patterns.testing.servers import in_process
from patterns.testing.tcp_proxy import tcp_proxy
from pg_data_service.app import create_app
from pg_data_service.settings import Settings, asyncpg_url
from reference_system.ports import free_port
from shared.contracts.deadline import TIMEOUT_HEADER
from shared.settings import parse_service_tokens
from tests.examples.services.conftest import TOKENS, auth

PROBLEM = "application/problem+json"
ALICE = {"email": "alice@example.org", "name": "Alice"}
ITEMS = [
    {"sku": "book-1", "quantity": 2, "unit_price": "12.50"},
    {"sku": "pen", "quantity": 1, "unit_price": "1.25"},
]


async def new_user(pg: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await pg.post("/users", json=ALICE | fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    return body


async def test_created_user_is_returned_with_etag_and_location(pg: httpx.AsyncClient) -> None:
    response = await pg.post("/users", json=ALICE)
    assert response.status_code == 201
    user = response.json()
    assert user | {"id": 0, "created_at": ""} == {
        "id": 0,
        "email": "alice@example.org",
        "name": "Alice",
        "telegram_chat_id": None,
        "created_at": "",
        "version": 1,
    }
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == f"/users/{user['id']}"
    got = await pg.get(f"/users/{user['id']}")
    assert got.json() == user
    assert got.headers["ETag"] == '"1"'


async def test_second_user_with_the_same_email_is_a_conflict(pg: httpx.AsyncClient) -> None:
    await new_user(pg)
    assert_problem(await pg.post("/users", json={"email": "ALICE@example.org", "name": "A2"}), 409)


async def test_retried_create_with_same_idempotency_key_returns_first_user(
    pg: httpx.AsyncClient, postgres_url: str
) -> None:
    headers = {"Idempotency-Key": "signup-7f3a"}
    first = await pg.post("/users", json=ALICE, headers=headers)
    again = await pg.post("/users", json=ALICE, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    connection = await asyncpg.connect(postgres_url)
    try:
        assert await connection.fetchval("SELECT count(*) FROM users") == 1
    finally:
        await connection.close()


async def test_reusing_an_idempotency_key_with_a_different_body_is_422(pg: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "signup-7f3a"}
    await pg.post("/users", json=ALICE, headers=headers)
    body = assert_problem(await pg.post("/users", json=ALICE | {"name": "Mallory"}, headers=headers), 422)
    assert "different request" in body["detail"]


async def test_concurrent_creates_with_one_key_make_one_order(pg: httpx.AsyncClient, pg_url: str) -> None:
    user = await new_user(pg)
    order = {"user_id": user["id"], "items": ITEMS}
    key = {"Idempotency-Key": "cart-0042"}
    async with httpx.AsyncClient(base_url=pg_url, headers=auth() | key) as client:
        answers = await asyncio.gather(*(client.post("/orders", json=order) for _ in range(8)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 7
    page = (await pg.get("/orders", params={"user_id": user["id"]})).json()
    assert len(page["items"]) == 1


async def test_idempotency_keys_of_different_callers_do_not_collide(pg: httpx.AsyncClient) -> None:
    key = {"Idempotency-Key": "same-key"}
    first = await pg.post("/users", json=ALICE, headers=key)
    other = await pg.post(
        "/users", json={"email": "bob@example.org", "name": "Bob"}, headers=key | auth("bot")
    )
    assert first.status_code == other.status_code == 201
    assert first.json()["id"] != other.json()["id"]


async def test_order_total_is_computed_and_status_starts_placed(pg: httpx.AsyncClient) -> None:
    user = await new_user(pg)
    order = (await pg.post("/orders", json={"user_id": user["id"], "items": ITEMS})).json()
    assert order["total"] == "26.25"
    assert order["status"] == "placed"
    assert order["version"] == 1


async def test_an_order_for_a_missing_user_is_422_and_its_key_stays_free(pg: httpx.AsyncClient) -> None:
    key = {"Idempotency-Key": "order-for-nobody-0001"}
    assert_problem(await pg.post("/orders", json={"user_id": 999_999, "items": ITEMS}, headers=key), 422)
    user = await new_user(pg)  # the corrected retry, under the same key: the failed create claimed nothing
    retry = await pg.post("/orders", json={"user_id": user["id"], "items": ITEMS}, headers=key)
    assert (retry.status_code, retry.headers.get("Idempotent-Replayed")) == (201, None)


async def test_update_with_current_etag_succeeds_and_bumps_the_version(pg: httpx.AsyncClient) -> None:
    user = await new_user(pg)
    response = await pg.patch(f"/users/{user['id']}", json={"name": "Alice B."}, headers={"If-Match": '"1"'})
    assert response.status_code == 200
    assert response.json()["name"] == "Alice B."
    assert response.json()["version"] == 2
    assert response.headers["ETag"] == '"2"'


async def test_update_with_a_stale_etag_is_412_and_changes_nothing(pg: httpx.AsyncClient) -> None:
    user = await new_user(pg)
    await pg.patch(f"/users/{user['id']}", json={"name": "First"}, headers={"If-Match": '"1"'})
    stale = await pg.patch(f"/users/{user['id']}", json={"name": "Second"}, headers={"If-Match": '"1"'})
    assert_problem(stale, 412)
    assert (await pg.get(f"/users/{user['id']}")).json()["name"] == "First"


@pytest.mark.parametrize(
    ("if_match", "status"),
    [(None, 428), ('"abc"', 412), ('W/"1"', 200), ('"2147483648"', 412), ('"99999999999999999999"', 412)],
)
async def test_if_match_is_required_and_checked(
    pg: httpx.AsyncClient, if_match: str | None, status: int
) -> None:
    user = await new_user(pg)
    headers = {"If-Match": if_match} if if_match else {}
    response = await pg.patch(f"/users/{user['id']}", json={"name": "X"}, headers=headers)
    assert response.status_code == status


async def test_updating_a_missing_user_is_404(pg: httpx.AsyncClient) -> None:
    assert_problem(await pg.patch("/users/424242", json={"name": "X"}, headers={"If-Match": '"1"'}), 404)


async def test_order_status_follows_its_state_machine(pg: httpx.AsyncClient) -> None:
    user = await new_user(pg)
    order = (await pg.post("/orders", json={"user_id": user["id"], "items": ITEMS})).json()
    path = f"/orders/{order['id']}"
    confirmed = await pg.patch(path, json={"status": "confirmed"}, headers={"If-Match": '"1"'})
    assert confirmed.json()["status"] == "confirmed"
    back = await pg.patch(path, json={"status": "placed"}, headers={"If-Match": '"2"'})
    assert_problem(back, 409)
    stale = await pg.patch(path, json={"status": "cancelled"}, headers={"If-Match": '"1"'})
    assert_problem(stale, 412)


async def test_keyset_pagination_walks_every_order_once_newest_first(pg: httpx.AsyncClient) -> None:
    user = await new_user(pg)
    ids = [
        (await pg.post("/orders", json={"user_id": user["id"], "items": ITEMS})).json()["id"]
        for _ in range(7)
    ]
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"user_id": user["id"], "limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await pg.get("/orders", params=params)).json()
        seen += [order["id"] for order in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)


async def test_orders_filter_by_status_and_users_by_chat_id(pg: httpx.AsyncClient) -> None:
    user = await new_user(pg, telegram_chat_id=5551234)
    await pg.post("/orders", json={"user_id": user["id"], "items": ITEMS})
    assert (await pg.get("/orders", params={"status": "confirmed"})).json()["items"] == []
    found = (await pg.get("/users", params={"telegram_chat_id": 5551234})).json()["items"]
    assert [u["id"] for u in found] == [user["id"]]


@pytest.mark.parametrize(
    ("method", "path", "body", "params"),
    [
        ("POST", "/users", {"email": "not-an-email", "name": "A"}, None),
        ("POST", "/users", ALICE | {"is_admin": True}, None),
        ("POST", "/users", {"email": "a@example.org", "name": ""}, None),
        ("POST", "/users", {"email": "a@example.org", "name": {"$ne": ""}}, None),
        ("POST", "/orders", {"user_id": "1; DROP TABLE users", "items": ITEMS}, None),
        ("POST", "/orders", {"user_id": 1, "items": []}, None),
        ("POST", "/orders", {"user_id": 1, "items": [{"sku": "x", "quantity": -1, "unit_price": "1"}]}, None),
        (
            "POST",
            "/orders",
            {"user_id": 1, "items": [{"sku": "x", "quantity": 1, "unit_price": "1e400"}]},
            None,
        ),
        ("POST", "/orders", {"user_id": 2**70, "items": ITEMS}, None),
        ("GET", "/orders", None, {"limit": 100_000}),
        ("GET", "/orders", None, {"limit": -5}),
        ("GET", "/orders", None, {"cursor": "not-a-cursor!"}),
        ("GET", "/orders", None, {"cursor": "WyJ4Il0="}),  # valid base64 of ["x"]: not ours
        ("GET", "/orders", None, {"status": "shipped"}),
        ("GET", "/users/abc", None, None),
        ("GET", "/users/-1", None, None),
        ("GET", "/users", None, {"email": "nul\x00here"}),  # PostgreSQL refuses NUL in text: 22021
    ],
)
async def test_malformed_or_hostile_input_is_422_problem_json(
    pg: httpx.AsyncClient, method: str, path: str, body: Any, params: Any
) -> None:
    assert_problem(await pg.request(method, path, json=body, params=params), 422)


# Text PostgreSQL cannot store (NUL) or UTF-8 cannot encode (a lone surrogate, which Python's JSON parser
# lets through), and control characters no name needs. Sent as \u escapes, as any JSON client may.
@pytest.mark.parametrize("text", ["nul\x00here", "lone \ud800 half", "\udfff", "bell\x07", "line\nbreak"])
async def test_text_a_column_cannot_hold_is_422(pg: httpx.AsyncClient, text: str) -> None:
    json_body = {"Content-Type": "application/json"}
    created = await pg.post(
        "/users", content=json.dumps({"email": "t@example.org", "name": text}), headers=json_body
    )
    assert_problem(created, 422)
    user = (await pg.post("/users", json=ALICE)).json()
    patched = await pg.patch(
        f"/users/{user['id']}", content=json.dumps({"name": text}), headers=json_body | {"If-Match": '"1"'}
    )
    assert_problem(patched, 422)


async def test_malformed_json_is_422_and_an_oversized_body_is_413(pg: httpx.AsyncClient) -> None:
    broken = await pg.post("/users", content=b'{"email": ', headers={"Content-Type": "application/json"})
    assert_problem(broken, 422)
    huge = {"email": "a@example.org", "name": "A" * 100, "padding": "x" * 100_000}
    assert_problem(await pg.post("/users", json=huge), 413)


async def test_a_bad_idempotency_key_header_is_422(pg: httpx.AsyncClient) -> None:
    assert_problem(await pg.post("/users", json=ALICE, headers={"Idempotency-Key": "x" * 300}), 422)


async def test_without_a_token_401_with_a_wrong_one_401_and_not_granted_403(pg: httpx.AsyncClient) -> None:
    anonymous = await pg.get("/users/1", headers={"Authorization": ""})
    assert_problem(anonymous, 401)
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert_problem(await pg.get("/users/1", headers={"Authorization": "Bearer wrong-token-xxxxxxxxxx"}), 401)
    forbidden = await pg.post("/orders", json={"user_id": 1, "items": ITEMS}, headers=auth("bot"))
    assert_problem(forbidden, 403)


async def test_health_live_and_ready(pg: httpx.AsyncClient) -> None:
    assert (await pg.get("/health/live")).json() == {"status": "ok"}
    assert (await pg.get("/health/ready")).json() == {
        "status": "ok",
        "checks": {"process": "ok", "postgresql": "ok"},
    }


async def test_a_crashed_background_job_takes_the_service_out_of_rotation(
    pg_app: FastAPI, pg: httpx.AsyncClient
) -> None:
    """What the lifecycle does when the outbox relay raises: readiness turns 503, naming it."""
    pg_app.state.life.fail("outbox_relay", ConnectionResetError("the broker went away"))
    ready = await pg.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"process": "failed"}


@pytest.mark.parametrize(
    ("given", "for_sqlalchemy"),
    [
        ("postgresql://app:p%40ss%25@db:5432/app", "postgresql+asyncpg://app:p%40ss%25@db:5432/app"),
        ("postgres://app@db/app?ssl=require", "postgresql+asyncpg://app@db/app?ssl=require"),
        ("postgresql+asyncpg://app@db/app", "postgresql+asyncpg://app@db/app"),
        (  # several hosts: libpq's form in, SQLAlchemy's out (a failover test runs it for real)
            "postgresql://app:p%40ss@db1:5432,db2:6432/app?target_session_attrs=read-write",
            "postgresql+asyncpg://app:p%40ss@/app?host=db1%3A5432&host=db2%3A6432&target_session_attrs=read-write",
        ),
    ],
)
def test_the_database_url_gets_the_asyncpg_driver_and_keeps_its_password(
    given: str, for_sqlalchemy: str
) -> None:
    assert asyncpg_url(given) == for_sqlalchemy


async def test_a_service_token_rotates_without_a_refused_call(pg_settings: Settings) -> None:
    """The procedure on the service-auth page, step by step: at every step, the token each running
    caller holds is accepted; at the end, the old one is refused."""
    old, new = "api-token-2025-aaaaaaaa", "api-token-2026-bbbbbbbb"

    async def answers(service_tokens: str) -> dict[str, int]:
        settings = pg_settings.model_copy(update={"service_tokens": parse_service_tokens(service_tokens)})
        async with in_process(create_app(settings)) as client:
            return {
                token: (
                    await client.get("/users/999999", headers={"Authorization": f"Bearer {token}"})
                ).status_code
                for token in (old, new)
            }

    assert await answers(f"api={old}") == {old: 404, new: 401}  # before: callers hold the old token
    assert await answers(f"api={old},api={new}") == {old: 404, new: 404}  # 1. both; 2. callers switch
    assert await answers(f"api={new}") == {old: 401, new: 404}  # 3. the old one removed


async def test_database_down_is_a_fast_503_and_not_ready() -> None:
    settings = Settings(
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/test",
        service_tokens=TOKENS,
    )
    app: FastAPI = create_app(settings)
    async with in_process(app, headers=auth()) as client:
        response = await asyncio.wait_for(client.get("/users/1"), timeout=5)
        assert_problem(response, 503)
        assert response.headers["Retry-After"] == "1"
        ready = await client.get("/health/ready")
        assert_problem(ready, 503)
        assert ready.json()["checks"] == {"postgresql": "failed"}  # the cause in the log only


async def test_openapi_documents_auth_and_examples_that_validate(pg: httpx.AsyncClient) -> None:
    spec = (await pg.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["type"] == "http"
    schemas = spec["components"]["schemas"]
    for name in ("UserCreate", "UserUpdate", "OrderCreate", "OrderStatusUpdate"):
        assert schemas[name]["examples"], f"{name} has no example"
    # the documented examples are real requests: they succeed
    [example] = schemas["UserCreate"]["examples"]
    user = (await pg.post("/users", json=example)).json()
    [order_example] = schemas["OrderCreate"]["examples"]
    created = await pg.post("/orders", json=order_example | {"user_id": user["id"]})
    assert created.status_code == 201


async def test_a_network_that_hangs_is_a_bounded_503_not_a_held_request(pg_settings: Settings) -> None:
    """The database's network stops passing bytes mid-connection: PostgreSQL never sees the query,
    so its statement timeout cannot fire. The driver's own timeout ends the wait."""
    parts = urlsplit(str(pg_settings.database_url))
    async with tcp_proxy((parts.hostname or "127.0.0.1", parts.port or 5432)) as proxy:
        through = str(pg_settings.database_url).replace(f":{parts.port}/", f":{proxy.port}/")
        settings = pg_settings.model_copy(update={"database_url": through, "statement_timeout_ms": 500})
        async with in_process(create_app(settings), headers=auth()) as client:
            listing = {"email": "nobody@example.org"}  # a list: the session's path, not the read pool's
            assert (await client.get("/users", params=listing)).status_code == 200  # connected, pooled
            proxy.stall()
            started = time.monotonic()
            response = await asyncio.wait_for(client.get("/users", params=listing), timeout=10)
            assert_problem(response, 503)
            assert time.monotonic() - started < 4  # 0.5 s statement timeout + 1 s: the driver gave up
            proxy.resume()


async def test_a_database_url_naming_sqlalchemys_driver_serves_reads(pg_settings: Settings) -> None:
    """``postgresql+asyncpg://`` is a valid DATABASE_URL: the engine and the read pool both accept it."""
    url = str(pg_settings.database_url).replace("postgresql://", "postgresql+asyncpg://", 1)
    settings = pg_settings.model_copy(update={"database_url": url})
    async with in_process(create_app(settings), headers=auth()) as client:
        user = (await client.post("/users", json={"email": "driver@example.org", "name": "D"})).json()
        assert (await client.get(f"/users/{user['id']}")).json() == user


async def test_a_read_by_id_gives_up_when_the_callers_time_is_up(pg_settings: Settings) -> None:
    """Reads by id take the read pool, not the session: the caller's time left (at least the 1 s
    floor) bounds them there too, well before the 5 s statement timeout and the driver's 6 s."""
    parts = urlsplit(str(pg_settings.database_url))
    async with tcp_proxy((parts.hostname or "127.0.0.1", parts.port or 5432)) as proxy:
        through = str(pg_settings.database_url).replace(f":{parts.port}/", f":{proxy.port}/")
        settings = pg_settings.model_copy(update={"database_url": through})
        async with in_process(create_app(settings), headers=auth()) as client:
            assert (await client.get("/orders/999999")).status_code == 404  # connected, pooled
            proxy.stall()
            started = time.monotonic()
            read = client.get("/orders/999999", headers={TIMEOUT_HEADER: "300"})
            assert_problem(await asyncio.wait_for(read, timeout=10), 503)
            assert 0.9 < time.monotonic() - started < 2  # the floor, not 300 ms, and not twice the floor
            proxy.resume()


async def test_the_callers_time_left_bounds_the_work_done_for_it(
    pg: httpx.AsyncClient, postgres_url: str
) -> None:
    """A caller with 300 ms left updates a row another transaction holds: PostgreSQL cancels the
    wait at the 1 s floor, not at the 5 s statement timeout, and nothing keeps waiting for it."""
    user = (await pg.post("/users", json={"email": "slow@example.org", "name": "Slow"})).json()
    holder = await asyncpg.connect(postgres_url)
    try:
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user["id"])
            started = time.monotonic()
            headers = {"If-Match": '"1"', TIMEOUT_HEADER: "300"}
            response = await pg.patch(f"/users/{user['id']}", json={"name": "B"}, headers=headers)
            assert_problem(response, 503)
            assert time.monotonic() - started < 2
            waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            assert await holder.fetchval(waiting) == 0
    finally:
        await holder.close()
    # The pooled connection kept its own statement timeout: the same update, unhurried, succeeds.
    again = await pg.patch(f"/users/{user['id']}", json={"name": "B"}, headers={"If-Match": '"1"'})
    assert again.status_code == 200


async def test_a_link_code_links_one_chat_once_within_ten_minutes(
    pg: httpx.AsyncClient, postgres_url: str
) -> None:
    user = (await pg.post("/users", json={"email": "link@example.org", "name": "Link"})).json()
    bot = auth("bot")
    assert_problem(await pg.post(f"/users/{user['id']}/telegram-link-codes", headers=bot), 403)  # the API's
    first = (await pg.post(f"/users/{user['id']}/telegram-link-codes")).json()
    assert_problem(
        await pg.post("/telegram-links", json={"code": first["code"], "chat_id": 5}), 403
    )  # the bot's
    linked = await pg.post("/telegram-links", json={"code": first["code"], "chat_id": 5}, headers=bot)
    assert linked.json()["telegram_chat_id"] == 5
    again = await pg.post("/telegram-links", json={"code": first["code"], "chat_id": 6}, headers=bot)
    assert_problem(again, 404)  # used
    expired = (await pg.post(f"/users/{user['id']}/telegram-link-codes")).json()
    connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute("UPDATE telegram_link_codes SET expires_at = now() - interval '1 second'")
        stored = await connection.fetchval(
            "SELECT count(*) FROM telegram_link_codes WHERE code_hash = $1", expired["code"]
        )
        assert stored == 0  # only the hash is kept
    finally:
        await connection.close()
    assert_problem(
        await pg.post("/telegram-links", json={"code": expired["code"], "chat_id": 6}, headers=bot), 404
    )
    other = (await pg.post("/users", json={"email": "other@example.org", "name": "O"})).json()
    taken = (await pg.post(f"/users/{other['id']}/telegram-link-codes")).json()
    assert_problem(
        await pg.post("/telegram-links", json={"code": taken["code"], "chat_id": 5}, headers=bot), 409
    )


async def announced_cancellations(postgres_url: str, order_id: int) -> list[dict[str, Any]]:
    """The ``order.cancelled`` events the outbox holds for the order: what the relay will publish."""
    connection = await asyncpg.connect(postgres_url)
    try:
        rows = await connection.fetch(
            "SELECT envelope FROM outbox WHERE event_type = 'order.cancelled' AND order_id = $1", order_id
        )
    finally:
        await connection.close()
    return [json.loads(row["envelope"])["data"] for row in rows]


async def test_twenty_concurrent_cancels_cancel_once_and_announce_once(
    pg: httpx.AsyncClient, postgres_url: str
) -> None:
    user = await new_user(pg)
    order = (await pg.post("/orders", json={"user_id": user["id"], "items": ITEMS})).json()
    cancel = {"reason": "customer"}
    answers = await asyncio.gather(
        *(pg.post(f"/orders/{order['id']}/cancellation", json=cancel) for _ in range(20))
    )
    assert {(a.status_code, a.json()["status"], a.json()["version"]) for a in answers} == {
        (200, "cancelled", 2)
    }
    announced = await announced_cancellations(postgres_url, order["id"])
    assert announced == [{"order_id": order["id"], "user_id": user["id"], "reason": "customer"}]


async def test_a_conditional_cancel_cancels_only_the_version_read(
    pg: httpx.AsyncClient, postgres_url: str
) -> None:
    user = await new_user(pg)
    order = (await pg.post("/orders", json={"user_id": user["id"], "items": ITEMS})).json()
    path = f"/orders/{order['id']}"
    await pg.patch(path, json={"status": "confirmed"}, headers={"If-Match": '"1"'})
    late = {"reason": "not_confirmed_in_time"}
    stale = await pg.post(f"{path}/cancellation", json=late, headers={"If-Match": '"1"'})
    assert_problem(stale, 412)
    beyond = await pg.post(f"{path}/cancellation", json=late, headers={"If-Match": '"2147483648"'})
    assert_problem(beyond, 412)  # past the INTEGER column: no version ever matches it (not a 503)
    assert (await pg.get(path)).json()["status"] == "confirmed"
    assert await announced_cancellations(postgres_url, order["id"]) == []
    current = await pg.post(f"{path}/cancellation", json=late, headers={"If-Match": '"2"'})
    assert (current.json()["status"], current.json()["version"]) == ("cancelled", 3)


async def test_an_operator_s_cancel_through_patch_is_announced_too(
    pg: httpx.AsyncClient, postgres_url: str
) -> None:
    user = await new_user(pg)
    order = (await pg.post("/orders", json={"user_id": user["id"], "items": ITEMS})).json()
    cancelled = await pg.patch(
        f"/orders/{order['id']}", json={"status": "cancelled"}, headers={"If-Match": '"1"'}
    )
    assert cancelled.json()["cancellation_reason"] == "support"
    assert [event["reason"] for event in await announced_cancellations(postgres_url, order["id"])] == [
        "support"
    ]


@pytest.mark.parametrize(
    ("path", "body", "caller", "status"),
    [
        ("/orders/{id}/cancellation", {"reason": "CUSTOMER"}, "api", 422),
        ("/orders/{id}/cancellation", {"reason": "customer", "refund": True}, "api", 422),
        ("/orders/{id}/cancellation", {}, "api", 422),
        ("/orders/{id}/cancellation", ["customer"], "api", 422),
        ("/orders/424242/cancellation", {"reason": "customer"}, "api", 404),
        ("/orders/9223372036854775808/cancellation", {"reason": "customer"}, "api", 422),
        ("/orders/{id}/cancellation", {"reason": "customer"}, "bot", 403),  # the bot may only read
    ],
)
async def test_a_bad_cancel_is_refused_and_cancels_nothing(
    pg: httpx.AsyncClient, path: str, body: Any, caller: str, status: int
) -> None:
    user = await new_user(pg)
    order = (await pg.post("/orders", json={"user_id": user["id"], "items": ITEMS})).json()
    response = await pg.post(path.format(id=order["id"]), json=body, headers=auth(caller))
    assert_problem(response, status)
    assert (await pg.get(f"/orders/{order['id']}")).json()["status"] == "placed"


async def test_the_database_refuses_a_cancelled_order_without_a_reason(
    pg: httpx.AsyncClient, postgres_url: str
) -> None:
    """The constraint of migration 0006 holds for any writer, not only this service's code."""
    user = await new_user(pg)
    order = (await pg.post("/orders", json={"user_id": user["id"], "items": ITEMS})).json()
    connection = await asyncpg.connect(postgres_url)
    try:
        with pytest.raises(asyncpg.CheckViolationError, match="orders_cancelled_has_reason"):
            await connection.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order["id"])
    finally:
        await connection.close()


async def test_an_order_id_the_sequence_hands_out_twice_is_409_not_an_unknown_user(
    pg: httpx.AsyncClient, postgres_url: str
) -> None:
    """A sequence left behind (a restore, a copy) collides with a stored order: that is a conflict
    with stored data, not the caller's unknown user; only the foreign key's violation is the 422."""
    user = await new_user(pg)
    first = (await pg.post("/orders", json={"user_id": user["id"], "items": ITEMS})).json()
    connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute("SELECT setval('orders_id_seq', $1, false)", first["id"])
    finally:
        await connection.close()
    assert_problem(await pg.post("/orders", json={"user_id": user["id"], "items": ITEMS}), 409)
