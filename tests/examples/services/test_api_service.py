"""api_service composed over real data services on loopback, with Redis as its cache."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr, ValidationError
from redis.asyncio import Redis
from starlette.types import ASGIApp, Receive, Scope, Send

from api_service import routes
from api_service.app import create_app
from api_service.auth import EndUsers, issue
from api_service.cache import SCHEMA, TOMBSTONE, UserCache, body_of
from api_service.routes import ORDERS_V1
from api_service.settings import EndUserTokens, Settings
from api_service.token import main as token_command
from patterns.testing.pytest_fixtures import RedisTarget
from patterns.testing.servers import in_process, serving
from patterns.testing.tcp_proxy import tcp_proxy
from pg_data_service.app import create_app as create_pg_app
from pg_data_service.settings import Settings as PgSettings
from reference_system.ports import free_port
from reference_system.waiting import eventually
from shared.clients.pg import PgDataClient
from shared.contracts.pg import User
from shared.deprecation import Deprecated
from shared.problems import ProblemError
from tests.examples.services.conftest import TOKENS
from tests.examples.services.test_pg_data_service import ITEMS, assert_problem

ALICE = {"email": "alice@example.org", "name": "Alice"}
BOB = {"email": "bob@example.org", "name": "Bob"}
END_USERS = EndUserTokens(jwt_key=SecretStr("test-only-key-for-end-user-tokens-0123"))


def bearer(user_id: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue(END_USERS, user_id)}"}


async def sign_up(api: httpx.AsyncClient, person: dict[str, str] = ALICE) -> dict[str, Any]:
    """Sign up, then act as that user: the client sends their token from now on."""
    response = await api.post("/users", json=person)
    assert response.status_code == 201, response.text
    user: dict[str, Any] = response.json()
    api.headers.update(bearer(user["id"]))
    return user


def api_settings(pg_url: str, mongo_url: str, redis: RedisTarget, **overrides: Any) -> Settings:
    return Settings(
        pg_data_url=pg_url,
        mongo_data_url=mongo_url,
        service_token=SecretStr(TOKENS["api"]),
        jwt_key=END_USERS.jwt_key,
        redis_url=redis.url,
        cache_prefix=redis.prefix,
        **overrides,
    )


async def client_for(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process(app) as client:
        yield client


@pytest.fixture
async def api(pg_url: str, mongo_url: str, redis_target: RedisTarget) -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_for(create_app(api_settings(pg_url, mongo_url, redis_target))):
        yield client


async def test_register_then_read_fills_the_cache(api: httpx.AsyncClient, redis_target: RedisTarget) -> None:
    user = await sign_up(api)
    redis = Redis.from_url(redis_target.url)
    try:
        key = f"{redis_target.prefix}user:{SCHEMA}:{user['id']}"
        assert await redis.exists(key) == 0
        first = await api.get(f"/users/{user['id']}")
        assert first.json() == user
        assert first.headers["ETag"] == '"1"'
        assert await redis.exists(key) == 1
        ttl = await redis.ttl(key)
        assert 270 <= ttl <= 330  # 300 s ± 10 % jitter
    finally:
        await redis.aclose()


async def test_an_update_invalidates_the_cached_user(api: httpx.AsyncClient) -> None:
    user = await sign_up(api)
    await api.get(f"/users/{user['id']}")  # cached at version 1
    updated = await api.patch(f"/users/{user['id']}", json={"name": "Alice B."}, headers={"If-Match": '"1"'})
    assert updated.status_code == 200
    again = (await api.get(f"/users/{user['id']}")).json()
    assert again["name"] == "Alice B."
    assert again["version"] == 2


async def test_a_stale_update_is_412_and_an_unknown_user_404(api: httpx.AsyncClient) -> None:
    user = await sign_up(api)
    await api.patch(f"/users/{user['id']}", json={"name": "B"}, headers={"If-Match": '"1"'})
    assert_problem(
        await api.patch(f"/users/{user['id']}", json={"name": "C"}, headers={"If-Match": '"1"'}), 412
    )
    assert_problem(await api.get("/users/987654"), 404)


async def test_placing_an_order_needs_an_idempotency_key_and_replays_it(api: httpx.AsyncClient) -> None:
    user = await sign_up(api)
    orders, order = f"/users/{user['id']}/orders", {"items": ITEMS}
    assert_problem(await api.post(orders, json=order), 422)
    key = {"Idempotency-Key": "order-2026-11-25-0001"}
    first = await api.post(orders, json=order, headers=key)
    retry = await api.post(orders, json=order, headers=key)
    assert first.status_code == retry.status_code == 201
    assert retry.json()["id"] == first.json()["id"]
    listed = (await api.get(f"/users/{user['id']}/orders")).json()
    assert [o["id"] for o in listed["items"]] == [first.json()["id"]]


async def test_an_order_for_an_unknown_user_is_404(api: httpx.AsyncClient) -> None:
    api.headers.update(bearer(555))  # a valid token, for a user who never signed up
    response = await api.post(
        "/users/555/orders", json={"items": ITEMS}, headers={"Idempotency-Key": "k-12345678"}
    )
    assert_problem(response, 404)


async def test_activity_is_read_from_the_mongo_data_service(
    api: httpx.AsyncClient, mongo: httpx.AsyncClient
) -> None:
    user = await sign_up(api)
    await mongo.post("/activity", json={"user_id": user["id"], "kind": "login"})
    page = (await api.get(f"/users/{user['id']}/activity")).json()
    assert [a["kind"] for a in page["items"]] == ["login"]


async def test_a_data_service_that_is_down_gives_a_fast_503_and_recovery_is_automatic(
    pg_app: FastAPI, mongo_url: str, redis_target: RedisTarget
) -> None:
    port = free_port()
    settings = api_settings(f"http://127.0.0.1:{port}", mongo_url, redis_target)
    async for api in client_for(create_app(settings)):
        started = time.monotonic()
        down = await api.post("/users", json=ALICE)
        assert_problem(down, 503)
        assert down.headers["Retry-After"] == "1"
        assert "pg_data_service is unavailable" in down.json()["detail"]
        assert time.monotonic() - started < 2
        assert_problem(await api.get("/health/ready"), 503)
        async with serving(pg_app, port=port):
            assert (await api.post("/users", json=ALICE)).status_code == 201
            assert (await api.get("/health/ready")).status_code == 200


async def test_a_hanging_data_service_costs_at_most_the_timeout(
    mongo_url: str, redis_target: RedisTarget
) -> None:
    attempts = 0

    async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal attempts
        attempts += 1
        await reader.read()  # take the request, answer nothing, until the client gives up
        writer.close()

    server = await asyncio.start_server(never_answers, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = api_settings(f"http://127.0.0.1:{port}", mongo_url, redis_target, data_timeout_seconds=0.3)
    async with server:
        async for api in client_for(create_app(settings)):
            assert_problem(await api.get("/users/1", headers=bearer(1)), 503)
    # retries and backoff share the one 0.3 s deadline: the first attempt used it all (it was 3 of 0.3 s)
    assert attempts == 1


async def test_redis_down_degrades_to_reading_through(pg_url: str, mongo_url: str) -> None:
    dead_redis = RedisTarget(f"redis://127.0.0.1:{free_port()}/0", "x:")
    async for api in client_for(create_app(api_settings(pg_url, mongo_url, dead_redis))):
        user = await sign_up(api)
        assert (await api.get(f"/users/{user['id']}")).json() == user
        updated = await api.patch(f"/users/{user['id']}", json={"name": "B"}, headers={"If-Match": '"1"'})
        assert updated.status_code == 200


class Calls:
    """The data service behind a recorder: every request it receives, as ``METHOD /path``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app, self.seen = app, list[str]()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/health"):
            self.seen.append(f"{scope['method']} {scope['path']}")
        await self.app(scope, receive, send)

    def take(self) -> list[str]:
        seen, self.seen = self.seen, []
        return seen


