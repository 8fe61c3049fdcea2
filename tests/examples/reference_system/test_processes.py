"""Starting the system: the data services first, the business services when those are ready; a start
that fails half-way stops what it started."""

from __future__ import annotations

import pytest

from patterns.testing.pytest_fixtures import MongoTarget
from reference_system.ports import free_port, port_is_open
from reference_system.processes import Ports, SystemConfig, plan, running_system


def test_the_data_services_start_before_the_business_services_that_call_them() -> None:
    ports = Ports(api=1, pg=2, mongo=3, worker=4, bot=5)
    config = SystemConfig(
        ports=ports, telegram_api_url="http://127.0.0.1:6/", otlp_endpoint="http://127.0.0.1:7"
    )
    data, business = plan(config)
    assert [name for name, _, _ in data] == ["mongo_data_service", "pg_data_service"]
    assert [name for name, _, _ in business] == ["api_service", "worker_service", "bot_service"]
    env = {name: variables for name, variables, _ in data + business}
    assert env["api_service"]["PG_DATA_URL"] == "http://127.0.0.1:2"
    assert env["bot_service"]["TELEGRAM_API_URL"] == "http://127.0.0.1:6/"
    # each caller presents its own token, and the data services accept exactly those
    callers = {name.removesuffix("_service"): env[name]["SERVICE_TOKEN"] for name, _, _ in business}
    assert env["pg_data_service"]["SERVICE_TOKENS"] == ",".join(f"{c}={t}" for c, t in config.tokens.items())
    assert callers == dict(config.tokens)
    assert {e["OTEL_EXPORTER_OTLP_ENDPOINT"] for e in env.values()} == {"http://127.0.0.1:7"}
    assert [url for _, _, url in data] == [
        "http://127.0.0.1:3/health/ready",
        "http://127.0.0.1:2/health/ready",
    ]


def test_without_telegram_there_is_no_bot() -> None:
    _, business = plan(SystemConfig(telegram_api_url=None))
    assert [name for name, _, _ in business] == ["api_service", "worker_service"]


async def test_a_start_that_fails_half_way_stops_what_it_started(mongo_target: MongoTarget) -> None:
    """The MongoDB data service starts while migrations run; they fail (no PostgreSQL there), the
    start stops with the reason, and the service already started is stopped too."""
    ports = Ports(api=free_port(), pg=free_port(), mongo=free_port(), worker=free_port(), bot=free_port())
    config = SystemConfig(
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere",
        mongodb_url=mongo_target.url,
        ports=ports,
    )
    with pytest.raises(RuntimeError, match="migrations failed"):
        async with running_system(config):
            pytest.fail("the system must not come up without its database")
    assert not port_is_open(f"http://127.0.0.1:{ports.mongo}")
