"""Three RabbitMQ nodes clustered on this machine: where quorum queues really replicate.

On one node a quorum queue has one member, and losing that node loses the queue. Here every
queue gets a member on each of three nodes, and a test can kill the one that leads it.

A node's boot is about 4.5 s of CPU (an Erlang VM loading RabbitMQ), so the three boot at
once: about 12 s on 2 cores. The second and third join the first while they boot, through
peer discovery from their config file, rather than with ``rabbitmqctl stop_app``,
``join_cluster``, ``start_app`` afterwards (three more VMs and a restart each, about 5 s).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

from patterns.testing.rabbitmq_node import RabbitNode, node_name, rabbitmq_node


# --8<-- [start:cluster]
def joining(seed: str) -> str:
    """rabbitmq.conf lines that make a booting node join ``seed``, waiting up to 60 s for it to be up."""
    return (
        "cluster_formation.peer_discovery_backend = classic_config\n"
        f"cluster_formation.classic_config.nodes.1 = {seed}\n"
        "cluster_formation.discovery_retry_limit = 240\n"
        "cluster_formation.discovery_retry_interval = 250\n"
    )


@contextmanager
def rabbitmq_cluster(size: int = 3) -> Iterator[list[RabbitNode]]:
    """Start ``size`` nodes at once, clustered; yield them (the first is the seed); end them all."""
    seed, *others = (node_name() for _ in range(size))
    starting = [rabbitmq_node(seed), *(rabbitmq_node(name, joining(seed)) for name in others)]
    # Leaving the pool waits for every boot, so a node that started while another failed is ended too.
    with ExitStack() as stack, ThreadPoolExecutor(size) as pool:
        nodes = list(pool.map(stack.enter_context, starting))
        status = json.loads(nodes[0].ctl("cluster_status", "--formatter", "json"))
        if sorted(status["running_nodes"]) != sorted(node.name for node in nodes):
            raise RuntimeError(f"rabbitmq: the nodes did not form one cluster: {status['running_nodes']}")
        yield nodes
        # --8<-- [end:cluster]