async def test_each_use_case_calls_the_data_service_once_per_record_never_once_per_item(
    pg_app: FastAPI, mongo_url: str, redis_target: RedisTarget
) -> None:
    """No N+1 hops: counted where they would land, at the data service."""
    calls = Calls(pg_app)
    async with (
        serving(calls) as pg_url,
        in_process(create_app(api_settings(pg_url, mongo_url, redis_target))) as api,
    ):
        user = await sign_up(api)
        assert calls.take() == ["POST /users"]
        orders, order = (
            f"/users/{user['id']}/orders",
            {"items": [ITEMS[0] | {"sku": f"b-{n}"} for n in range(5)]},
        )
        placed = await api.post(orders, json=order, headers={"Idempotency-Key": "n-plus-one-0001"})
        assert placed.status_code == 201
        assert calls.take() == [f"GET /users/{user['id']}", "POST /orders"]  # five lines, one write
        await api.post(orders, json=order, headers={"Idempotency-Key": "n-plus-one-0002"})
        assert calls.take() == ["POST /orders"]  # the user is cached now
        assert len((await api.get(f"/users/{user['id']}/orders")).json()["items"]) == 2
        assert calls.take() == ["GET /orders"]  # a page of orders is one call, however many


async def test_a_hanging_redis_costs_one_try_per_window_not_two_per_read(
    pg_url: str, mongo_url: str, redis_target: RedisTarget
) -> None:
    """Redis stops answering (a stalled proxy): the first read waits out its 0.5 s timeout and opens
    the window; the reads after it leave Redis alone. Counted where Redis would see it: connections
    made through the proxy (a timed-out connection is dropped, so every try makes a new one). When
    Redis answers again, the first read after the window uses it again."""
    parts = urlsplit(redis_target.url)
    async with tcp_proxy((parts.hostname or "127.0.0.1", parts.port or 6379)) as proxy:
        through = RedisTarget(
            redis_target.url.replace(f":{parts.port}/", f":{proxy.port}/"), redis_target.prefix
        )
        settings = api_settings(pg_url, mongo_url, through, user_cache_breaker_seconds=2.0)
        async with in_process(create_app(settings)) as api:
            user = await sign_up(api)
            path = f"/users/{user['id']}"
            assert (await api.get(path)).json() == user  # a miss that fills the cache
            proxy.stall()
            tries = len(proxy.routed)
            for _ in range(10):
                assert (await api.get(path)).json() == user  # answered by the data service
            assert len(proxy.routed) - tries <= 2  # without the window: a try per read, and a fill
            proxy.resume()
            redis = Redis.from_url(redis_target.url)
            key = UserCache(redis, None, redis_target.prefix, 300).key(user["id"])  # type: ignore[arg-type]
            await redis.delete(key)

            async def filled_again() -> bool:
                await api.get(path)
                return bool(await redis.exists(key))

            await eventually(filled_again, "reads using Redis again", timeout=10, interval=0.2)
            await redis.aclose()


