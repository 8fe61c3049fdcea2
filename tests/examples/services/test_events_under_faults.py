"""Events under the faults that break them in production, against the real RabbitMQ.

1,000 orders go through the whole chain (order + outbox row in one transaction → the relay
inside pg_data_service → RabbitMQ → the worker process → both data services → ``order.confirmed``
→ the bot process → Telegram) while the broker's connections are forcibly closed, the worker is
killed with SIGKILL and replaced mid-stream, the relay's process is killed after the broker
confirmed a batch but before the rows were marked sent, MongoDB's data service stops answering
for a while, connections drop while the bot waits for Telegram to answer messages it has already
delivered, and Redis (the consumers' de-duplication records) stops and comes back.

A fifth of the orders are cancelled by their user as soon as they are placed, racing the worker's
confirmation, and another fifth a moment later, some of them confirmed by then: the cancellation saga
(``order.cancelled`` → the worker's activity record and the bot's message, the worker's
compensation when its confirm loses the race) runs through the same faults.

What is counted is what the outside world sees: the orders' rows, the activity documents, every
``order.confirmed`` on the exchange (a tap queue), every message the fake Telegram received, and
the queues at the end. The periodic job that confirms orders the events missed is off here: it
would hide a lost event (it is proven by its own test).

The same scenario with the consumers' de-duplication switched off must fail: that is what proves
the de-duplication, rather than the idempotent writes, keeps Telegram messages to one per order.

All services run as processes of their own, as deployed. Their AMQP URL asks aio-pika to
reconnect after 1 s instead of 5 s, and the consumers retry on a schedule ten times shorter than
the default (``SCALED_DELAYS_MS``) with a data service paused a tenth of a minute: what is proved
is that nothing is lost, doubled or parked across a reconnect or an outage the schedule outlasts,
not how long one waits (the full-length schedule against a two-minute outage is arithmetic,
``test_the_retry_schedule_outlasts_a_two_minute_outage``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import asyncpg
import httpx
import pytest
from pymongo import AsyncMongoClient

from patterns.testing.pytest_fixtures import MongoTarget
from pg_data_service.settings import Settings
from reference_system.fake_telegram import FakeTelegram, fake_telegram
from reference_system.ports import free_port
from reference_system.processes import Running, wait_ready
from reference_system.waiting import Aborted, eventually
from shared.events.envelope import Envelope
from shared.events.topology import EVENTS, RETRY_DELAYS_MS, declare_all
from tests.examples.libs.test_events import RedisProcess, close_all_connections
from tests.examples.services.conftest import TOKENS, auth

ITEMS = [{"sku": "book-1", "quantity": 1, "unit_price": "10.00"}]
CHAT = 424_242
TAP = "tap.order-confirmed"
PLACED_TAP = "tap.order-placed"
SCALED_DELAYS_MS = [delay // 10 for delay in RETRY_DELAYS_MS]
PAUSE_SECONDS = 6.0  # a minute, at the schedule's scale
ORDERS = 500  # each fault strikes at a share of them, while events flow
CANCEL_AT_ONCE, CANCEL_LATER, LATER = 0, 1, 40  # n % 5: cancelled at once, or when n + 40 is placed


async def queue_depths(rabbitmq_url: str) -> dict[str, int]:
    """Messages in each queue of the vhost, ready and unacknowledged (the management API)."""
    parts = urlsplit(rabbitmq_url)
    api = f"http://{parts.hostname}:15672/api/queues/{parts.path.lstrip('/')}"
    async with httpx.AsyncClient(auth=(parts.username or "guest", parts.password or "guest")) as client:
        queues = (await client.get(api, params={"columns": "name,messages"})).raise_for_status().json()
    return {queue["name"]: int(queue.get("messages", 0)) for queue in queues}


class Service:
    """A service as a real process, which the test can kill and start again."""

    def __init__(self, module: str, env: dict[str, str], log: Path) -> None:
        self.module, self.env, self.log = module, os.environ | env, log
        self.running: Running | None = None

    async def start(self) -> None:
        with self.log.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", self.module, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        self.running = Running(self.module, process, f"http://127.0.0.1:{self.env['PORT']}/health/ready")
        try:
            await wait_ready(self.running)
        except (TimeoutError, Aborted) as error:
            raise AssertionError(f"{error}; its log ends:\n{self.log.read_text()[-3000:]}") from None

    def pause(self) -> None:
        """Stop answering, as a hung process does: connections are accepted and never served."""
        assert self.running is not None
        self.running.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.running is not None
        self.running.process.send_signal(signal.SIGCONT)

    async def kill(self) -> None:
        assert self.running is not None
        self.running.process.send_signal(signal.SIGKILL)
        await self.running.process.wait()

    async def stop(self) -> int:
        assert self.running is not None
        if self.running.process.returncode is None:
            self.running.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.running.process.wait(), 30)
        except TimeoutError:
            await self.kill()
            raise AssertionError(
                f"{self.module} did not stop within 30 s of SIGTERM:\n{self.log.read_text()[-3000:]}"
            ) from None


@asynccontextmanager
async def running(*waves: Sequence[Service]) -> AsyncIterator[None]:
    """Start the services wave by wave as the system does (data services, then their callers),
    the services of a wave together; stop every started one in reverse order, each with
    SIGTERM and exit 0, also when a start failed."""
    started: list[Service] = []
    try:
        for wave in waves:
            started.extend(wave)
            async with asyncio.TaskGroup() as group:
                for service in wave:
                    group.create_task(service.start())
        yield
    finally:
        # Every started service is stopped before any exit status is judged.
        codes: dict[str, int | str] = {}
        for service in reversed(started):
            if service.running is not None:
                try:
                    codes[service.module] = await service.stop()
                except AssertionError as error:  # it was killed after 30 s of SIGTERM
                    codes[service.module] = str(error)
        unclean = {module: code for module, code in codes.items() if code != 0}
        assert not unclean, f"{unclean}: " + "\n".join(s.log.read_text()[-3000:] for s in started)


@pytest.fixture
def amqp_url(rabbitmq_url: str) -> str:
    """This test's vhost, reconnecting after 1 s."""
    return f"{rabbitmq_url}?reconnect_interval=1"


