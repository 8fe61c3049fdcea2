"""Schema-driven fuzzing: schemathesis generates requests from each service's OpenAPI.

Whatever it sends (wrong types, huge numbers, odd strings, missing fields, odd header
values), a service must answer with a 2xx or a 4xx problem, never a 5xx: the two data
services, and the API in front of them (signed in as a user, through both real data
services). The runs are bounded (examples per operation) and target loopback only.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pymongo
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.stateful.state_machine import APIStateMachine

from api_service.app import create_app as create_api_app
from mongo_data_service.app import create_app as create_mongo_app
from mongo_data_service.settings import Settings as MongoSettings
from patterns.testing.pytest_fixtures import RedisTarget
from patterns.testing.servers import serving_in_thread
from pg_data_service.app import create_app as create_pg_app
from pg_data_service.settings import Settings as PgSettings
from tests.examples.services.conftest import TOKENS, auth
from tests.examples.services.test_api_service import api_settings, bearer

# The schemas come from the apps themselves; building an app and its OpenAPI opens no connection.
PG_OPENAPI = create_pg_app(
    PgSettings(database_url="postgresql://schema@localhost/none", service_tokens=TOKENS)
).openapi()
MONGO_OPENAPI = create_mongo_app(
    MongoSettings(mongodb_url="mongodb://localhost:1/", service_tokens=TOKENS)
).openapi()
API_OPENAPI = create_api_app(
    api_settings("http://127.0.0.1:1", "http://127.0.0.1:1", RedisTarget("redis://127.0.0.1:1/0", ""))
).openapi()
PG_SCHEMA, MONGO_SCHEMA, API_SCHEMA = (
    schemathesis.openapi.from_dict(document) for document in (PG_OPENAPI, MONGO_OPENAPI, API_OPENAPI)
)
FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@pytest.fixture
def pg_live(pg_settings: PgSettings) -> Iterator[str]:
    with serving_in_thread(create_pg_app(pg_settings)) as url:
        yield url


@pytest.fixture
def mongo_live(mongo_settings: MongoSettings) -> Iterator[str]:
    with serving_in_thread(create_mongo_app(mongo_settings)) as url:
        yield url


@PG_SCHEMA.parametrize()
@FUZZ
def test_pg_data_service_never_answers_5xx(case: schemathesis.Case[Any], pg_live: str) -> None:
    response = case.call(base_url=pg_live, headers=auth(), timeout=10)
    case.validate_response(response, checks=[not_a_server_error])


@MONGO_SCHEMA.parametrize()
@FUZZ
def test_mongo_data_service_never_answers_5xx(case: schemathesis.Case[Any], mongo_live: str) -> None:
    response = case.call(base_url=mongo_live, headers=auth(), timeout=10)
    case.validate_response(response, checks=[not_a_server_error])


@pytest.fixture
def api_live(pg_live: str, mongo_live: str, redis_target: RedisTarget) -> Iterator[str]:
    # The rate limits have tests of their own: here they would turn most sign-ups into 429s before the
    # body reaches the data service, the path the fuzzer is for.
    unlimited = {"sign_up_rate": "1000000/minute", "link_code_rate": "1000000/minute"}
    with serving_in_thread(
        create_api_app(api_settings(pg_live, mongo_live, redis_target, **unlimited))
    ) as url:
        yield url


@API_SCHEMA.parametrize()
@FUZZ
def test_api_service_never_answers_5xx(case: schemathesis.Case[Any], api_live: str) -> None:
    # Signed in as whoever the path names (when it names a valid id), so the case reaches the data services.
    user_id = (case.path_parameters or {}).get("user_id")
    caller = user_id if isinstance(user_id, int) and 0 < user_id < 2**63 else 1
    response = case.call(base_url=api_live, headers=bearer(caller), timeout=10)
    case.validate_response(response, checks=[not_a_server_error])


# Values beyond what any column holds, at the edges where drivers overflow: a 4xx, never a 5xx.
HUGE = st.integers(min_value=-(2**80), max_value=2**80) | st.sampled_from(
    [2**31, 2**63 - 1, 2**63, -(2**63) - 1]
)
PRICES = (
    st.decimals(allow_nan=True, allow_infinity=True).map(str)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)


@given(user_id=HUGE, quantity=HUGE, unit_price=PRICES)
@FUZZ
def test_numbers_beyond_any_column_are_a_4xx_never_a_5xx(
    pg_live: str, user_id: int, quantity: int, unit_price: object
) -> None:
    item = {"sku": "book-1", "quantity": quantity, "unit_price": unit_price}
    body = json.dumps({"user_id": user_id, "items": [item]})  # NaN and Infinity as Python writes them
    with httpx.Client(base_url=pg_live, headers=auth(), timeout=10) as client:
        answers = [
            client.post("/orders", content=body, headers={"Content-Type": "application/json"}),
            client.get(f"/users/{user_id}"),
            client.get("/orders", params={"user_id": user_id}),
            client.get("/users", params={"telegram_chat_id": quantity}),
        ]
    assert [a.status_code for a in answers if a.status_code >= 500] == [], [a.text for a in answers]


# --- Stateful: schemathesis follows links between operations (the id a POST returns, fed to the GETs and
# PATCHes that take it), so the fuzzed requests reach existing rows, not only 404s. Each scenario starts from
# empty tables with their sequences reset, so a scenario Hypothesis replays meets the same ids.
STATEFUL = settings(
    max_examples=25,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
type Calls = list[tuple[str, str, int]]


def empty_tables(database_url: str) -> None:
    async def truncate() -> None:
        connection = await asyncpg.connect(database_url)
        try:
            tables = await connection.fetch(
                "SELECT quote_ident(tablename) FROM pg_tables"
                " WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
            )
            await connection.execute(f"TRUNCATE {', '.join(t[0] for t in tables)} RESTART IDENTITY CASCADE")
        finally:
            await connection.close()

    asyncio.run(truncate())


def empty_collections(url: str, database: str) -> None:
    client: pymongo.MongoClient[dict[str, Any]]
    with pymongo.MongoClient(url, timeoutMS=5000) as client:
        for name in client[database].list_collection_names():
            client[database][name].delete_many({})


# Valid requests only: the stateless tests above send the invalid ones (a missing token, a wrong type), and
# a scenario whose every step is refused never reaches the data a link points at.
POSITIVE = SchemathesisConfig.from_dict({"generation": {"mode": "positive"}})


def workflow(
    document: dict[str, Any], base_url: str, fresh: Callable[[], None], calls: Calls, **kwargs: Any
) -> type[APIStateMachine]:
    """The state machine of the OpenAPI ``document``, run against ``base_url``; every call it makes
    lands in ``calls``."""
    headers_for: Callable[[schemathesis.Case[Any]], dict[str, str]] = kwargs.get(
        "headers_for", lambda _: auth()
    )
    schema = schemathesis.openapi.from_dict(document, config=POSITIVE)

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            fresh()

        def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
            return {"base_url": base_url, "headers": headers_for(case), "timeout": 10}

        def after_call(self, response: Any, case: schemathesis.Case[Any]) -> None:
            super().after_call(response, case)
            calls.append((case.method, case.path, response.status_code))

        def validate_response(self, response: Any, case: schemathesis.Case[Any], *_: Any, **__: Any) -> None:
            case.validate_response(response, checks=[not_a_server_error])

    return Workflow


def reached(calls: Calls) -> bool:
    """Whether linked calls found what earlier steps created: a 2xx on a route that takes an id (only a
    link gives a scenario an id that exists, the tables being empty when it starts)."""
    return any("{" in path and status < 300 for _, path, status in calls)


def summary(calls: Calls) -> str:
    return "\n".join(f"{n:4} {m} {p} {status}" for (m, p, status), n in sorted(Counter(calls).items()))


def test_pg_data_service_stateful_never_answers_5xx(pg_live: str, pg_settings: PgSettings) -> None:
    calls: Calls = []
    url = str(pg_settings.database_url)
    workflow(PG_OPENAPI, pg_live, lambda: empty_tables(url), calls).run(settings=STATEFUL)
    assert reached(calls), summary(calls)


def test_mongo_data_service_stateful_never_answers_5xx(
    mongo_live: str, mongo_settings: MongoSettings
) -> None:
    calls: Calls = []
    url, database = str(mongo_settings.mongodb_url), mongo_settings.mongodb_database
    workflow(MONGO_OPENAPI, mongo_live, lambda: empty_collections(url, database), calls).run(
        settings=STATEFUL
    )
    assert reached(calls), summary(calls)


def test_api_service_stateful_never_answers_5xx(
    api_live: str, pg_settings: PgSettings, mongo_settings: MongoSettings
) -> None:
    """Signed in as the user the path names, or else as the last user signed up."""
    calls: Calls = []
    signed_up = [1]

    def fresh() -> None:
        empty_tables(str(pg_settings.database_url))
        empty_collections(str(mongo_settings.mongodb_url), mongo_settings.mongodb_database)
        signed_up[:] = [1]

    def headers_for(case: schemathesis.Case[Any]) -> dict[str, str]:
        user_id = (case.path_parameters or {}).get("user_id")
        return bearer(user_id if isinstance(user_id, int) and 0 < user_id < 2**63 else signed_up[-1])

    class Remembering(workflow(API_OPENAPI, api_live, fresh, calls, headers_for=headers_for)):  # type: ignore[misc]
        def after_call(self, response: Any, case: schemathesis.Case[Any]) -> None:
            super().after_call(response, case)
            if case.method == "POST" and case.path == "/users" and response.status_code == 201:
                signed_up.append(response.json()["id"])

    Remembering.run(settings=STATEFUL)
    assert reached(calls), summary(calls)


# --- Beyond the schema: headers and query parameters no OpenAPI document declares (and the declared ones
# with any bytes at all), on a request whose body is valid, so it gets past validation into the handler.
KNOWN_HEADERS = [
    "Authorization", "Idempotency-Key", "If-Match", "If-None-Match", "X-Request-ID", "traceparent",
    "tracestate", "baggage", "X-Request-Timeout-Ms", "Content-Type", "Accept", "Accept-Encoding",
    "Content-Encoding", "Cookie", "Range", "Forwarded", "Expect",
]  # fmt: skip
TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Any byte a client can put in a header value (HTTP/1.1 forbids CR, LF and NUL, and h11 refuses them), and
# the edges parsers trip on: numbers past 64 bits, superscript digits (str.isdigit() says yes, int() says no
# to the Latin-1 "\xb2"), a malformed traceparent, a bare scheme.
# (b"x" * 500: the sweep sends it in every header at once, which stays under uvicorn's 16 KiB of headers)
EDGE_VALUES = [
    b"", b"0", b"-1", b"99999999999999999999", b'"99999999999999999999"', b'"\xb2"', b"\xb9\xb2", b'W/"1"',
    b"*", b"Bearer", b"00-" + b"f" * 53, b"\xff" * 100, b"x" * 500,
]  # fmt: skip
HEADER_VALUE = st.binary(max_size=120).map(
    lambda raw: bytes(b for b in raw if b == 9 or (b >= 0x20 and b != 0x7F)).strip(b" \t")
) | st.sampled_from(EDGE_VALUES)
HEADERS = st.dictionaries(
    st.sampled_from(KNOWN_HEADERS) | st.text(TOKEN_CHARS, min_size=1, max_size=30), HEADER_VALUE, max_size=5
)
QUERY_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)
QUERY = st.dictionaries(
    st.sampled_from(["limit", "cursor", "user_id", "kind", "status"]) | QUERY_TEXT, QUERY_TEXT, max_size=4
)
EDGES = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def operations(document: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(method, path with each parameter set to 1, the request body's documented example) per operation."""
    found = []
    for template, methods in document["paths"].items():
        path = re.sub(r"\{[^}]+\}", "1", template)
        for method, operation in methods.items():
            body = None
            if (
                schema := operation.get("requestBody", {})
                .get("content", {})
                .get("application/json", {})
                .get("schema")
            ):
                name = schema.get("$ref", "").rsplit("/", 1)[-1]
                body = document["components"]["schemas"].get(name, {}).get("examples", [{}])[0]
            found.append((method.upper(), path, body))
    return found