@pytest.mark.parametrize(
    ("method", "path", "body", "headers"),
    [
        ("POST", "/users", {"email": "x", "name": "A"}, {}),
        ("POST", "/users", {"email": "x@example.org", "name": "A", "telegram_chat_id": 1}, {}),  # the bot's
        ("PATCH", "/users/1", {"telegram_chat_id": 1}, {"If-Match": '"1"'}),  # a chat is linked by a code
        ("POST", "/users/1/orders", {"user_id": 1, "items": ITEMS}, {"Idempotency-Key": "k-12345678"}),
        ("POST", "/users/1/orders", {"items": ITEMS}, {"Idempotency-Key": "short"}),
        ("POST", "/users/1/orders", {"items": []}, {"Idempotency-Key": "k-12345678"}),
        ("POST", "/orders", {"user_id": "x", "items": ITEMS}, {"Idempotency-Key": "k-12345678"}),
        ("GET", "/users/0", None, {}),
        ("GET", "/users/1/orders?limit=500", None, {}),
        ("GET", "/users/1/activity?kind=$where", None, {}),
    ],
)
async def test_bad_input_is_422_problem_json(
    api: httpx.AsyncClient, method: str, path: str, body: Any, headers: dict[str, str]
) -> None:
    await sign_up(api)  # signed in: what is refused is the input, not the caller
    assert_problem(await api.request(method, path, json=body, headers=headers), 422)


