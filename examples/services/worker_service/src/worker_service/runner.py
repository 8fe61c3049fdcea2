"""Run jobs periodically until told to stop; a stop never interrupts a job half-way."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from opentelemetry import trace
from prometheus_client import Counter, Histogram

from shared.lifecycle import pause

log = logging.getLogger(__name__)
RUNS = Counter("worker_job_runs", "Job runs by outcome", ["job", "outcome"])
DURATION = Histogram("worker_job_seconds", "Job run time", ["job"], buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 30))

TRACER = trace.get_tracer(__name__)

type Job = Callable[[], Awaitable[object]]


# --8<-- [start:loop]
async def run_periodically(name: str, job: Job, interval: float, stop: asyncio.Event) -> None:
    """Run ``job`` every ``interval`` seconds until ``stop`` is set.

    A stop waits for the run in progress to finish: the job is never cancelled in the
    middle of a write. A failed run is logged and counted, and the next one runs on time.
    """
    while not stop.is_set():
        # One trace per run: the run's calls to the data services are its children.
        with DURATION.labels(name).time(), TRACER.start_as_current_span(f"job {name}"):
            try:
                await job()
                RUNS.labels(name, "ok").inc()
            except Exception:
                RUNS.labels(name, "error").inc()
                log.exception("job %s failed; retrying in %.1f s", name, interval)
        await pause(stop, interval)
        # --8<-- [end:loop]
