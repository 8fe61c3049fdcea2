"""Events against the real RabbitMQ (a vhost per test): topology, confirms, retries, parking lot."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Self
from urllib.parse import unquote, urlsplit

import aio_pika
import httpx
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from patterns.testing.pytest_fixtures import RedisTarget, skip_or_fail
from patterns.testing.rabbitmq_node import RabbitNode, rabbitmq_node
from patterns.testing.service_resolution import Unavailable
from reference_system.ports import free_port, port_is_open
from reference_system.waiting import eventually, eventually_blocking
from shared.events.consumer import EventConsumer, NotConsuming, Permanent
from shared.events.envelope import (
    MAX_BODY_BYTES,
    Envelope,
    Event,
    OrderConfirmed,
    OrderPlaced,
    Rejected,
    decode,
    new_event,
)
from shared.events.parking_lot import Parked, inspect, replay
from shared.events.publisher import EventPublisher, NotPublished, Unpublishable
from shared.events.topology import DEAD, EVENTS, RETRY_DELAYS_MS, declare, retry_queue

PLACED = OrderPlaced(order_id=7, user_id=1, total="26.25")


@pytest.fixture
async def channel(rabbitmq_url: str) -> AsyncIterator[AbstractChannel]:
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        yield await connection.channel(publisher_confirms=True)


@pytest.fixture
async def redis(redis_target: RedisTarget) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_target.url)
    yield client
    await client.aclose()


async def drain(queue: AbstractQueue, count: int, timeout: float = 10) -> list[AbstractIncomingMessage]:
    """Take ``count`` messages from ``queue`` (acked), waiting up to ``timeout`` seconds."""
    taken: list[AbstractIncomingMessage] = []

    async def took_all() -> bool:
        if (message := await queue.get(fail=False)) is not None:
            await message.ack()
            taken.append(message)
        return len(taken) >= count

    await eventually(took_all, f"{count} messages in {queue.name}", timeout=timeout, interval=0.05)
    return taken


def queue_types(vhost_url: str) -> dict[str, str]:
    vhost = unquote(urlsplit(vhost_url).path.lstrip("/"))
    listing = subprocess.run(
        ["rabbitmqctl", "--quiet", "--no-table-headers", "list_queues", "-p", vhost, "name", "type"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return dict(line.split("\t") for line in listing.splitlines() if "\t" in line)


async def test_topology_is_idempotent_and_every_queue_is_quorum(
    channel: AbstractChannel, rabbitmq_url: str
) -> None:
    await declare(channel, "worker.order-placed", ["order.placed"])
    await declare(channel, "worker.order-placed", ["order.placed"])  # again, as every restart does
    retries = {retry_queue("worker.order-placed", delay): "quorum" for delay in RETRY_DELAYS_MS}
    assert queue_types(rabbitmq_url) == {
        "worker.order-placed": "quorum",
        "worker.order-placed.parking-lot": "quorum",
        **retries,
    }


def test_the_retry_schedule_outlasts_a_two_minute_outage() -> None:
    """Attempt n+1 waits RETRY_DELAYS_MS[n-1]: the fifth attempt comes after more than two minutes,
    and the message is parked only after the last one."""
    assert sum(RETRY_DELAYS_MS[:4]) > 120_000
    assert list(RETRY_DELAYS_MS) == sorted(RETRY_DELAYS_MS)


async def test_a_confirmed_event_carries_id_type_and_persistence(
    channel: AbstractChannel, rabbitmq_url: str
) -> None:
    queues = await declare(channel, "probe", ["order.placed"])
    event = new_event(
        PLACED, trace={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    )
    async with EventPublisher(rabbitmq_url) as publisher:
        await publisher.publish(event, correlation_id="request-42")
    [message] = await drain(queues.main, 1)
    assert message.message_id == str(event.id)
    assert message.correlation_id == "request-42"
    assert message.content_type == "application/json"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    # The event's trace continues: its own traceparent, or (with aio-pika instrumented, as in a service)
    # the publish span's, a child in the same trace. The trace id is what must not change.
    assert str(message.headers["traceparent"]).split("-")[1] == event.trace["traceparent"].split("-")[1]
    assert decode(message.body, message.content_type) == (event, PLACED)


async def test_an_unroutable_event_is_an_error_not_a_silent_drop(rabbitmq_url: str) -> None:
    unknown = new_event(PLACED).model_copy(update={"type": "order.shipped"})  # no queue is bound for it
    async with EventPublisher(rabbitmq_url) as publisher:
        with pytest.raises(NotPublished, match=r"PublishError.*NO_ROUTE"):
            await publisher.publish(unknown)


async def test_an_event_over_the_size_limit_is_refused_at_publish(rabbitmq_url: str) -> None:
    huge = new_event(PLACED).model_copy(update={"trace": {"baggage": "x" * MAX_BODY_BYTES}})
    async with EventPublisher(rabbitmq_url) as publisher:
        with pytest.raises(
            Unpublishable, match=rf"order.placed {huge.id}: \d+ bytes, over the 65536 bytes allowed"
        ):
            await publisher.publish(huge)


async def test_publishers_declare_every_subscription_so_early_events_wait(rabbitmq_url: str) -> None:
    async with EventPublisher(rabbitmq_url) as publisher:
        await publisher.publish(new_event(OrderConfirmed(order_id=1, user_id=1)))  # the bot never ran yet
    assert queue_types(rabbitmq_url).keys() >= {"worker.order-placed", "bot.order-confirmed"}


async def test_a_publish_on_a_closed_publisher_says_so() -> None:
    with pytest.raises(RuntimeError, match="not open"):
        await EventPublisher("amqp://127.0.0.1:1/").publish(new_event(PLACED))


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"{not json", "application/json", "not an event envelope"),
        (b"<xml/>", "text/xml", "content type 'text/xml'"),
        (b"x" * 70_000, "application/json", "over 65536"),
        (
            json.dumps({"type": "order.placed", "version": 1}).encode(),
            "application/json",
            "not an event envelope",
        ),
        (
            new_event(PLACED).model_copy(update={"type": "order.shipped"}).model_dump_json().encode(),
            "application/json",
            "unknown event 'order.shipped'",
        ),
        (
            new_event(PLACED).model_copy(update={"version": 2}).model_dump_json().encode(),
            "application/json",
            "order.placed v2 is newer than this reader (v1): deploy readers before writers",
        ),
        (
            new_event(PLACED).model_copy(update={"data": {"order_id": "x"}}).model_dump_json().encode(),
            "application/json",
            "invalid order.placed v1 data",
        ),
    ],
    # Named, not derived from the bodies: those hold fresh event ids, and every xdist worker must
    # collect the same tests.
    ids=["not-json", "xml", "oversized", "no-envelope", "unknown-type", "unknown-version", "invalid-data"],
)
def test_a_message_no_retry_can_fix_is_rejected_with_the_reason(
    body: bytes, content_type: str, reason: str
) -> None:
    with pytest.raises(Rejected, match=re.escape(reason)):
        decode(body, content_type)


class Recorder:
    """A handler that records what it handled and fails as told."""

    def __init__(self, fail_times: int = 0, permanent: bool = False) -> None:
        self.handled: list[int] = []
        self.calls = 0
        self.fail_times = fail_times
        self.permanent = permanent

    async def __call__(self, event: Envelope, data: Event) -> None:
        self.calls += 1
        assert isinstance(data, OrderPlaced)
        if self.permanent and data.order_id == 13:
            raise Permanent("order 13 can never be confirmed")
        if self.calls <= self.fail_times:
            raise ConnectionError("pg_data_service hiccup")
        self.handled.append(data.order_id)


async def publish_raw(channel: AbstractChannel, body: bytes, content_type: str = "application/json") -> None:
    exchange = await channel.get_exchange(EVENTS)
    await exchange.publish(aio_pika.Message(body, content_type=content_type), routing_key="order.placed")


def outcome_count(consumer: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("events_consumed_total", {"consumer": consumer, "outcome": outcome}) or 0


def parked_count(consumer: str) -> float:
    return outcome_count(consumer, "parked")


class RedisProcess:
    """A redis-server of a test's own on ``port``, which the test can stop and start again.

    With ``directory`` it keeps an append-only file there, fsynced on every write, so what it
    held survives a restart, as a production Redis with persistence does.
    """

    def __init__(self, port: int, directory: Path | None = None) -> None:
        persistence = ["--dir", str(directory), "--appendonly", "yes", "--appendfsync", "always"]
        self.command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        self.command += persistence if directory else ["--appendonly", "no"]
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL)
        eventually_blocking(lambda: port_is_open(self.url), "redis-server listening")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # SIGTERM: Redis finishes its file and exits
            self.process.wait(timeout=10)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def test_poison_goes_to_the_parking_lot_with_its_reason_and_others_keep_flowing(
    channel: AbstractChannel, rabbitmq_url: str, redis: Redis
) -> None:
    handler = Recorder()
    parked_before = parked_count("worker.test")
    async with EventConsumer(rabbitmq_url, "worker.test", ["order.placed"], handler, redis):
        await publish_raw(channel, b"{broken")
        async with EventPublisher(rabbitmq_url) as publisher:
            await publisher.publish(new_event(PLACED))
        await eventually(lambda: handler.handled == [7], "the valid event handled", timeout=10)
        [parked] = await eventually(lambda: inspect(rabbitmq_url, "worker.test"), "the poison parked")
    assert parked.body == b"{broken"
    assert parked.reason.startswith("not an event envelope")
    assert parked.parked_by == "worker.test"
    assert parked_count("worker.test") - parked_before == 1


async def test_a_failing_handler_is_retried_after_a_delay_then_succeeds(
    rabbitmq_url: str, redis: Redis
) -> None:
    handler = Recorder(fail_times=2)
    async with (
        EventConsumer(
            rabbitmq_url, "worker.test", ["order.placed"], handler, redis, retry_delays_ms=(100, 200)
        ),
        EventPublisher(rabbitmq_url) as publisher,
    ):
        await publisher.publish(new_event(PLACED))
        await eventually(lambda: handler.handled == [7], "the third attempt succeeding", timeout=10)
    assert handler.calls == 3


async def test_out_of_attempts_and_permanent_errors_are_parked(rabbitmq_url: str, redis: Redis) -> None:
    handler = Recorder(fail_times=1_000, permanent=True)
    async with (
        EventConsumer(
            rabbitmq_url, "worker.test", ["order.placed"], handler, redis, retry_delays_ms=(50, 100)
        ),
        EventPublisher(rabbitmq_url) as publisher,
    ):
        await publisher.publish(new_event(PLACED))
        await publisher.publish(new_event(OrderPlaced(order_id=13, user_id=1, total="1.00")))

        async def both_parked() -> list[Parked] | None:
            found = await inspect(rabbitmq_url, "worker.test")
            return found if len(found) == 2 else None

        parked = await eventually(both_parked, "both events parked", timeout=15)
    reasons = sorted(m.reason for m in parked)
    assert reasons[0] == "gave up after 3 attempts: ConnectionError: pg_data_service hiccup"
    assert reasons[1] == "permanent: order 13 can never be confirmed"


async def test_the_same_event_delivered_twice_is_handled_once(rabbitmq_url: str, redis: Redis) -> None:
    handler = Recorder()
    event = new_event(PLACED)
    sentinel = new_event(OrderPlaced(order_id=8, user_id=1, total="1.00"))
    async with (
        # One message at a time: once the sentinel is handled, everything before it has been.
        EventConsumer(rabbitmq_url, "worker.test", ["order.placed"], handler, redis, prefetch=1),
        EventPublisher(rabbitmq_url) as publisher,
    ):
        await publisher.publish(event)
        await eventually(lambda: handler.handled == [7], "the first delivery handled", timeout=10)
        await publisher.publish(event)  # a redelivery, or the outbox publishing twice after a crash
        await publisher.publish(new_event(OrderConfirmed(order_id=1, user_id=1)))  # not this consumer's
        await publisher.publish(sentinel)
        await eventually(lambda: 8 in handler.handled, "the sentinel handled", timeout=10)
    assert handler.handled == [7, 8]


async def test_two_copies_of_one_event_in_flight_at_once_are_handled_once(
    rabbitmq_url: str, redis: Redis
) -> None:
    """The outbox after a crash, or a derived event published twice, can put two copies in the
    queue together; the claim taken before the handler lets only one of them run it."""
    release, calls = asyncio.Event(), []

    async def slow(event: Envelope, data: Event) -> None:
        calls.append(event.id)
        await release.wait()  # the first copy is still being handled when the second arrives

    retried = outcome_count("worker.test", "retried")
    duplicates = outcome_count("worker.test", "duplicate")
    event = new_event(PLACED)
    async with (
        EventConsumer(rabbitmq_url, "worker.test", ["order.placed"], slow, redis, retry_delays_ms=(50, 50)),
        EventPublisher(rabbitmq_url) as publisher,
    ):
        await publisher.publish(event)
        await publisher.publish(event)
        await eventually(
            lambda: outcome_count("worker.test", "retried") > retried, "the second copy sent to wait"
        )
        release.set()
        await eventually(
            lambda: outcome_count("worker.test", "duplicate") > duplicates, "the second copy seen as done"
        )
    assert calls == [event.id]


async def test_a_copy_the_parking_lot_does_not_take_is_not_lost(
    channel: AbstractChannel, rabbitmq_url: str, redis: Redis
) -> None:
    """Without a binding the parking copy comes back (mandatory): the original is not acked."""
    requeued = outcome_count("worker.test", "requeued")
    async with EventConsumer(
        rabbitmq_url, "worker.test", ["order.placed"], Recorder(), redis, settle_pause=0.05
    ):
        queues = await declare(channel, "worker.test", ["order.placed"])
        await queues.parking.unbind(DEAD, "worker.test.parking-lot")  # as a broken deploy might
        await publish_raw(channel, b"{broken")
        await eventually(
            lambda: outcome_count("worker.test", "requeued") >= requeued + 2, "the poison given back twice"
        )
        assert await inspect(rabbitmq_url, "worker.test") == []
        await queues.parking.bind(DEAD, "worker.test.parking-lot")
        [parked] = await eventually(lambda: inspect(rabbitmq_url, "worker.test"), "the poison parked")
    assert parked.body == b"{broken"
    assert parked.reason.startswith("not an event envelope")


async def test_a_copy_the_broker_nacks_is_not_lost(
    channel: AbstractChannel, rabbitmq_url: str, redis: Redis
) -> None:
    """A parking copy the broker refuses (the parking lot full, ``reject-publish``) is a nack: the
    original is given back, not acked, and parked on a fresh channel once the lot takes copies again."""
    requeued = outcome_count("worker.test", "requeued")
    full = {
        "pattern": r"\.parking-lot$",
        "definition": {"max-length": 0, "overflow": "reject-publish"},  # a full quorum queue takes one
        "apply-to": "queues",
    }
    async with management(rabbitmq_url) as (api, vhost):
        (await api.put(f"/policies/{vhost}/full", json=full)).raise_for_status()
        async with EventConsumer(
            rabbitmq_url, "worker.test", ["order.placed"], Recorder(), redis, settle_pause=0.05
        ):
            await publish_raw(channel, b"{first")
            await eventually(lambda: inspect(rabbitmq_url, "worker.test"), "the first poison parked")
            await publish_raw(channel, b"{second")
            await eventually(
                lambda: outcome_count("worker.test", "requeued") >= requeued + 2, "its copy refused twice"
            )
            (await api.delete(f"/policies/{vhost}/full")).raise_for_status()

            async def both_parked() -> list[Parked] | None:
                found = await inspect(rabbitmq_url, "worker.test")
                return found if len(found) == 2 else None

            parked = await eventually(both_parked, "the second poison parked once the lot takes it")
    assert [message.body for message in parked] == [b"{first", b"{second"]


@contextlib.asynccontextmanager
async def management(rabbitmq_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """RabbitMQ's management API for the vhost of ``rabbitmq_url``, and the vhost's name (quoted)."""
    parts = urlsplit(rabbitmq_url)
    api = f"http://{parts.hostname}:15672/api"
    auth = (parts.username or "guest", parts.password or "guest")
    async with httpx.AsyncClient(base_url=api, auth=auth, timeout=10) as client:
        yield client, parts.path.lstrip("/") or "%2F"


async def test_redis_down_delays_the_message_instead_of_spending_its_deliveries(
    rabbitmq_url: str, redis: Redis
) -> None:
    """Whether an event was handled is unknown while Redis is down: the message waits in the
    retry queues, and is handled once Redis is back."""
    handler = Recorder()
    port = free_port()
    down = Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.2)
    requeued = outcome_count("worker.test", "requeued")
    async with (
        EventConsumer(
            rabbitmq_url, "worker.test", ["order.placed"], handler, down, retry_delays_ms=(100, 2_000, 60_000)
        ),
        EventPublisher(rabbitmq_url) as publisher,
    ):
        await publisher.publish(new_event(PLACED))
        await eventually(lambda: outcome_count("worker.test", "retried") > 0, "the event sent to wait")
        with RedisProcess(port):  # Redis comes back
            await eventually(
                lambda: handler.handled == [7], "the event handled once Redis is back", timeout=15
            )
    await down.aclose()
    assert outcome_count("worker.test", "requeued") == requeued
    assert await inspect(rabbitmq_url, "worker.test") == []


async def test_parked_messages_can_be_listed_and_replayed_after_the_fix(
    rabbitmq_url: str, redis: Redis
) -> None:
    failing = Recorder(fail_times=1_000)
    async with (
        EventConsumer(rabbitmq_url, "worker.test", ["order.placed"], failing, redis, retry_delays_ms=()),
        EventPublisher(rabbitmq_url) as publisher,
    ):
        await publisher.publish(new_event(PLACED))
        await eventually(lambda: inspect(rabbitmq_url, "worker.test"), "the failing event parked")
    [parked] = await inspect(rabbitmq_url, "worker.test")
    assert parked.type == "order.placed"
    assert parked.reason.startswith("gave up after 1 attempts")
    assert len(await inspect(rabbitmq_url, "worker.test")) == 1, "listing must not remove anything"
    fixed = Recorder()
    async with EventConsumer(rabbitmq_url, "worker.test", ["order.placed"], fixed, redis):
        assert await replay(rabbitmq_url, "worker.test") == 1
        await eventually(lambda: fixed.handled == [7], "the replayed event handled", timeout=10)
    assert await inspect(rabbitmq_url, "worker.test") == []


def test_the_parking_lot_command_says_when_rabbitmq_is_unreachable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from shared.events.parking_lot import main

    assert main(["list", "worker.order-placed", "--url", "amqp://guest:guest@127.0.0.1:1/"]) == 1
    assert "cannot reach RabbitMQ at 127.0.0.1:1/" in capsys.readouterr().err


@pytest.fixture
def own_broker() -> Iterator[RabbitNode]:
    """A RabbitMQ node of this test's own: restarting the shared one would break every test beside it."""
    with contextlib.ExitStack() as stack:
        try:
            node = stack.enter_context(rabbitmq_node())
        except Unavailable as error:
            skip_or_fail(str(error))
        yield node


