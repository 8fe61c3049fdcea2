"""``shared.lifecycle`` and ``shared.serve``: background work is supervised, a crash stops the
service loudly, a stop lets work in hand finish."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from fastapi import FastAPI

from patterns.testing.spans import span_recorder
from reference_system.ports import free_port, port_is_open
from reference_system.waiting import eventually
from shared.lifecycle import Crashed, Lifecycle, Stopping, run_service
from shared.serve import serve
from shared.settings import ServiceSettings


async def test_a_job_that_raises_stops_the_service_and_fails_readiness(
    caplog: pytest.LogCaptureFixture,
) -> None:
    life = Lifecycle()

    async def relay(stop: asyncio.Event) -> None:
        raise ConnectionResetError("the broker went away")

    async with life.background(outbox_relay=relay):
        await asyncio.wait_for(life.stopping.wait(), 5)  # the crash asks the service to stop
    with pytest.raises(Crashed, match="ConnectionResetError: the broker went away"):
        await life.check()
    [record] = [r for r in caplog.records if r.name == "shared.lifecycle"]
    assert record.getMessage() == "outbox_relay failed; stopping the service"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ConnectionResetError)


async def test_a_job_that_returns_while_the_service_runs_is_a_crash() -> None:
    life = Lifecycle()

    async def gives_up(stop: asyncio.Event) -> None:
        return

    async with life.background(consumer=gives_up):
        await asyncio.wait_for(life.stopping.wait(), 5)
    assert isinstance(life.crash, RuntimeError)
    assert str(life.crash) == "consumer returned while the service was running"


async def test_leaving_the_block_lets_each_job_finish_its_step() -> None:
    life = Lifecycle()
    steps: list[str] = []
    in_step = asyncio.Event()

    async def job(stop: asyncio.Event) -> None:
        while not stop.is_set():
            steps.append("begun")
            in_step.set()
            await asyncio.sleep(0.05)  # a step's own work: a write that must not be cut
            steps.append("done")

    async with life.background(job=job):
        await in_step.wait()
    assert steps == ["begun", "done"]  # told to stop mid-step, not cancelled
    assert life.crash is None
    with pytest.raises(Stopping):  # not ready either: a stop drains the instance
        life.stop()
        await life.check()


@pytest.fixture
def observed_as_tests() -> Iterator[None]:
    """run_service observes the process as a service does. Keep this process's own: its tracer provider
    is set first (OpenTelemetry refuses a second), and pytest's log capture is put back afterwards."""
    span_recorder()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers, root.level = handlers, level


@pytest.mark.usefixtures("observed_as_tests")
def test_run_service_stops_on_sigterm_and_returns_after_main_has_drained() -> None:
    """In this process, as a deploy does it: SIGTERM, the service's main unwinds, no exit status 1."""
    steps: list[str] = []

    async def main(life: Lifecycle) -> None:
        steps.append("started")
        os.kill(os.getpid(), signal.SIGTERM)  # handled by run_service, not by the default action
        await life.stopping.wait()
        steps.append("drained")

    run_service("demo_service", ServiceSettings(port=1), main)
    assert steps == ["started", "drained"]


@pytest.mark.usefixtures("observed_as_tests")
def test_run_service_exits_1_when_main_fails() -> None:
    async def main(life: Lifecycle) -> None:
        raise ConnectionRefusedError("no broker")

    with pytest.raises(SystemExit) as exited:
        run_service("demo_service", ServiceSettings(port=1), main)
    assert exited.value.code == 1


def test_a_crashed_job_makes_the_process_exit_1_with_the_cause_logged() -> None:
    program = textwrap.dedent(
        """
        import asyncio
        from shared.lifecycle import Lifecycle, run_service
        from shared.settings import ServiceSettings

        async def relay(stop: asyncio.Event) -> None:
            raise ConnectionResetError("the broker went away")

        async def main(life: Lifecycle) -> None:
            async with life.background(outbox_relay=relay):
                await life.stopping.wait()

        run_service("demo_service", ServiceSettings(port=1), main)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1, result.stderr
    logged = [json.loads(line) for line in result.stdout.splitlines()]  # ECS JSON on stdout
    crash = next(entry for entry in logged if entry["log.level"] == "error")
    assert crash["message"] == "outbox_relay failed; stopping the service"
    assert crash["error"]["type"] == "ConnectionResetError"
    assert logged[-1]["message"] == "demo_service stopped"


async def test_serve_lets_a_request_in_flight_finish_then_stops() -> None:
    life, port, arrived, release = Lifecycle(), free_port(), asyncio.Event(), asyncio.Event()
    app = FastAPI()

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        arrived.set()
        await release.wait()
        return {"finished": "yes"}

    server = asyncio.create_task(serve(app, ServiceSettings(port=port), life))
    url = f"http://127.0.0.1:{port}"
    await eventually(lambda: port_is_open(url), "uvicorn listening", timeout=10, interval=0.02)
    async with aiohttp.ClientSession() as session:
        request = asyncio.create_task(session.get(f"{url}/slow"))
        await asyncio.wait_for(arrived.wait(), 5)
        life.stop()  # as SIGTERM does, while the request is in flight
        release.set()
        async with await request as response:
            assert (response.status, await response.json()) == (200, {"finished": "yes"})
    await asyncio.wait_for(server, 10)
    assert not port_is_open(url)
    assert life.crash is None


async def test_serve_reports_a_start_up_that_failed() -> None:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        raise ConnectionRefusedError("no database")
        yield

    life = Lifecycle()
    await asyncio.wait_for(serve(FastAPI(lifespan=lifespan), ServiceSettings(port=free_port()), life), 10)
    assert isinstance(life.crash, RuntimeError)
    assert life.stopping.is_set()
