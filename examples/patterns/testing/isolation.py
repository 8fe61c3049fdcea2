"""Give every test its own corner of a shared server, and clean it up afterwards.

One server per test session is cheap; one *namespace* per test keeps tests
independent: a fresh PostgreSQL database, a Redis key prefix, a RabbitMQ virtual
host, a MongoDB database. Each helper is an async context manager that removes
what it made, even when the test fails.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote, urlsplit

import asyncpg
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from patterns.testing.service_resolution import Unavailable
from patterns.testing.urls import unique_name, with_path


# --8<-- [start:postgres]
@asynccontextmanager
async def postgres_database(server_url: str) -> AsyncIterator[str]:
    """Create an empty database for one test; yield its URL; drop it afterwards."""
    name = unique_name("test_")
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield with_path(server_url, name)
        finally:
            # FORCE ends connections a failed test left open (PostgreSQL 13+).
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
        # --8<-- [end:postgres]


# --8<-- [start:redis]
@asynccontextmanager
async def redis_namespace(url: str) -> AsyncIterator[str]:
    """Yield a key prefix for one test; delete every key under it afterwards."""
    prefix = unique_name("test:") + ":"
    try:
        yield prefix
    finally:
        client = Redis.from_url(url)
        try:
            keys = [key async for key in client.scan_iter(match=prefix + "*", count=500)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()
            # --8<-- [end:redis]


# --8<-- [start:rabbitmq]
@asynccontextmanager
async def rabbitmq_vhost(url: str) -> AsyncIterator[str]:
    """Create a virtual host for one test; yield the AMQP URL for it; delete it afterwards."""
    vhost = unique_name("test-")
    admin = _VhostAdmin(url)
    await admin.create(vhost)
    try:
        yield with_path(url, quote(vhost, safe=""))
    finally:
        await admin.delete(vhost)
        # --8<-- [end:rabbitmq]


class _VhostAdmin:
    """Creates and deletes vhosts through the management API, or ``rabbitmqctl`` on this host."""

    def __init__(self, amqp_url: str) -> None:
        parts = urlsplit(amqp_url)
        self.user = parts.username or "guest"
        self.password = parts.password or "guest"
        self.api = os.environ.get("RABBITMQ_MANAGEMENT_URL", f"http://{parts.hostname}:15672")
        if urlsplit(self.api).scheme not in {"http", "https"}:
            raise Unavailable(f"rabbitmq: RABBITMQ_MANAGEMENT_URL must be http(s), not {self.api!r}")
        self.local = parts.hostname in {"127.0.0.1", "localhost", "::1"}

    async def create(self, vhost: str) -> None:
        if await asyncio.to_thread(self._api, "PUT", vhost):
            return
        if self.local and shutil.which("rabbitmqctl"):
            await self._ctl("add_vhost", vhost)
            await self._ctl("set_permissions", "-p", vhost, self.user, ".*", ".*", ".*")
            return
        raise Unavailable(
            f"rabbitmq: cannot create a vhost: no management API at {self.api} and no local rabbitmqctl"
        )

    async def delete(self, vhost: str) -> None:
        if not await asyncio.to_thread(self._api, "DELETE", vhost):
            await self._ctl("delete_vhost", vhost)

    def _api(self, method: str, vhost: str) -> bool:
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request = urllib.request.Request(  # noqa: S310 (scheme checked in __init__)
            f"{self.api}/api/vhosts/{quote(vhost, safe='')}",
            method=method,
            data=json.dumps({}).encode() if method == "PUT" else None,
            headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5):  # noqa: S310 (scheme checked in __init__)
                return True
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            return False

    async def _ctl(self, *args: str) -> None:
        process = await asyncio.create_subprocess_exec(
            "rabbitmqctl", "--quiet", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
        if process.returncode != 0:
            raise Unavailable(f"rabbitmq: rabbitmqctl {' '.join(args)} failed: {output.decode().strip()}")


# --8<-- [start:mongodb]
@asynccontextmanager
async def mongo_database(url: str) -> AsyncIterator[str]:
    """Yield a database name for one test; drop the database afterwards."""
    name = unique_name("test_")
    try:
        yield name
    finally:
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url)
        try:
            await client.drop_database(name)
        finally:
            await client.close()
            # --8<-- [end:mongodb]
