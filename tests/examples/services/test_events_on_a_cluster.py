"""Quorum queues on a three-node cluster: the node that leads the queue dies mid-stream, and no
confirmed event is lost or handled twice.

1,000 events go through ``EventPublisher`` (confirms) to ``EventConsumer`` (manual acks,
de-duplication by event id in Redis), both connected through a TCP proxy that hands each
connection to the first node that accepts it, as a load balancer in front of a cluster does.
The consumer starts once 400 events wait; when it has handled 100, the node that leads its
queue, and holds both clients' connections, is killed with SIGKILL. The survivors elect a new
leader, the clients reconnect through the proxy to a survivor, and the publisher sends again
what was not confirmed. Every confirmed event must be handled while the dead node is still down
(a queue whose only member was on it could not do that), and none twice. Then the node boots
again and rejoins the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from patterns.testing.pytest_fixtures import RedisTarget, skip_or_fail
from patterns.testing.rabbitmq_cluster import rabbitmq_cluster
from patterns.testing.rabbitmq_node import RabbitNode
from patterns.testing.service_resolution import Unavailable
from patterns.testing.tcp_proxy import tcp_proxy
from reference_system.waiting import eventually
from shared.events.consumer import EventConsumer
from shared.events.envelope import Envelope, Event, OrderPlaced, new_event
from shared.events.publisher import EventPublisher, NotPublished

QUEUE = "worker.order-placed"
EVENTS = 1_000


@pytest.fixture
def cluster() -> Iterator[list[RabbitNode]]:
    with contextlib.ExitStack() as stack:
        try:
            nodes = stack.enter_context(rabbitmq_cluster(3))
        except Unavailable as error:
            skip_or_fail(str(error))
        yield nodes


@pytest.fixture
async def redis(redis_target: RedisTarget) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_target.url)
    yield client
    await client.aclose()


def queue_status(node: RabbitNode, queue: str = QUEUE) -> dict[str, Any]:
    """The queue as ``rabbitmqctl list_queues`` on ``node`` sees it: type, leader, members, ..."""
    columns = ["name", "type", "leader", "members", "online", "messages"]
    rows = json.loads(node.ctl("list_queues", "--quiet", *columns, "--formatter", "json"))
    return next(row for row in rows if row["name"] == queue)


def duplicates_dropped() -> float:
    labels = {"consumer": QUEUE, "outcome": "duplicate"}
    return REGISTRY.get_sample_value("events_consumed_total", labels) or 0


class Stream:
    """What the outside world saw: the confirms the publisher got, the events the handler ran."""

    def __init__(self) -> None:
        self.confirmed: dict[uuid.UUID, float] = {}
        self.refused = 0
        self.handled: list[uuid.UUID] = []
        self.handled_at: dict[uuid.UUID, float] = {}

    async def handle(self, event: Envelope, data: Event) -> None:
        self.handled.append(event.id)
        self.handled_at.setdefault(event.id, time.monotonic())

    async def publish(self, publisher: EventPublisher, count: int) -> None:
        """Publish ``count`` events one at a time, each sent again until the broker confirms it."""
        for n in range(count):
            event = new_event(OrderPlaced(order_id=n, user_id=1, total=Decimal("1.00")))

            async def confirmed(event: Envelope = event) -> bool:
                try:
                    await publisher.publish(event)
                except NotPublished:
                    self.refused += 1
                    return False
                self.confirmed[event.id] = time.monotonic()
                return True

            await eventually(confirmed, f"event {n} confirmed", timeout=30, interval=0.05)

    def unhandled(self) -> set[uuid.UUID]:
        return self.confirmed.keys() - self.handled_at.keys()


def longest_pause(moments: Iterable[float]) -> float:
    ordered = sorted(moments)
    return max(later - earlier for earlier, later in itertools.pairwise(ordered))


async def test_killing_the_node_that_leads_the_queue_loses_no_confirmed_event_and_repeats_none(
    cluster: list[RabbitNode], redis: Redis, redis_target: RedisTarget
) -> None:
    stream = Stream()
    duplicates_before = duplicates_dropped()
    async with tcp_proxy(*(("127.0.0.1", node.port) for node in cluster)) as proxy:
        url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/?reconnect_interval=1"
        consumer = EventConsumer(
            url, QUEUE, ["order.placed"], stream.handle, redis, remember_prefix=redis_target.prefix
        )
        async with EventPublisher(url, timeout=2.0) as publisher:
            # Given: the queue has a member on every node, led by the node the clients are on.
            declared = await asyncio.to_thread(queue_status, cluster[0])
            assert declared["type"] == "quorum"
            assert sorted(declared["members"]) == sorted(node.name for node in cluster)
            [leader] = [node for node in cluster if node.name == declared["leader"]]
            survivors = [node for node in cluster if node is not leader]
            # ... and a backlog: the consumer starts once 400 events wait.
            publishing = asyncio.create_task(stream.publish(publisher, EVENTS))
            await eventually(lambda: len(stream.confirmed) >= 400, "400 events confirmed", timeout=60)
            async with consumer:
                assert set(proxy.routed) == {("127.0.0.1", leader.port)}

                # When: the leader dies mid-stream.
                await eventually(lambda: len(stream.handled) >= 100, "100 events handled", timeout=60)
                waiting, connections = stream.unhandled(), len(proxy.routed)
                await asyncio.to_thread(leader.kill)

                # Then: the survivors deliver what waited at the kill, and the stream goes on through
                # them, the dead node still down.
                await eventually(
                    lambda: waiting <= stream.handled_at.keys(),
                    f"the {len(waiting)} events waiting at the kill handled",
                    timeout=30,
                )
                await publishing
                await eventually(lambda: not stream.unhandled(), "every confirmed event handled", timeout=30)
                to_survivors = [target for target in proxy.routed[connections:] if target[1] != leader.port]
                assert len(to_survivors) >= 2, "publisher and consumer reconnected to surviving nodes"

                # And the dead node, booted again, rejoins the queue, which has drained.
                await asyncio.to_thread(leader.start)

                async def rejoined() -> bool:
                    status = await asyncio.to_thread(queue_status, survivors[0])
                    return sorted(status["online"]) == sorted(status["members"]) and status["messages"] == 0

                await eventually(rejoined, f"{leader.name} back in {QUEUE}, the queue drained", timeout=60)

    assert len(stream.handled) == len(set(stream.handled)), "an event handled twice"
    assert len(stream.confirmed) == EVENTS
    print(
        f"\nleader killed with {len(waiting)} confirmed events not yet handled; "
        f"no publish confirmed for {longest_pause(stream.confirmed.values()):.1f} s, "
        f"no event handled for {longest_pause(stream.handled_at.values()):.1f} s; "
        f"{stream.refused} publishes refused and sent again, "
        f"{duplicates_dropped() - duplicates_before:.0f} redelivered copies dropped as duplicates; "
        f"{len(stream.handled)} events handled, each once"
    )
