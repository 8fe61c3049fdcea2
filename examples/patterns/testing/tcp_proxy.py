"""A TCP proxy on loopback that a test can cut, stall and restore: "the broker is down" or "the
network hangs" without touching the server.

Stopping the real RabbitMQ would break every other test and take seconds to restart.
Cutting the proxy closes every connection through it and refuses new ones, which is
exactly what a client sees when its broker goes away.

Given several targets, it is the load balancer in front of a cluster: each connection goes
to the first target that accepts it, so a client that reconnects reaches a surviving node.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from reference_system.ports import free_port


# --8<-- [start:proxy]
class TcpProxy:
    def __init__(self, *targets: tuple[str, int]) -> None:
        self.targets = targets
        self.port = free_port()
        self.routed: list[tuple[str, int]] = []  # the target of every connection, in order
        self._server: asyncio.Server | None = None
        self._streams: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    async def start(self) -> None:
        """Accept connections again (on the same port)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def cut(self) -> None:
        """Refuse new connections and drop every open one, like a broker that died."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._streams):
            writer.transport.abort()
        self._streams.clear()

    def stall(self) -> None:
        """Keep every connection open and pass no byte either way, like a network that hangs."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        for target in self.targets:
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(*target)
                break
            except OSError:
                continue
        else:
            client_writer.transport.abort()
            return
        self.routed.append(target)
        self._streams |= {client_writer, upstream_writer}
        await asyncio.gather(
            _pipe(client_reader, upstream_writer, self._flowing),
            _pipe(upstream_reader, client_writer, self._flowing),
            return_exceptions=True,
        )
        self._streams -= {client_writer, upstream_writer}
        # --8<-- [end:proxy]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flowing: asyncio.Event) -> None:
    try:
        while chunk := await reader.read(65536):
            await flowing.wait()
            writer.write(chunk)
            await writer.drain()
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@asynccontextmanager
async def tcp_proxy(*targets: tuple[str, int]) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(*targets)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.cut()