@dataclass
class Scenario:
    pg_settings: Settings
    postgres_url: str
    mongo: MongoTarget
    redis: RedisProcess  # of the scenario's own, to stop and start again; it keeps its data on disk
    rabbitmq_url: str
    amqp_url: str
    logs: Path

    def services(self, telegram_url: str, deduplicate: bool) -> tuple[Service, ...]:
        tokens = ",".join(f"{caller}={token}" for caller, token in TOKENS.items())
        pg_port, mongo_port = free_port(), free_port()
        data = {
            "PG_DATA_URL": f"http://127.0.0.1:{pg_port}",
            "MONGO_DATA_URL": f"http://127.0.0.1:{mongo_port}",
        }
        events = {
            "RABBITMQ_URL": self.amqp_url,
            "REDIS_URL": self.redis.url,
            "DEDUPLICATE_EVENTS": str(deduplicate).lower(),
            "RETRY_DELAYS_MS": json.dumps(SCALED_DELAYS_MS),
        }
        pg = {"DATABASE_URL": str(self.pg_settings.database_url), "SERVICE_TOKENS": tokens}
        mongo = {
            "MONGODB_URL": self.mongo.url,
            "MONGODB_DATABASE": self.mongo.database,
            "SERVICE_TOKENS": tokens,
        }
        worker = {"SERVICE_TOKEN": TOKENS["worker"], "CONFIRM_JOB": "false", **data, **events}
        bot = {
            "SERVICE_TOKEN": TOKENS["bot"],
            "BOT_TOKEN": "123456:TEST-token",
            "TELEGRAM_API_URL": telegram_url,
        }
        return (
            Service(
                "pg_data_service",
                {"PORT": str(pg_port), "RABBITMQ_URL": self.amqp_url, **pg},
                self.logs / "pg.log",
            ),
            Service("mongo_data_service", {"PORT": str(mongo_port), **mongo}, self.logs / "mongo.log"),
            Service("worker_service", {"PORT": str(free_port()), **worker}, self.logs / "worker.log"),
            Service(
                "bot_service", {"PORT": str(free_port()), **bot, **data, **events}, self.logs / "bot.log"
            ),
        )


@pytest.fixture
def scenario(
    pg_settings: Settings,
    postgres_url: str,
    mongo_target: MongoTarget,
    rabbitmq_url: str,
    amqp_url: str,
    tmp_path: Path,
) -> Iterator[Scenario]:
    with RedisProcess(free_port(), tmp_path) as redis:
        yield Scenario(pg_settings, postgres_url, mongo_target, redis, rabbitmq_url, amqp_url, tmp_path)


@dataclass
class Seen:
    """What the outside world saw once every queue was empty."""

    orders: list[asyncpg.Record]
    unsent_outbox_rows: int
    activity: list[tuple[int, str]]  # (order id, kind) of every activity document
    placed: list[Envelope]  # every order.placed the relay published, from a tap queue
    announced: list[Envelope]  # every order.confirmed published, from a tap queue
    telegram: list[str]  # every message the user received
    queues: dict[str, int]


