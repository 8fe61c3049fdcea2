"""Metrics, logs and trace context as a service produces them, against real apps and a real broker."""

from __future__ import annotations

import io
import json
import logging
from decimal import Decimal

import aio_pika
import httpx
import pytest
from fastapi import FastAPI, Request
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY
from pydantic import SecretStr
from redis.asyncio import Redis

from patterns.testing.pytest_fixtures import RedisTarget
from patterns.testing.servers import in_process, serving
from patterns.testing.spans import SpanRecorder
from reference_system.ports import free_port
from reference_system.waiting import eventually
from shared.clients.errors import NotFound
from shared.clients.http import DataServiceClient
from shared.clients.pg import PgDataClient
from shared.events.consumer import EventConsumer
from shared.events.envelope import Envelope, Event, OrderPlaced, new_event
from shared.events.publisher import to_message
from shared.events.topology import EVENTS, declare_all
from shared.observability.http_server import observe_app
from shared.observability.logs import REQUEST_ID, redact
from shared.observability.tracing import trace_headers
from shared.ops_server import ops_server
from tests.examples.services.conftest import TOKENS

BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"  # the shape of a real one


def requests_counted(route: str, method: str, status: str) -> float:
    labels = {"route": route, "method": method, "status": status}
    return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0


def small_app(metrics_token: SecretStr | None = None) -> FastAPI:
    app = FastAPI()
    observe_app(app, metrics_token)

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        logging.getLogger("small_app").info("item %d asked for", item_id)
        return {"id": item_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    return app


def parsed(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_red_metrics_count_route_templates_never_raw_paths() -> None:
    before = {
        "item": requests_counted("/items/{item_id}", "GET", "200"),
        "unmatched": requests_counted("<unmatched>", "GET", "404"),
        "other": requests_counted("<unmatched>", "OTHER", "404"),
        "boom": requests_counted("/boom", "GET", "500"),
    }
    async with in_process(small_app()) as client:
        for item_id in (1, 2, 3):
            assert (await client.get(f"/items/{item_id}")).status_code == 200
        for path in ("/wp-admin", "/.env", "/items"):  # a scanner's paths
            assert (await client.get(path)).status_code == 404
        assert (await client.request("BREW", "/coffee")).status_code == 404
        with pytest.raises(RuntimeError):
            await client.get("/boom")
        exposed = (await client.get("/metrics")).text
    assert requests_counted("/items/{item_id}", "GET", "200") - before["item"] == 3
    assert requests_counted("<unmatched>", "GET", "404") - before["unmatched"] == 3
    assert requests_counted("<unmatched>", "OTHER", "404") - before["other"] == 1
    assert requests_counted("/boom", "GET", "500") - before["boom"] == 1
    assert 'route="/items/{item_id}"' in exposed
    for raw in ("/items/1", "/wp-admin", "/.env", "BREW"):
        assert raw not in exposed


SCRAPE_TOKEN = SecretStr("scrape-token-for-prometheus")


async def test_with_a_scrape_token_metrics_answer_only_its_bearer() -> None:
    """Both servers a service can have: the FastAPI app's own port and the bot's and worker's ops port."""
    port = free_port()
    async with (
        in_process(small_app(SCRAPE_TOKEN)) as app,
        ops_server("127.0.0.1", port, {}, metrics_token=SCRAPE_TOKEN),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as ops,
    ):
        for client in (app, ops):
            for refused in (
                {},
                {"Authorization": "Bearer wrong-token"},
                {"Authorization": "scrape-token-for-prometheus"},
                {b"Authorization": b"Bearer \xff\xfe"},  # not UTF-8: refused, not a 500
            ):
                answer = await client.get("/metrics", headers=refused)
                assert answer.status_code == 401, (client.base_url, refused)
                assert answer.headers["Content-Type"].startswith("application/problem+json")
                assert answer.headers["WWW-Authenticate"] == "Bearer"
                assert "http_requests_total" not in answer.text
            answer = await client.get(
                "/metrics", headers={"Authorization": "Bearer scrape-token-for-prometheus"}
            )
            assert answer.status_code == 200
            assert "python_gc_objects_collected_total" in answer.text


async def test_logs_are_ecs_json_joined_to_the_trace_and_the_request(
    spans: SpanRecorder, ecs_log_lines: io.StringIO
) -> None:
    async with in_process(small_app()) as client:
        answer = await client.get("/items/7", headers={"X-Request-ID": "req-42"})
    assert answer.headers["X-Request-ID"] == "req-42"
    [line] = [entry for entry in parsed(ecs_log_lines) if entry["message"] == "item 7 asked for"]
    [server] = [s for s in spans.finished() if s.name == "GET /items/{item_id}" and s.kind == SpanKind.SERVER]
    assert line["trace"] == {"id": format(server.context.trace_id, "032x")}
    assert line["http"] == {"request": {"id": "req-42"}}
    assert line["log.level"] == "info"
    assert line["service"] == {"name": "test_service", "version": "1.2.3", "environment": "test"}
    assert isinstance(line["span"], dict)
    assert len(str(line["span"]["id"])) == 16
    assert str(line["@timestamp"]).endswith("Z")


async def test_a_request_without_an_id_gets_one_and_a_bad_id_is_replaced(ecs_log_lines: io.StringIO) -> None:
    async with in_process(small_app()) as client:
        made = (await client.get("/items/1")).headers["X-Request-ID"]
        replaced = (await client.get("/items/1", headers={"X-Request-ID": "a b\tc" * 50})).headers
    assert len(made) == 32
    assert replaced["X-Request-ID"] != "a b\tc" * 50
    assert len(replaced["X-Request-ID"]) == 32


def test_tokens_are_redacted_in_messages_arguments_and_tracebacks(ecs_log_lines: io.StringIO) -> None:
    log = logging.getLogger("leaky")
    log.info("calling https://api.telegram.org/bot%s/getUpdates", BOT_TOKEN)
    log.warning("sent Authorization: Bearer s3cr3t-T0ken.value")
    log.warning("broker at amqp://guest:hunter2@rabbitmq:5672/ and postgresql://app:pa55@db/app")
    log.warning("cache at redis://:r3dis-pw@cache:6379/0")  # a password with no user
    log.info("callback ?token=abc123&user=1 password=letmein")
    try:
        raise ConnectionError(f"https://api.telegram.org/bot{BOT_TOKEN}/sendMessage refused")
    except ConnectionError:
        log.exception("send failed")
    written = ecs_log_lines.getvalue()
    for secret in (BOT_TOKEN, "s3cr3t-T0ken", "hunter2", "pa55", "r3dis-pw", "abc123", "letmein"):
        assert secret not in written
    assert written.count("[REDACTED]") >= 8
    assert "amqp://guest:[REDACTED]@rabbitmq:5672/" in written
    assert all(json.loads(line) for line in written.splitlines())  # still valid JSON lines


def test_redaction_leaves_ordinary_text_alone() -> None:
    text = "order 123456 confirmed at 12:30:00, total 26.25, https://example.org/orders?page=2"
    assert redact(text) == text


async def test_a_malformed_traceparent_starts_a_new_trace_and_is_logged(
    spans: SpanRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    async with in_process(small_app()) as client:
        with caplog.at_level(logging.WARNING, logger="shared.observability.tracing"):
            answer = await client.get("/items/5", headers={"traceparent": "00-not-a-trace-01"})
    assert answer.status_code == 200
    assert "malformed traceparent '00-not-a-trace-01' in GET /items/5" in caplog.text
    [server] = [s for s in spans.finished() if s.name == "GET /items/{item_id}"]
    assert server.parent is None
    assert server.context.is_valid


def test_a_process_that_is_not_an_installed_package_reports_version_0_unknown(spans: SpanRecorder) -> None:
    # the test process observes itself as the service "tests", a name no installed distribution has
    assert spans.provider.resource.attributes["service.version"] == "0+unknown"


async def test_a_valid_traceparent_is_continued() -> None:
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("caller") as caller:
        headers = trace_headers()
    assert headers["traceparent"].split("-")[1] == format(caller.get_span_context().trace_id, "032x")


async def test_a_malformed_amqp_trace_header_starts_a_new_trace_and_the_event_is_handled(
    spans: SpanRecorder, rabbitmq_url: str, redis_target: RedisTarget, caplog: pytest.LogCaptureFixture
) -> None:
    handled: list[tuple[int, str | None]] = []

    async def handler(event: Envelope, data: Event) -> None:
        assert isinstance(data, OrderPlaced)
        handled.append((data.order_id, REQUEST_ID.get()))

    redis = Redis.from_url(redis_target.url)
    event = new_event(
        OrderPlaced(order_id=11, user_id=1, total=Decimal("1")), trace={"traceparent": "garbage"}
    )
    message = to_message(event)
    try:
        async with EventConsumer(
            rabbitmq_url,
            "test.tracing",
            ["order.placed"],
            handler,
            redis,
            remember_prefix=redis_target.prefix,
        ):
            connection = await aio_pika.connect(rabbitmq_url)
            async with connection:
                channel = await connection.channel()
                await declare_all(channel)
                exchange = await channel.get_exchange(EVENTS)
                with caplog.at_level(logging.WARNING, logger="shared.observability.tracing"):
                    with suppress_instrumentation():  # an outside publisher: its header arrives as sent
                        await exchange.publish(message, routing_key="order.placed")
                    await eventually(lambda: handled, "the event handled", timeout=5, interval=0.05)
    finally:
        await redis.aclose()
    assert handled == [(11, str(event.id))]  # handled, with the event id as the logs' request id
    assert f"malformed traceparent 'garbage' in test.tracing message {event.id}" in caplog.text
    [received] = [s for s in spans.finished() if s.kind == SpanKind.CONSUMER]
    assert received.parent is None  # a new trace, not an error


async def test_data_client_calls_are_counted_by_target_and_outcome(pg_url: str) -> None:
    def calls(outcome: str) -> float:
        labels = {"target": "pg_data_service", "method": "GET", "outcome": outcome}
        return REGISTRY.get_sample_value("data_client_requests_total", labels) or 0.0

    before_ok, before_missing = calls("2xx"), calls("4xx")
    async with PgDataClient(pg_url, SecretStr(TOKENS["api"])) as pg:
        await pg.list_orders(limit=1)
        with pytest.raises(NotFound):
            await pg.get_user(987_654)
    assert (calls("2xx") - before_ok, calls("4xx") - before_missing) == (1, 1)


async def test_the_request_id_travels_with_every_data_service_call() -> None:
    echo = FastAPI()

    @echo.get("/echo")
    async def echoed(request: Request) -> dict[str, str | None]:
        return {"request_id": request.headers.get("X-Request-ID")}

    async with serving(echo) as url, DataServiceClient("echo", url, SecretStr("t")) as client:
        token = REQUEST_ID.set("from-the-edge")
        try:
            answer = await client.request("GET", "/echo")
        finally:
            REQUEST_ID.reset(token)
    assert answer.body == {"request_id": "from-the-edge"}