def as_bytes(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.encode(), value.encode()) for name, value in headers.items()]


def assert_a_4xx_problem_or_success(answer: httpx.Response) -> None:
    assert answer.status_code < 500, (answer.request.method, answer.request.url, answer.text)
    if answer.status_code >= 400:
        assert answer.headers["Content-Type"].startswith("application/problem+json"), answer.text


def live(service: str, request: pytest.FixtureRequest) -> tuple[str, list[tuple[bytes, bytes]]]:
    """The service running in this test, and the headers that sign a request in to it."""
    signed_in = as_bytes(bearer(1) if service == "api" else auth())
    return request.getfixturevalue(f"{service}_live"), signed_in


SERVICES = pytest.mark.parametrize(
    ("service", "document"), [("pg", PG_OPENAPI), ("mongo", MONGO_OPENAPI), ("api", API_OPENAPI)]
)


@SERVICES
def test_every_edge_value_in_every_header_the_services_read_is_never_a_5xx(
    service: str, document: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    """A sweep, not a sample: each edge value in every header at once (the token kept), on every operation."""
    base_url, signed_in = live(service, request)
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for method, path, body in operations(document):
            for value in EDGE_VALUES:
                headers = [(name.encode(), value) for name in KNOWN_HEADERS if name != "Authorization"]
                answer = client.request(method, path, json=body, headers=signed_in + headers)
                assert_a_4xx_problem_or_success(answer)


@SERVICES
def test_any_header_or_query_parameter_is_never_a_5xx(
    service: str, document: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    base_url, signed_in = live(service, request)

    @given(operation=st.sampled_from(operations(document)), headers=HEADERS, query=QUERY)
    @EDGES
    def hostile(operation: tuple[str, str, Any], headers: dict[str, bytes], query: dict[str, str]) -> None:
        method, path, body = operation
        theirs = {name.lower() for name in headers}
        sent = [(k, v) for k, v in signed_in if k.decode().lower() not in theirs]
        sent += [(name.encode(), value) for name, value in headers.items()]
        with httpx.Client(base_url=base_url, timeout=10) as client:
            answer = client.request(method, path, json=body, headers=sent, params=query)
        assert_a_4xx_problem_or_success(answer)

    hostile()