@pytest.mark.parametrize(
    ("if_match", "status"),
    [
        (None, 428),
        (b'"x"', 412),
        ('"\u00b2"'.encode("latin-1"), 412),
        (b'"1234567890123456789"', 412),
        (b'W/"1"', 404),
    ],
)
async def test_if_match_is_read_as_the_data_service_reads_it(
    api: httpx.AsyncClient, if_match: bytes | None, status: int
) -> None:
    """One parser (shared.preconditions) at both hops: the same header, the same answer; a
    superscript two is a digit to ``str.isdigit`` but not to ``int``."""
    headers = {b"If-Match": if_match} if if_match is not None else {}
    api.headers.update(bearer(999999))
    assert_problem(await api.patch("/users/999999", json={"name": "x"}, headers=headers), status)


async def test_a_refused_service_token_is_a_502_not_the_clients_fault(
    pg_url: str, mongo_url: str, redis_target: RedisTarget
) -> None:
    settings = api_settings(pg_url, mongo_url, redis_target).model_copy(
        update={"service_token": SecretStr("not-a-valid-token-at-all")}
    )
    async for api in client_for(create_app(settings)):
        assert_problem(await api.post("/users", json=ALICE), 502)


async def test_a_reader_that_read_before_a_write_cannot_put_the_old_version_back(
    pg_url: str, mongo_url: str, redis_target: RedisTarget
) -> None:
    """The stale-set race of cache-aside, interleaved step by step: a reader misses and reads
    version 1; a writer commits version 2 and stores it; only then does the reader store what it
    read. Set-if-newer refuses it, and the next read is version 2 (from the cache)."""
    read, go = asyncio.Event(), asyncio.Event()

    class SlowReader(PgDataClient):
        async def get_user(self, user_id: int) -> User:
            user = await super().get_user(user_id)
            read.set()
            await go.wait()  # the writer runs now
            return user

    settings = api_settings(pg_url, mongo_url, redis_target)
    redis = Redis.from_url(redis_target.url)
    async with (
        in_process(create_app(settings)) as api,
        SlowReader(str(settings.pg_data_url), settings.service_token) as slow,
    ):
        user = await sign_up(api)
        reader = UserCache(redis, slow, redis_target.prefix, 300)
        reading = asyncio.create_task(reader.get(user["id"]))
        await read.wait()  # version 1 in the reader's hands
        patched = await api.patch(
            f"/users/{user['id']}", json={"name": "Alice B."}, headers={"If-Match": '"1"'}
        )
        assert patched.json()["version"] == 2
        go.set()
        assert (await reading).version == 1  # what it read, it returns; but it cannot cache it
        assert body_of(await redis.get(reader.key(user["id"]))) == patched.text  # version 2, as written
        assert (await api.get(f"/users/{user['id']}")).json()["version"] == 2
    await redis.aclose()


