"""Dependency checks behind every ``/health/ready``, whichever server answers it.

A check is any coroutine function that raises when its dependency is not usable. The
FastAPI services (:mod:`shared.health`) and the services without an HTTP API of their
own (:mod:`shared.ops_server`) run them the same way, so this module needs neither.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

log = logging.getLogger(__name__)

type Check = Callable[[], Awaitable[object]]


async def failed_checks(checks: Mapping[str, Check], timeout: float) -> dict[str, str]:
    """Run every check concurrently, each with ``timeout``; name the ones that failed: ``timeout``
    or ``failed``. What failed and why goes to the log, not to whoever asks: readiness answers
    anyone who can reach the port, and an exception's class and message tell an attacker what runs
    behind it."""
    results = await asyncio.gather(
        *(asyncio.wait_for(check(), timeout) for check in checks.values()), return_exceptions=True
    )
    failed = {}
    for name, result in zip(checks, results, strict=True):
        if isinstance(result, BaseException):
            log.warning("readiness check %r failed: %s: %s", name, type(result).__name__, result)
            failed[name] = "timeout" if isinstance(result, TimeoutError) else "failed"
    return failed