async def settled_orders(postgres_url: str) -> int:
    """Orders confirmed or cancelled."""
    connection = await asyncpg.connect(postgres_url)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM orders WHERE status <> 'placed'"))
    finally:
        await connection.close()


async def reach(postgres_url: str, count: int) -> None:
    async def enough() -> bool:
        return await settled_orders(postgres_url) >= count

    await eventually(enough, f"{count} orders confirmed or cancelled", timeout=180, interval=0.2)


async def run(scenario: Scenario, orders: int, deduplicate: bool) -> Seen:
    """Place ``orders`` through the faults; return what was seen once the queues are empty."""
    connection = await aio_pika.connect(scenario.rabbitmq_url)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(connection)
        channel = await connection.channel()
        await declare_all(channel)
        for name, key in ((TAP, "order.confirmed"), (PLACED_TAP, "order.placed")):
            tap = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
            await tap.bind(EVENTS, key)
        telegram, telegram_url = await stack.enter_async_context(fake_telegram())
        pg_service, mongo_service, worker, bot = scenario.services(telegram_url, deduplicate)
        await stack.enter_async_context(running((pg_service, mongo_service), (worker, bot)))
        pg_url = f"http://127.0.0.1:{pg_service.env['PORT']}"
        pg = await stack.enter_async_context(httpx.AsyncClient(base_url=pg_url, headers=auth(), timeout=30))
        user = {"email": "load@example.org", "name": "Load", "telegram_chat_id": CHAT}
        user_id = (await pg.post("/users", json=user)).json()["id"]

        async def send(method: str, path: str, body: dict[str, Any], headers: dict[str, str]) -> int | None:
            """One call; through a restart of the service, None (and the caller sends it again)."""
            try:
                response = await pg.request(method, path, json=body, headers=headers)
            except httpx.TransportError:
                return None
            assert response.status_code in (200, 201, 503), response.text
            return int(response.json()["id"]) if response.status_code in (200, 201) else None

        async def cancel(order_id: int) -> None:
            cancellation = partial(
                send, "POST", f"/orders/{order_id}/cancellation", {"reason": "customer"}, {}
            )
            await eventually(cancellation, f"order {order_id} cancelled", timeout=60, interval=0.2)

        async def place_orders(first: int, step: int) -> None:
            mine: dict[int, int] = {}
            for n in range(first, orders, step):
                key = {"Idempotency-Key": f"load-{n:05d}"}  # the same again after a restart
                order = partial(send, "POST", "/orders", {"user_id": user_id, "items": ITEMS}, key)
                mine[n] = await eventually(order, f"order {n} placed", timeout=60, interval=0.2)
                if n % 5 == CANCEL_AT_ONCE:  # racing the worker's confirmation
                    await cancel(mine[n])
                if (n - LATER) % 5 == CANCEL_LATER and n - LATER in mine:  # confirmed by now, or not
                    await cancel(mine[n - LATER])

        placing = asyncio.gather(*(place_orders(first, 4) for first in range(4)))  # four clients at once
        await faults(scenario, orders, (pg_service, mongo_service, worker), telegram, deduplicate)
        await placing
        await reach(scenario.postgres_url, orders)

        async def settled() -> dict[str, int] | None:
            depths = await queue_depths(scenario.rabbitmq_url)
            busy = {name: count for name, count in depths.items() if count and not name.startswith("tap.")}
            return None if busy or len(telegram.sent) < orders else depths

        # Empty queues (ready and unacknowledged): no redelivery can still come.
        queues = await eventually(settled, "every queue empty and every order announced", timeout=120)
    return Seen(
        orders=await fetch(
            scenario.postgres_url, "SELECT id, status, version, cancellation_reason FROM orders"
        ),
        unsent_outbox_rows=len(
            await fetch(scenario.postgres_url, "SELECT id FROM outbox WHERE published_at IS NULL")
        ),
        activity=await activity(scenario.mongo),
        placed=await tapped(scenario.rabbitmq_url, PLACED_TAP),
        announced=await tapped(scenario.rabbitmq_url, TAP),
        telegram=[sent.text for sent in telegram.sent if sent.chat_id == CHAT],
        queues=queues,
    )


async def tapped(rabbitmq_url: str, name: str) -> list[Envelope]:
    """Every event the tap queue caught (a connection of its own: the faults closed the first)."""
    announced = []
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        tap = await (await connection.channel()).get_queue(name)
        while message := await tap.get(fail=False):
            await message.ack()
            announced.append(Envelope.model_validate_json(message.body))
    return announced