async def test_a_failed_write_leaves_a_tombstone_that_readers_in_flight_cannot_overwrite(
    redis_target: RedisTarget, pg_url: str
) -> None:
    """A write whose outcome is unknown: no reader may cache what it read before it."""
    redis = Redis.from_url(redis_target.url)
    async with PgDataClient(pg_url, SecretStr(TOKENS["api"])) as pg:
        cache = UserCache(redis, pg, redis_target.prefix, 300, tombstone_seconds=5)
        user = User(
            id=7,
            email="a@example.org",
            name="A",
            telegram_chat_id=None,
            created_at=datetime.now(UTC),
            version=1,
        )
        await cache.forget(7)
        await cache.store(user)  # a reader that read version 1 before the write
        assert await redis.get(cache.key(7)) == f"{TOMBSTONE}|".encode()  # still the tombstone
        assert 0 < await redis.ttl(cache.key(7)) <= 5
    await redis.aclose()


async def test_concurrent_misses_for_one_user_make_one_read(
    pg_url: str, mongo_url: str, redis_target: RedisTarget
) -> None:
    """Single flight: a stampede of misses on one key reaches the data service once."""
    reads = 0

    class Counting(PgDataClient):
        async def get_user(self, user_id: int) -> User:
            nonlocal reads
            reads += 1
            return await super().get_user(user_id)

    settings = api_settings(pg_url, mongo_url, redis_target)
    redis = Redis.from_url(redis_target.url)
    async with (
        in_process(create_app(settings)) as api,
        Counting(str(settings.pg_data_url), settings.service_token) as pg,
    ):
        user = await sign_up(api)
        cache = UserCache(redis, pg, redis_target.prefix, 300)
        users = await asyncio.gather(*(cache.get(user["id"]) for _ in range(50)))
    await redis.aclose()
    assert {u.id for u in users} == {user["id"]}
    assert reads == 1


def test_cache_keys_change_with_the_model() -> None:
    """A deploy that changes ``User`` reads keys of its own, never the old copies it cannot parse."""
    assert SCHEMA in UserCache(Redis(), None, "api:", 300).key(7)  # type: ignore[arg-type]


async def test_mongodb_down_keeps_the_api_in_rotation_and_fails_only_the_activity_route(
    pg_url: str, redis_target: RedisTarget
) -> None:
    """Readiness names what the API cannot serve without: pg_data_service. Without the MongoDB data
    service, users and orders still work; only the activity route answers 503."""
    settings = api_settings(pg_url, f"http://127.0.0.1:{free_port()}", redis_target)
    async for api in client_for(create_app(settings)):
        ready = await api.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"process": "ok", "pg_data_service": "ok"}
        user = await sign_up(api)
        placed = await api.post(
            f"/users/{user['id']}/orders",
            json={"items": ITEMS},
            headers={"Idempotency-Key": "mongo-down-0001"},
        )
        assert placed.status_code == 201
        assert_problem(await api.get(f"/users/{user['id']}/activity"), 503)


async def test_a_data_service_alive_but_not_ready_takes_the_api_out_of_rotation(
    mongo_url: str, redis_target: RedisTarget
) -> None:
    """pg_data_service answers, but its database is down: it cannot serve, so neither can the API."""
    no_database = PgSettings(
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/test", service_tokens=TOKENS
    )
    async with serving(create_pg_app(no_database)) as pg_url:
        async for api in client_for(create_app(api_settings(pg_url, mongo_url, redis_target))):
            ready = await api.get("/health/ready")
            assert_problem(ready, 503)
            assert set(ready.json()["checks"]) == {"pg_data_service"}


# Every route of the API: how to reach Alice's data through it. A route that is added must join the
# sweep (the first assertion), or the test fails.
def alice_s(
    alice_id: int | str, order_id: int | str
) -> list[tuple[str, str, dict[str, Any] | None, dict[str, str]]]:
    order = {"user_id": alice_id, "items": ITEMS}
    return [
        ("POST", f"/orders/{order_id}/cancellation", None, {}),
        ("GET", f"/users/{alice_id}", None, {}),
        ("PATCH", f"/users/{alice_id}", {"name": "Mallory"}, {"If-Match": '"1"'}),
        ("GET", f"/users/{alice_id}/orders", None, {}),
        ("GET", f"/users/{alice_id}/activity", None, {}),
        ("POST", f"/users/{alice_id}/telegram-link", None, {}),
        ("POST", f"/users/{alice_id}/orders", {"items": ITEMS}, {"Idempotency-Key": "mallory-0002"}),
        ("POST", "/orders", order, {"Idempotency-Key": "mallory-0001"}),  # deprecated: until its sunset
    ]