async def test_queues_and_consumers_come_back_after_a_broker_restart(
    own_broker: RabbitNode, redis: Redis
) -> None:
    """aio-pika #632: a robust consumer must resume after the broker restarts, not sit silent."""
    handler = Recorder()
    url = own_broker.url + "?reconnect_interval=1"  # aio-pika waits 5 s; the claim is *that* it resumes
    async with (
        EventConsumer(url, "worker.test", ["order.placed"], handler, redis) as consumer,
        EventPublisher(url, timeout=2.0) as publisher,
    ):
        await publisher.publish(new_event(PLACED))
        await eventually(lambda: handler.handled == [7], "the first event handled", timeout=10)
        try:
            await asyncio.to_thread(own_broker.stop_app)
            await eventually(lambda: not_consuming(consumer), "the readiness check failing while it is down")
        finally:
            await asyncio.to_thread(own_broker.start_app)
        again = new_event(OrderPlaced(order_id=8, user_id=1, total=Decimal("1.00")))

        async def published() -> bool:  # NotPublished until the robust connection is back
            with contextlib.suppress(NotPublished):
                await publisher.publish(again)
                return True
            return False

        await eventually(published, "a publish after the restart", timeout=60, interval=0.5)
        await eventually(lambda: handler.handled == [7, 8], "the consumer back", timeout=30)
        await consumer.check()  # and ready again