async def retried(worker: Service) -> float:
    """How many messages the worker has sent to wait in a retry queue, from its /metrics."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{worker.env['PORT']}/metrics")).text
    sample = 'events_consumed_total{consumer="worker.order-placed",outcome="retried"}'
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(sample))


async def faults(
    scenario: Scenario,
    orders: int,
    services: tuple[Service, Service, Service],
    telegram: FakeTelegram,
    deduplicate: bool,
) -> None:
    pg_service, mongo_service, worker = services
    await reach(scenario.postgres_url, orders // 10)
    await asyncio.to_thread(close_all_connections, scenario.rabbitmq_url)  # every connection dropped
    if deduplicate:  # (without, the test needs only one fault that repeats an effect)
        await relay_killed_between_confirm_and_commit(scenario.postgres_url, pg_service)
        await reach(scenario.postgres_url, orders * 2 // 10)
        await redis_restarted(scenario, worker)  # (without de-duplication, nobody asks Redis)
    await reach(scenario.postgres_url, orders * 3 // 10)
    await worker.kill()  # the consumer dies mid-stream, messages in hand unacked
    await worker.start()
    await reach(scenario.postgres_url, orders * 4 // 10)
    if deduplicate:
        await paused(mongo_service, worker)
    await reach(scenario.postgres_url, orders // 2)
    # The bot has sent messages and waits for Telegram's answers when its connection drops: the
    # messages are delivered to the user but their events are not acked, and come again.
    telegram.hold_answers()
    try:
        await telegram.held(4)
        await asyncio.to_thread(close_all_connections, scenario.rabbitmq_url)
    finally:
        telegram.release_answers()
    await reach(scenario.postgres_url, orders * 7 // 10)
    await asyncio.to_thread(close_all_connections, scenario.rabbitmq_url)
    await reach(scenario.postgres_url, orders * 8 // 10)


async def redis_restarted(scenario: Scenario, worker: Service) -> None:
    """Redis goes away while events flow: whether an event was handled is unknown, so they wait in
    the retry queues; Redis comes back with what it held, and they are handled, once."""
    before = await retried(worker)
    await asyncio.to_thread(scenario.redis.stop)

    async def waiting() -> bool:
        return await retried(worker) > before

    await eventually(waiting, "an event sent to wait for Redis", interval=0.05)
    await asyncio.to_thread(scenario.redis.start)


UNSENT = "SELECT count(*) FROM outbox WHERE published_at IS NULL AND quarantined_at IS NULL"
RELAY_WAITS = """SELECT count(*) FROM pg_stat_activity
                 WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE outbox SET published_at%'"""


async def relay_killed_between_confirm_and_commit(postgres_url: str, pg_service: Service) -> None:
    """Hold the outbox so the relay, having published a batch and had it confirmed, waits to mark
    it sent; kill the service there. After its restart the batch is published again (the one
    duplicate an outbox allows), and the consumers must apply it once."""
    locker, watcher = await asyncpg.connect(postgres_url), await asyncpg.connect(postgres_url)

    async def relay_waits() -> bool:
        return bool(await watcher.fetchval(RELAY_WAITS))

    async def killed() -> bool:
        async with locker.transaction():
            # SHARE lets the relay claim rows (FOR UPDATE) and blocks its UPDATE, and new inserts.
            await locker.execute("LOCK TABLE outbox IN SHARE MODE")
            if not await locker.fetchval(UNSENT):
                return False  # nothing for the relay to take: let the placing go on, then again
            await eventually(relay_waits, "the relay waiting to mark a confirmed batch sent")
            await pg_service.kill()
            return True

    try:
        await eventually(killed, "the relay killed between confirm and commit", interval=0.05)
    finally:
        await locker.close()
        await watcher.close()
    await pg_service.start()


async def paused(service: Service, worker: Service) -> None:
    """``service`` hangs for ``PAUSE_SECONDS`` while events need it: they wait, none is parked."""
    before = await retried(worker)
    service.pause()
    try:

        async def waiting() -> bool:
            return await retried(worker) > before

        await eventually(waiting, f"an event sent to wait for {service.module}", interval=0.1)
        await asyncio.sleep(PAUSE_SECONDS)  # the outage itself: its length is the fault
    finally:
        service.resume()


