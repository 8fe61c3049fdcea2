"""Wait for a condition, not for a while: poll until it holds, within a bounded time.

Every wait of the system and of its tests goes through :func:`eventually` (or its twin for
code that cannot await), so each gives up after a bounded time saying what it waited for,
and stops at once when waiting has become pointless (``abort``: a process died).

```py
import asyncio

from reference_system.waiting import eventually

polls = iter([None, None, "ready"])
print(asyncio.run(eventually(lambda: next(polls), "the answer", interval=0)))
#> ready
```
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, overload


class Aborted(RuntimeError):
    """Waiting stopped before the time was up: the condition can no longer come true."""


@overload
async def eventually[T](
    check: Callable[[], Awaitable[T | None]],
    what: str,
    *,
    timeout: float = ...,
    interval: float = ...,
    abort: Callable[[], str | None] | None = ...,
) -> T: ...
@overload
async def eventually[T](
    check: Callable[[], T | None],
    what: str,
    *,
    timeout: float = ...,
    interval: float = ...,
    abort: Callable[[], str | None] | None = ...,
) -> T: ...


# --8<-- [start:eventually]
async def eventually(
    check: Callable[[], Any],
    what: str,
    *,
    timeout: float = 30.0,
    interval: float = 0.1,
    abort: Callable[[], str | None] | None = None,
) -> Any:
    """Call ``check`` (plain or async) until it returns something truthy, and return that.

    Raise :class:`TimeoutError` naming ``what`` after ``timeout`` seconds, or :class:`Aborted`
    as soon as ``abort`` returns a reason to stop.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        _give_up_if(what, timeout, deadline, abort)
        await asyncio.sleep(interval)
        # --8<-- [end:eventually]


def eventually_blocking[T](
    check: Callable[[], T | None],
    what: str,
    *,
    timeout: float = 30.0,
    interval: float = 0.1,
    abort: Callable[[], str | None] | None = None,
) -> T:
    """:func:`eventually` for code that cannot await (a thread, a synchronous fixture)."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        _give_up_if(what, timeout, deadline, abort)
        time.sleep(interval)
    return result


def _give_up_if(what: str, timeout: float, deadline: float, abort: Callable[[], str | None] | None) -> None:
    if abort is not None and (reason := abort()):
        raise Aborted(f"{what}: {reason}")
    if time.monotonic() >= deadline:
        raise TimeoutError(f"{what}: not within {timeout:g} s")
