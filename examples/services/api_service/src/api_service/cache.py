"""Cache-aside for user reads, in Redis.

Read: try the cache; on a miss read through the data service and store the result
with a TTL. Write: update through the data service, then delete the cached copy (the
next read refills it). The TTL carries ±10 % jitter so keys written together do not
expire together and stampede the data service.

Redis is an optimisation here, never a dependency: if it is down, reads go straight to
the data service and the API stays up.
"""

from __future__ import annotations

import logging
import random

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.clients.pg import PgDataClient
from shared.contracts.pg import User
from shared.observability.metrics import CACHE

log = logging.getLogger(__name__)


# --8<-- [start:cache-aside]
class UserCache:
    def __init__(self, redis: Redis, pg: PgDataClient, prefix: str, ttl_seconds: int) -> None:
        self.redis, self.pg, self.prefix, self.ttl = redis, pg, prefix, ttl_seconds

    def key(self, user_id: int) -> str:
        return f"{self.prefix}user:{user_id}"

    async def get(self, user_id: int) -> User:
        try:
            if cached := await self.redis.get(self.key(user_id)):
                CACHE.labels("user", "hit").inc()
                return User.model_validate_json(cached)
            CACHE.labels("user", "miss").inc()
        except RedisError as error:
            CACHE.labels("user", "error").inc()
            log.warning("cache read failed, reading through: %s", error)
        user = await self.pg.get_user(user_id)
        try:
            ttl = round(self.ttl * random.uniform(0.9, 1.1))  # noqa: S311 - jitter, not crypto
            await self.redis.set(self.key(user_id), user.model_dump_json(), ex=ttl)
        except RedisError as error:
            log.warning("cache write failed: %s", error)
        return user

    async def forget(self, user_id: int) -> None:
        """Call after every write: the next read fetches the new version."""
        try:
            await self.redis.delete(self.key(user_id))
        except RedisError as error:
            # The TTL bounds how long a stale copy can live if this fails.
            log.warning("cache invalidation failed: %s", error)
            # --8<-- [end:cache-aside]