async def not_consuming(consumer: EventConsumer) -> bool:
    try:
        await consumer.check()
    except NotConsuming:
        return True
    return False


async def test_a_consumer_that_cannot_come_back_fails_readiness_then_its_process(
    rabbitmq_url: str, redis: Redis
) -> None:
    """aio-pika restores a consumer after a reconnect if it can. Here the broker refuses the
    reconnect (the user's permissions revoked): the process would stay up and silent. Its readiness
    check says so, and the watch job fails (the service exits 1 and is restarted) once the stall
    has lasted ``stall_seconds``; the permissions back, the same consumer is ready again."""
    url = f"{rabbitmq_url}?reconnect_interval=0.2"
    user = urlsplit(rabbitmq_url).username or "guest"
    everything = {"configure": ".*", "write": ".*", "read": ".*"}
    async with (
        management(rabbitmq_url) as (api, vhost),
        EventConsumer(
            url, "worker.test", ["order.placed"], Recorder(), redis, watch_interval=0.05, stall_seconds=1
        ) as consumer,
    ):
        watching = asyncio.create_task(consumer.watch(asyncio.Event()))
        await consumer.check()
        (await api.delete(f"/permissions/{vhost}/{user}")).raise_for_status()
        try:
            await asyncio.to_thread(close_all_connections, rabbitmq_url)
            with pytest.raises(NotConsuming, match="no open channel"):
                await asyncio.wait_for(watching, timeout=15)
        finally:
            (await api.put(f"/permissions/{vhost}/{user}", json=everything)).raise_for_status()
        await eventually(lambda: consuming(consumer), "the consumer restored", timeout=15)


