"""Cache-aside for user reads, in Redis, without the stale-set race.

Read: try the cache; on a miss read through the data service and store what came back. Write:
update through the data service, then store the new version. Every store is **set-if-newer**
(a Lua script: Redis runs it atomically), so a reader that read version 1 before a writer
committed version 2 cannot put version 1 back after the writer stored version 2 — the race
that delete-on-write cache-aside has. A write whose outcome is unknown (it failed, or timed
out) leaves a **tombstone** newer than any version for longer than a read can take: the
readers in flight cannot store what they read, and the next read after it fetches afresh.

Keys carry a fingerprint of the ``User`` schema, so a deploy that changes the model reads and
writes keys of its own instead of failing on the old copies. Concurrent misses for one user in
one process share one read (single flight), and TTLs carry ±10 % jitter, so a hot key that
expires, or keys written together, do not send a stampede to the data service.

Redis is an optimisation here, never a dependency: if it is down, reads go straight to the
data service and the API stays up. After a failed read or fill, reads leave Redis alone for
``breaker_seconds`` (then try it again), so an outage costs one timeout and one warning per
window, not two of each per request; writes' stores and tombstones are always tried, since a
skipped one could leave an old version behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
from collections.abc import Callable
from functools import partial

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.clients.pg import PgDataClient
from shared.contracts.pg import User
from shared.observability.metrics import CACHE

log = logging.getLogger(__name__)

SCHEMA = hashlib.sha256(json.dumps(User.model_json_schema(), sort_keys=True).encode()).hexdigest()[:8]
TOMBSTONE = 2**62  # newer than any version; stored with an empty body


# --8<-- [start:set-if-newer]
# KEYS[1]: the key; ARGV: version, body, TTL in seconds. The value is "<version>|<body>".
SET_IF_NEWER = """
local cached = redis.call('GET', KEYS[1])
if cached and tonumber(string.match(cached, '^(%d+)|') or '-1') >= tonumber(ARGV[1]) then
    return 0
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'EX', ARGV[3])
return 1
"""
# --8<-- [end:set-if-newer]


# --8<-- [start:cache-aside]
class UserCache:
    def __init__(
        self,
        redis: Redis,
        pg: PgDataClient,
        prefix: str,
        ttl_seconds: int,
        tombstone_seconds: int = 10,
        breaker_seconds: float = 5.0,
    ) -> None:
        self.redis, self.pg, self.prefix, self.ttl = redis, pg, prefix, ttl_seconds
        self.tombstone_seconds = tombstone_seconds  # longer than a read through can take
        self.breaker_seconds = breaker_seconds  # how long reads leave Redis alone after it failed
        self._set_if_newer = redis.register_script(SET_IF_NEWER)
        self._flights: dict[int, asyncio.Future[User]] = {}
        self._skip_until = 0.0  # time.monotonic() until which reads do not try Redis

    def key(self, user_id: int) -> str:
        return f"{self.prefix}user:{SCHEMA}:{user_id}"

    def _redis_usable(self) -> bool:
        return time.monotonic() >= self._skip_until

    def _redis_failed(self, what: str, error: RedisError) -> None:
        """Count it; warn once, when the window opens; leave Redis alone for the window."""
        CACHE.labels("user", "error").inc()
        if self._redis_usable():
            log.warning("cache %s failed; reads skip Redis for %g s: %s", what, self.breaker_seconds, error)
        self._skip_until = time.monotonic() + self.breaker_seconds

    async def get(self, user_id: int) -> User:
        cached = None
        if self._redis_usable():
            try:
                cached = await self.redis.get(self.key(user_id))
            except RedisError as error:
                self._redis_failed("read", error)
        if body := body_of(cached):  # a tombstone has none: a miss
            try:
                user = User.model_validate_json(body)
                CACHE.labels("user", "hit").inc()
                return user
            except ValidationError:  # damaged, or written by another model under the same key: a miss
                log.warning("cached user %d does not parse; reading through", user_id)
        CACHE.labels("user", "miss").inc()
        return await self._read_through(user_id)

    async def _read_through(self, user_id: int) -> User:
        """One read of the data service per user at a time; concurrent misses wait for it."""
        if (flight := self._flights.get(user_id)) is None:
            flight = asyncio.ensure_future(self._fetch(user_id))
            self._flights[user_id] = flight
            flight.add_done_callback(lambda _: self._flights.pop(user_id, None))
        return await asyncio.shield(flight)

    async def _fetch(self, user_id: int) -> User:
        user = await self.pg.get_user(user_id)
        if self._redis_usable():  # a fill is only an optimisation: skipped while Redis is failing
            await self.store(user, on_failure=partial(self._redis_failed, "fill"))
        return user

    async def store(self, user: User, on_failure: Callable[[RedisError], None] | None = None) -> None:
        """Cache ``user`` unless the cache holds the same or a newer version (or a tombstone)."""
        ttl = round(self.ttl * random.uniform(0.9, 1.1))  # noqa: S311 - jitter, not crypto
        try:
            await self._set_if_newer(
                keys=[self.key(user.id)], args=[user.version, user.model_dump_json(), ttl]
            )
        except RedisError as error:
            if on_failure is None:
                log.warning("cache write failed: %s", error)
            else:
                on_failure(error)

    async def forget(self, user_id: int) -> None:
        """After a write whose outcome is unknown: no copy for ``tombstone_seconds``, whoever read what."""
        try:
            await self.redis.set(self.key(user_id), f"{TOMBSTONE}|", ex=self.tombstone_seconds)
        except RedisError as error:
            # The TTL bounds how long a stale copy can live if this fails.
            log.warning("cache invalidation failed: %s", error)
            # --8<-- [end:cache-aside]


def body_of(cached: bytes | str | None) -> str:
    """The JSON of a cached ``<version>|<json>``; empty for a tombstone, or when nothing is cached."""
    text = cached.decode() if isinstance(cached, bytes) else cached or ""
    return text.partition("|")[2]