async def test_every_route_needs_a_token_and_shows_nobody_else_s_data(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    routes = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops if not p.startswith("/health")}
    swept = {(method, path) for method, path, _, _ in alice_s("{user_id}", "{order_id}")}
    assert routes == swept | {("POST", "/users")}  # sign-up is the one route without a token
    alice = await sign_up(api, ALICE)
    placed = await api.post(
        f"/users/{alice['id']}/orders", json={"items": ITEMS}, headers={"Idempotency-Key": "alice-order-0001"}
    )
    alice_token = api.headers["Authorization"]
    bob = await sign_up(api, BOB)  # from here on, the client is Bob
    for method, path, body, headers in alice_s(alice["id"], placed.json()["id"]):
        anonymous = await api.request(method, path, json=body, headers=headers | {"Authorization": ""})
        assert_problem(anonymous, 401)
        as_bob = await api.request(method, path, json=body, headers=headers)
        assert_problem(as_bob, 404)  # as if Alice did not exist
        assert alice["email"] not in as_bob.text
        assert alice["name"] not in as_bob.text
    assert (await api.get(f"/users/{bob['id']}")).status_code == 200  # Bob's own, he reaches
    orders = await api.get(f"/users/{alice['id']}/orders", headers={"Authorization": alice_token})
    assert [order["status"] for order in orders.json()["items"]] == ["placed"]  # Bob cancelled nothing


async def test_cancelling_an_order_twice_cancels_it_once_and_an_unknown_one_is_404(
    api: httpx.AsyncClient,
) -> None:
    alice = await sign_up(api, ALICE)
    orders = f"/users/{alice['id']}/orders"
    placed = (
        await api.post(orders, json={"items": ITEMS}, headers={"Idempotency-Key": "cancel-0001"})
    ).json()
    first = await api.post(f"/orders/{placed['id']}/cancellation")
    again = await api.post(f"/orders/{placed['id']}/cancellation")
    assert first.status_code == again.status_code == 200, first.text
    assert first.json() == again.json()
    assert (first.json()["status"], first.json()["cancellation_reason"], first.json()["version"]) == (
        "cancelled",
        "customer",
        2,
    )
    assert first.headers["ETag"] == '"2"'
    assert_problem(await api.post("/orders/999999/cancellation"), 404)
    assert_problem(await api.post("/orders/0/cancellation"), 422)
    assert_problem(await api.post("/orders/99999999999999999999/cancellation"), 422)  # beyond BIGINT


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        issue(END_USERS.model_copy(update={"jwt_audience": "another-api"}), 1),
        issue(END_USERS.model_copy(update={"jwt_issuer": "https://evil.example"}), 1),
        issue(END_USERS, 1, lifetime_seconds=-120),  # expired (past the 30 s leeway)
        issue(EndUserTokens(jwt_key=SecretStr("another-key-of-at-least-32-chars-000")), 1),
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIxIn0.",  # alg "none"
    ],
    ids=["garbage", "audience", "issuer", "expired", "signature", "alg-none"],
)
async def test_a_token_that_is_not_valid_is_401(api: httpx.AsyncClient, token: str) -> None:
    response = await api.get("/users/1", headers={"Authorization": f"Bearer {token}"})
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_two_users_sending_the_same_idempotency_key_get_their_own_orders(
    api: httpx.AsyncClient,
) -> None:
    key = {"Idempotency-Key": "my-first-order-0001"}
    placed = []
    for person in (ALICE, BOB):
        user = await sign_up(api, person)
        response = await api.post(f"/users/{user['id']}/orders", json={"items": ITEMS}, headers=key)
        assert response.status_code == 201, response.text
        placed.append(response.json())
    assert placed[0]["id"] != placed[1]["id"]
    assert [order["user_id"] for order in placed] != [placed[0]["user_id"]] * 2