async def fetch(postgres_url: str, query: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(postgres_url)
    try:
        return await connection.fetch(query)
    finally:
        await connection.close()


async def activity(mongo: MongoTarget) -> list[tuple[int, str]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo.url)
    try:
        documents = client[mongo.database].activity.find({})
        return [(doc["payload"]["order_id"], doc["kind"]) async for doc in documents]
    finally:
        await client.close()


# What an order's activity may hold at the end, by how it ended.
CONFIRMED = {frozenset({"order.confirmed"})}
CONFIRMED_THEN_CANCELLED = {frozenset({"order.confirmed", "order.cancelled"})}
CANCELLED_FIRST = {
    frozenset({"order.cancelled"}),  # the worker saw the order cancelled
    # It recorded the confirmation, its confirm was refused, and it withdrew the record.
    frozenset({"order.confirmed", "order.confirmation_withdrawn", "order.cancelled"}),
}


@dataclass
class Endings:
    confirmed: set[int]
    confirmed_then_cancelled: set[int]  # placed → confirmed → cancelled: version 3
    cancelled_first: set[int]  # placed → cancelled: version 2


def check(seen: Seen, orders: int) -> Endings:
    """Nothing lost, each effect once, nothing left behind; how the orders ended."""
    rows = {row["id"]: row for row in seen.orders}
    assert len(rows) == orders
    ended: dict[tuple[str, int, str | None], set[int]] = defaultdict(set)
    for order_id, row in rows.items():
        ended[(row["status"], row["version"], row["cancellation_reason"])].add(order_id)
    endings = Endings(
        ended.pop(("confirmed", 2, None), set()),  # confirmed once
        ended.pop(("cancelled", 3, "customer"), set()),
        ended.pop(("cancelled", 2, "customer"), set()),
    )
    assert not ended, f"orders that ended otherwise: {dict(ended)}"
    assert seen.unsent_outbox_rows == 0
    twice = [record for record, count in Counter(seen.activity).items() if count > 1]
    assert not twice, f"activity recorded twice: {twice[:10]}"
    kinds: dict[int, set[str]] = defaultdict(set)
    for order_id, kind in seen.activity:
        kinds[order_id].add(kind)
    for ids, allowed in (
        (endings.confirmed, CONFIRMED),
        (endings.confirmed_then_cancelled, CONFIRMED_THEN_CANCELLED),
        (endings.cancelled_first, CANCELLED_FIRST),
    ):
        wrong = {order_id: kinds[order_id] for order_id in ids if frozenset(kinds[order_id]) not in allowed}
        assert not wrong, f"activity that does not tell what happened: {dict(list(wrong.items())[:5])}"
    event_ids: dict[int, set[uuid.UUID]] = defaultdict(set)
    for event in seen.announced:
        event_ids[event.data["order_id"]].add(event.id)
    assert endings.confirmed <= set(event_ids), "an order was never announced"
    assert not set(event_ids) & endings.cancelled_first, "an order announced that was never confirmed"
    assert all(len(ids) == 1 for ids in event_ids.values()), "an order announced under two event ids"
    told = Counter(
        (int(text.removeprefix("Your order #").split()[0]), text.split()[4].rstrip(".,:"))
        for text in seen.telegram
    )
    twice = sorted(message for message, count in told.items() if count > 1)
    assert not twice, f"Telegram messages {twice[:10]} sent more than once"
    cancelled = endings.confirmed_then_cancelled | endings.cancelled_first
    assert {o for o, kind in told if kind == "cancelled"} == cancelled, "a cancellation's message is wrong"
    confirmed_told = {o for o, kind in told if kind == "confirmed"}
    # A confirmation's message may be missing only for an order cancelled before its announcement.
    assert endings.confirmed <= confirmed_told <= endings.confirmed | endings.confirmed_then_cancelled
    assert {name: count for name, count in seen.queues.items() if not name.startswith("tap.") and count} == {}
    return endings


async def test_every_event_takes_effect_exactly_once_through_broker_and_consumer_failures(
    scenario: Scenario,
) -> None:
    seen = await run(scenario, ORDERS, deduplicate=True)
    endings = check(seen, ORDERS)
    assert endings.cancelled_first, "no cancel won the race with the confirmation"
    assert endings.confirmed_then_cancelled, "no confirmed order was cancelled"
    republished = [id for id, count in Counter(event.id for event in seen.placed).items() if count > 1]
    assert republished, "the relay's kill republished nothing: the fault missed its window"


async def test_without_deduplication_the_same_faults_send_telegram_messages_twice(
    scenario: Scenario,
) -> None:
    """The counterfactual: the idempotent writes alone keep rows and records right, but the
    messages redelivered after the bot's connection dropped reach the user a second time."""
    seen = await run(scenario, 100, deduplicate=False)
    with pytest.raises(AssertionError, match="sent more than once"):
        check(seen, 100)