async def consuming(consumer: EventConsumer) -> bool:
    return not await not_consuming(consumer)


def vhost_of(rabbitmq_url: str) -> str:
    return unquote(urlsplit(rabbitmq_url).path.lstrip("/"))


def close_all_connections(rabbitmq_url: str) -> None:
    """Every connection to the vhost of ``rabbitmq_url``, closed by the broker."""
    subprocess.run(
        ["rabbitmqctl", "--quiet", "close_all_connections", "-p", vhost_of(rabbitmq_url), "fault test"],
        check=True,
        timeout=60,
        capture_output=True,
    )


async def test_the_watch_job_ends_when_told_while_consuming(rabbitmq_url: str, redis: Redis) -> None:
    async with EventConsumer(
        rabbitmq_url,
        "worker.test",
        ["order.placed"],
        Recorder(),
        redis,
        watch_interval=0.05,
        stall_seconds=0.1,
    ) as consumer:
        stop = asyncio.Event()
        watching = asyncio.create_task(consumer.watch(stop))
        await eventually(
            lambda: REGISTRY.get_sample_value("events_queue_messages", {"queue": "worker.test"}) is not None,
            "the queue depth exported",
        )
        stop.set()
        await asyncio.wait_for(watching, timeout=5)  # returns: no stall was seen