def test_the_local_issuer_command_prints_a_token_the_api_accepts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JWT_KEY", END_USERS.jwt_key.get_secret_value())
    assert token_command(["7", "--minutes", "5"]) == 0
    assert EndUsers(END_USERS).user_id(capsys.readouterr().out.strip()) == 7
    monkeypatch.setenv("JWT_ALGORITHM", "RS256")
    with pytest.raises(SystemExit):
        token_command(["7"])
    assert "only the identity provider can sign those" in capsys.readouterr().err


async def test_a_cached_value_that_does_not_parse_is_a_miss_not_a_500(
    api: httpx.AsyncClient, redis_target: RedisTarget
) -> None:
    user = await sign_up(api)
    redis = Redis.from_url(redis_target.url)
    try:
        await redis.set(f"{redis_target.prefix}user:{SCHEMA}:{user['id']}", '1|{"id": "not what User is"}')
        assert (await api.get(f"/users/{user['id']}")).json() == user  # read through
    finally:
        await redis.aclose()


async def test_the_openapi_ui_can_be_turned_off_for_the_public_port(
    pg_url: str, mongo_url: str, redis_target: RedisTarget
) -> None:
    settings = api_settings(pg_url, mongo_url, redis_target, openapi_ui=False)
    async for api in client_for(create_app(settings)):
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert_problem(await api.get(path), 404)
        assert (await api.get("/health/live")).status_code == 200


# --- rate limits: counted in Redis, per client address (sign-up) or per end user (link codes) --------


