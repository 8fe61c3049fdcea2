"""``shared.serve``: a SIGTERM stops uvicorn gracefully, and the spans still batched are exported."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from reference_system.ports import free_port
from shared.serve import serve
from shared.settings import ServiceSettings


async def answered_then_terminated(url: str) -> None:
    """Wait for the server, get one answer, then send this process SIGTERM, as a deploy does."""
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(url) as response:
                    assert response.status == 200
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
    os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_exits_143_and_flushes_the_batched_spans() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    # A batch that would wait a minute: only the flush at exit can deliver the span in time.
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    port = free_port()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = asyncio.create_task(answered_then_terminated(f"http://127.0.0.1:{port}/hello"))
        yield
        await client

    app = FastAPI(lifespan=lifespan)
    app.add_api_route("/hello", lambda: {"hello": "world"})
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, exclude_spans=["receive", "send"])
    previous = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as exited:
            serve(app, ServiceSettings(port=port), provider)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert exited.value.code == 128 + signal.SIGTERM  # what a container runtime expects to see
    assert [span.name for span in exporter.get_finished_spans()] == ["GET /hello"]
