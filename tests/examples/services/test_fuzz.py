"""Schema-driven fuzzing: schemathesis generates requests from each service's OpenAPI.

Whatever it sends (wrong types, huge numbers, odd strings, missing fields, odd header
values), a service must answer with a 2xx or a 4xx problem, never a 5xx: the two data
services, and the API in front of them (signed in as a user, through both real data
services). The runs are bounded (examples per operation) and target loopback only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

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
PG_SCHEMA = schemathesis.openapi.from_dict(
    create_pg_app(
        PgSettings(database_url="postgresql://schema@localhost/none", service_tokens=TOKENS)
    ).openapi()
)
MONGO_SCHEMA = schemathesis.openapi.from_dict(
    create_mongo_app(MongoSettings(mongodb_url="mongodb://localhost:1/", service_tokens=TOKENS)).openapi()
)
API_SCHEMA = schemathesis.openapi.from_dict(
    create_api_app(
        api_settings("http://127.0.0.1:1", "http://127.0.0.1:1", RedisTarget("redis://127.0.0.1:1/0", ""))
    ).openapi()
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
    with serving_in_thread(create_api_app(api_settings(pg_live, mongo_live, redis_target))) as url:
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