async def users_stored(database_url: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM users"))
    finally:
        await connection.close()


async def test_sign_ups_past_the_limit_are_429_with_retry_after_and_store_nothing(
    pg_url: str, postgres_url: str, mongo_url: str, redis_target: RedisTarget
) -> None:
    """Two API replicas share one count (it is in Redis): the third sign-up is refused on the other.
    Of two limits, the tighter one counts too."""
    settings = api_settings(pg_url, mongo_url, redis_target, sign_up_rate="100/hour;2/minute")
    async with in_process(create_app(settings)) as one, in_process(create_app(settings)) as two:
        answers = [
            await one.post("/users", json=ALICE),
            await two.post("/users", json=BOB),
            await two.post("/users", json={"email": "carol@example.org", "name": "Carol"}),
        ]
    assert [a.status_code for a in answers] == [201, 201, 429]
    refused = answers[2]
    assert_problem(refused, 429)
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert await users_stored(postgres_url) == 2  # what the database holds, not what the API says


async def test_link_codes_are_limited_per_end_user(api_with_rates: httpx.AsyncClient) -> None:
    alice = await sign_up(api_with_rates, ALICE)
    codes = [await api_with_rates.post(f"/users/{alice['id']}/telegram-link") for _ in range(3)]
    assert [c.status_code for c in codes] == [201, 201, 429]
    bob = await sign_up(api_with_rates, BOB)  # another user: a count of his own
    assert (await api_with_rates.post(f"/users/{bob['id']}/telegram-link")).status_code == 201


@pytest.fixture
async def api_with_rates(
    pg_url: str, mongo_url: str, redis_target: RedisTarget
) -> AsyncIterator[httpx.AsyncClient]:
    settings = api_settings(pg_url, mongo_url, redis_target, link_code_rate="2/minute")
    async for client in client_for(create_app(settings)):
        yield client


async def test_with_redis_down_the_limits_are_not_enforced_and_sign_up_works(
    pg_url: str, mongo_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    dead_redis = RedisTarget(f"redis://127.0.0.1:{free_port()}/0", "x:")
    settings = api_settings(pg_url, mongo_url, dead_redis, sign_up_rate="1/minute")
    async for api in client_for(create_app(settings)):
        assert (await api.post("/users", json=ALICE)).status_code == 201
        assert (await api.post("/users", json=BOB)).status_code == 201  # past the limit: not counted
    warnings = [r for r in caplog.records if "rate limits not enforced" in r.getMessage()]
    assert len(warnings) == 1  # once per outage, not once per request


def test_a_limit_that_does_not_parse_stops_the_service_naming_it() -> None:
    with pytest.raises(ValidationError, match="sign_up_rate"):
        Settings(jwt_key=END_USERS.jwt_key, service_token=SecretStr(TOKENS["api"]), sign_up_rate="lots")


async def test_the_deprecated_route_says_so_until_its_sunset_and_replays_on_its_successor(
    api: httpx.AsyncClient,
) -> None:
    """The old route answers as before, with the headers a client can act on; a key sent there and
    retried on the successor (a client upgraded mid-retry) gets the first order, not a second."""
    user = await sign_up(api)
    key = {"Idempotency-Key": "migrating-client-0001"}
    old = await api.post("/orders", json={"user_id": user["id"], "items": ITEMS}, headers=key)
    if datetime.now(UTC).date() >= ORDERS_V1.sunset:  # from then on the test proves the removal
        assert_problem(old, 410)
        assert old.headers["Link"] == f'</users/{user["id"]}/orders>; rel="successor-version"'
        return
    assert old.status_code == 201, old.text
    deprecated_at = int(old.headers["Deprecation"].removeprefix("@"))
    assert datetime.fromtimestamp(deprecated_at, UTC).date() == ORDERS_V1.since
    assert parsedate_to_datetime(old.headers["Sunset"]).date() == ORDERS_V1.sunset
    assert old.headers["Link"] == f'</users/{user["id"]}/orders>; rel="successor-version"'
    new = await api.post(f"/users/{user['id']}/orders", json={"items": ITEMS}, headers=key)
    assert (new.status_code, new.json()["id"]) == (201, old.json()["id"])
    assert "Deprecation" not in new.headers
    spec = (await api.get("/openapi.json")).json()["paths"]
    assert spec["/orders"]["post"]["deprecated"] is True
    assert "deprecated" not in spec["/users/{user_id}/orders"]["post"]


def test_after_the_sunset_the_route_is_gone_and_names_its_successor() -> None:
    with pytest.raises(ProblemError) as gone:
        ORDERS_V1.check("/users/7/orders", today=ORDERS_V1.sunset)
    assert gone.value.problem.status == 410
    assert gone.value.headers == {"Link": '</users/7/orders>; rel="successor-version"'}
    ORDERS_V1.check("/users/7/orders", today=ORDERS_V1.sunset - timedelta(days=1))  # the day before: served


async def test_past_its_sunset_the_old_route_is_410_for_its_owner_and_404_for_anyone_else(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sunset moved to yesterday (the route's own setting, not a mock): the owner is told where
    to go; another user still learns nothing about the id they sent."""
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    monkeypatch.setattr(routes, "ORDERS_V1", Deprecated(since=ORDERS_V1.since, sunset=yesterday))
    alice = await sign_up(api, ALICE)
    key = {"Idempotency-Key": "after-sunset-0001"}
    gone = await api.post("/orders", json={"user_id": alice["id"], "items": ITEMS}, headers=key)
    assert_problem(gone, 410)
    assert gone.headers["Link"] == f'</users/{alice["id"]}/orders>; rel="successor-version"'
    await sign_up(api, BOB)
    assert_problem(await api.post("/orders", json={"user_id": alice["id"], "items": ITEMS}, headers=key), 404)
    assert (await api.get(f"/users/{alice['id']}/orders", headers=bearer(alice["id"]))).json()["items"] == []
