"""Waiting for Prometheus: every not-ready answer of a starting server means "not yet"."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from reference_system.prometheus import wait_for_targets

type Answer = tuple[int, str | dict[str, object]]
NOT_STARTED: Answer = (503, "Service Unavailable")  # plain text: what once failed the suite


def targets(*health: str) -> Answer:
    return 200, {"status": "success", "data": {"activeTargets": [{"health": state} for state in health]}}


@asynccontextmanager
async def prometheus_answering(*answers: Answer) -> AsyncIterator[str]:
    """A stand-in that gives ``answers`` in turn, then the last one for ever; yields its URL."""
    given = itertools.chain(answers, itertools.repeat(answers[-1]))

    async def answer(request: web.Request) -> web.Response:
        status, body = next(given)
        if isinstance(body, str):
            return web.Response(status=status, text=body)
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_get("/api/v1/targets", answer)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_a_starting_prometheus_is_waited_for_through_every_kind_of_not_ready() -> None:
    no_targets_yet: Answer = (200, {"status": "success", "data": {}})
    async with prometheus_answering(
        NOT_STARTED, no_targets_yet, targets("unknown", "unknown"), targets("up", "down"), targets("up", "up")
    ) as url:
        await wait_for_targets(url, count=2, timeout=10)


async def test_a_target_that_never_comes_up_ends_the_wait_with_what_was_seen() -> None:
    async with prometheus_answering(targets("up", "down")) as url:
        with pytest.raises(TimeoutError, match=r"seeing 2 targets up: not within 1 s; it saw \[.*'down'"):
            await wait_for_targets(url, count=2, timeout=1)
