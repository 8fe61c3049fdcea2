"""One life for every service, HTTP or not: start, run, stop on SIGTERM, and fail loudly.

A service's ``main`` opens its resources in order (an ``AsyncExitStack`` or nested ``async
with``), runs its background work under :meth:`Lifecycle.background`, and waits for
``life.stopping``. :func:`run_service` sets ``stopping`` on SIGTERM or SIGINT, so the block
unwinds: resources close in reverse order, also when start-up failed half-way. A background
job that raises stops the service on purpose: readiness fails at once, the cause is logged
with its traceback, and the process exits 1, so the orchestrator restarts it instead of
leaving a relay that died silently behind a healthy-looking port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from shared.observability.setup import observe_process
from shared.settings import ServiceSettings

if sys.platform != "win32":  # uvloop has no Windows build: there the standard loop runs
    from uvloop import new_event_loop
else:
    from asyncio import new_event_loop

log = logging.getLogger(__name__)

# A job runs until the event is set, then finishes the step it is in and returns.
type Job = Callable[[asyncio.Event], Awaitable[None]]
type Main = Callable[[Lifecycle], Awaitable[None]]


# --8<-- [start:pause]
async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds`` between a job's steps, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
        # --8<-- [end:pause]


class Stopping(Exception):
    """The service is shutting down: no new work, please."""


class Crashed(Exception):
    """Background work failed and the service is stopping because of it."""


# --8<-- [start:lifecycle]
class Lifecycle:
    """A running service's stop signal and the first failure of its background work."""

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self.crash: BaseException | None = None

    def stop(self) -> None:
        self.stopping.set()

    def fail(self, what: str, error: BaseException) -> None:
        """Log ``error`` with its traceback, remember the first one, and stop the service."""
        log.error("%s failed; stopping the service", what, exc_info=error)
        if self.crash is None:
            self.crash = error
        self.stop()

    async def check(self) -> None:
        """A readiness check: fails once background work crashed or the service is stopping."""
        if self.crash is not None:
            raise Crashed(f"{type(self.crash).__name__}: {self.crash}")
        if self.stopping.is_set():
            raise Stopping

    @asynccontextmanager
    async def background(self, **jobs: Job) -> AsyncIterator[None]:
        """Run every job while the block runs; on exit, tell them to stop and wait for them.

        A job is never cancelled half-way through a step, and none outlives the block (they
        run in an ``asyncio.TaskGroup``). A job that raises, or returns before it was told to,
        fails the service (:meth:`fail`).
        """
        done = asyncio.Event()

        async def supervised(name: str, job: Job) -> None:
            try:
                await job(done)
            except Exception as error:
                self.fail(name, error)
                return
            if not done.is_set():
                self.fail(name, RuntimeError(f"{name} returned while the service was running"))

        async with asyncio.TaskGroup() as group:
            for name, job in jobs.items():
                group.create_task(supervised(name, job), name=name)
            try:
                yield
            finally:
                done.set()
                # --8<-- [end:lifecycle]


# --8<-- [start:run-service]
def run_service(name: str, settings: ServiceSettings, main: Main) -> None:
    """Observe the process, run ``main`` until SIGTERM or SIGINT, flush telemetry, exit.

    Exits 0 after a requested stop, 1 when start-up or background work failed (the cause is
    in the log). The same path for HTTP services (``main`` runs uvicorn) and for the others.
    """
    provider = observe_process(name, settings)  # first: clients are instrumented as they are made
    life = Lifecycle()
    try:
        # libuv's loop: with httptools (shared.serve) a quarter more requests per second and
        # 0.2 ms less per read in the data service (benchmarks/hop.py, the architecture guide)
        asyncio.run(_until_stopped(name, main, life), loop_factory=new_event_loop)
    finally:
        provider.shutdown()  # export the spans still batched, on every way out
    if life.crash is not None:
        raise SystemExit(1)


async def _until_stopped(name: str, main: Main, life: Lifecycle) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, life.stop)
    try:
        await main(life)
    except Exception as error:
        life.fail(name, error)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    log.info("%s stopped", name)
    # --8<-- [end:run-service]
