"""The running system seen through real tools: spans exported over OTLP, a real Prometheus scraping."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from reference_system.prometheus import running_prometheus, wait_for_targets
from reference_system.waiting import eventually
from tests.deploy.conftest import tool
from tests.deploy.test_grafana import queries
from tests.examples.services.test_api_service import sign_up
from tests.system.running import METRICS_TOKEN, SHARED_SYSTEM, System

pytestmark = SHARED_SYSTEM

CHAT = 777_100
CUSTOMERS = itertools.count(1)
ITEMS = [{"sku": "pen-1", "quantity": 3, "unit_price": "2.00"}]
SERVICES = ("api_service", "pg_data_service", "mongo_data_service", "worker_service", "bot_service")


async def order_and_get_notified(system: System) -> int:
    """A new user registers, links a chat, places an order; return its id once the bot told them."""
    n = next(CUSTOMERS)
    chat = CHAT + n
    async with httpx.AsyncClient(base_url=system.api_url, timeout=10) as api:
        user = await sign_up(api, {"email": f"erin{n}@example.org", "name": "Erin"})
        assert (await api.get(f"/users/{user['id']}")).status_code == 200  # a cache miss, then cached
        code = (await api.post(f"/users/{user['id']}/telegram-link")).json()["code"]
        await system.telegram.send_command(chat, f"/link {code}")
        await system.telegram.replies(chat, 1, timeout=20)  # linked
        key = {"Idempotency-Key": f"observability-order-{n}"}
        order = (await api.post(f"/users/{user['id']}/orders", json={"items": ITEMS}, headers=key)).json()
    notice = (await system.telegram.replies(chat, 2, timeout=20))[1]
    assert notice == f"Your order #{order['id']} is confirmed."
    return int(order["id"])


async def test_one_trace_crosses_all_five_processes(system: System) -> None:
    await order_and_get_notified(system)
    spans = system.otlp.spans

    async def whole_traces() -> set[str]:
        """The services of each complete order trace (every span's parent arrived too), the widest."""
        widest: set[str] = set()
        roots = [
            s
            for s in spans
            if s.service == "api_service" and s.name == "POST /users/{user_id}/orders" and not s.parent_id
        ]
        for root in roots:
            in_trace = {s.span_id: s for s in spans if s.trace_id == root.trace_id}
            if all(s.parent_id in in_trace for s in in_trace.values() if s is not root):
                widest = max(widest, {s.service for s in in_trace.values()}, key=len)
        return widest  # a parent may still wait in its process's next batch

    # Spans leave each process in batches (every 5 s by default); a parent ends after its children.
    services = await eventually(
        lambda: _all(whole_traces, set(SERVICES)), "one linked trace over all five services", interval=0.25
    )
    assert services == set(SERVICES)


async def _all(check: Callable[[], Awaitable[set[str]]], expected: set[str]) -> set[str] | None:
    found = await check()
    return found if found >= expected else None


async def test_a_real_prometheus_scrapes_every_service_and_sees_the_flow(
    system: System, tmp_path: Path
) -> None:
    tool("prometheus", "prometheus")  # skips (or fails under REQUIRE_SERVICES=1) with the apt command
    async with (
        running_prometheus(system.ports, METRICS_TOKEN, tmp_path) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as prom,
    ):

        async def query(expr: str) -> list[dict[str, Any]]:
            answer = (await prom.get("/api/v1/query", params={"query": expr})).json()
            assert answer["status"] == "success", (expr, answer)
            return list(answer["data"]["result"])

        await wait_for_targets(url, count=len(SERVICES))
        order_id = await order_and_get_notified(system)
        assert order_id > 0
        route = 'route="/users/{user_id}/orders", method="POST", status="201"'
        placed = f'http_requests_total{{job="api_service", {route}}}'
        for expr in (
            placed,
            'data_client_requests_total{job="api_service", target="pg_data_service", outcome="2xx"}',
            'events_consumed_total{job="worker_service", consumer="worker.order-placed", outcome="acked"}',
            'events_consumed_total{job="bot_service", consumer="bot.order-confirmed", outcome="acked"}',
            'notifications_sent_total{job="bot_service", outcome="sent"}',
            'outbox_published_total{job="pg_data_service"}',
            'cache_requests_total{job="api_service", result="miss"}',
            'job:http_requests:rate5m{job="api_service"}',  # a recording rule, evaluated
        ):
            await eventually(functools.partial(query, expr), expr, interval=0.25)
        rules = (await prom.get("/api/v1/rules")).json()["data"]["groups"]
        assert {rule["health"] for group in rules for rule in group["rules"]} == {"ok"}
        for expr in queries():  # every dashboard query runs on the real server
            await query(expr)
