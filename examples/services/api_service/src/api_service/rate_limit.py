"""Per-caller rate limits at the API: a sliding window counted in Redis, a 429 when it is spent.

``limits`` (its asyncio API, on redis-py) keeps the counts: a sliding window counter, two keys
per caller and limit, updated atomically by a Lua script, so every replica of the API shares
them. Sign-up is limited per client address (no user exists yet), a link code per end user.
When Redis does not answer the limit is not enforced (a warning, once per outage): a cache
outage must not take the API's sign-up down with it.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Annotated

from fastapi import Depends, Request
from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError

from api_service.auth import CurrentUser
from shared.problems import ProblemError

log = logging.getLogger(__name__)


# --8<-- [start:limiter]
class RateLimits:
    """``spend`` one request of a limit for a caller: raises a 429 problem once the window is full."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        storage = RedisStorage(
            f"async+{redis_url}",
            implementation="redispy",
            key_prefix=f"{prefix}rate",
            wrap_exceptions=True,  # every Redis failure as one StorageError
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
        )
        self.limiter = SlidingWindowCounterRateLimiter(storage)
        self.failing = False

    async def spend(self, limit: str, name: str, caller: str) -> None:
        """Spend one request of every limit in ``limit`` ("5/minute", or "100/hour;5/minute")."""
        try:
            for item in parse_many(limit):  # validated in the settings
                if not await self.limiter.hit(item, name, caller):
                    retry_after = await self.retry_after(item, name, caller)
                    break
            else:
                self.failing = False
                return
        except StorageError as error:  # Redis is down or slow: serve, and say so once
            if not self.failing:
                log.warning("rate limits not enforced, Redis failed: %s", error)
            self.failing = True
            return
        raise ProblemError(
            429, f"too many requests: {limit} for {name}", headers={"Retry-After": str(retry_after)}
        )

    async def retry_after(self, item: RateLimitItem, name: str, caller: str) -> int:
        stats = await self.limiter.get_window_stats(item, name, caller)
        return max(1, math.ceil(stats.reset_time - time.time()))
        # --8<-- [end:limiter]


# --8<-- [start:dependencies]
async def sign_up_limit(request: Request) -> None:
    """Sign-ups per client address. Behind a proxy, make uvicorn trust it (``--forwarded-allow-ips``),
    or every caller shares the proxy's address and one limit."""
    address = request.client.host if request.client else "unknown"
    await request.app.state.rate_limits.spend(request.app.state.settings.sign_up_rate, "sign-up", address)


async def link_code_limit(request: Request, user: CurrentUser) -> None:
    """Link codes per end user: each is a code someone could try to guess."""
    await request.app.state.rate_limits.spend(request.app.state.settings.link_code_rate, "link", str(user))


type SignUpLimit = Annotated[None, Depends(sign_up_limit)]
type LinkCodeLimit = Annotated[None, Depends(link_code_limit)]
# --8<-- [end:dependencies]
