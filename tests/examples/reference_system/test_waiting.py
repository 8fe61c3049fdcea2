"""Waiting for a condition: it returns what the check found, gives up in bounded time, saying what it
waited for, and stops at once when waiting has become pointless."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest

from reference_system.ports import free_port, wait_for_port
from reference_system.waiting import Aborted, eventually, eventually_blocking


async def test_it_returns_what_the_check_found_once_it_holds() -> None:
    answers: list[str | None] = [None, "", "ready"]
    assert await eventually(lambda: answers.pop(0), "the answer", interval=0) == "ready"


async def test_an_async_check_is_awaited() -> None:
    calls = itertools.count(1)

    async def third_time() -> bool:
        return next(calls) >= 3

    assert await eventually(third_time, "the third call", interval=0) is True


async def test_it_gives_up_after_the_timeout_naming_what_it_waited_for() -> None:
    with pytest.raises(TimeoutError, match=r"the impossible: not within 0\.05 s"):
        await eventually(lambda: False, "the impossible", timeout=0.05, interval=0.01)


async def test_a_reason_to_stop_ends_the_wait_at_once() -> None:
    with pytest.raises(Aborted, match="the server: it exited"):
        await eventually(lambda: False, "the server", timeout=60, abort=lambda: "it exited")


def test_the_blocking_twin_behaves_the_same() -> None:
    answers = iter([0, 0, 7])
    assert eventually_blocking(lambda: next(answers), "a number", interval=0) == 7
    with pytest.raises(TimeoutError, match=r"nothing: not within 0\.05 s"):
        eventually_blocking(lambda: None, "nothing", timeout=0.05, interval=0.01)


def test_a_server_that_dies_before_listening_fails_fast() -> None:
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(Aborted, match="exited with 3"):
        wait_for_port(f"mongodb://127.0.0.1:{free_port()}/", process, timeout=30)


def test_a_server_that_never_listens_times_out() -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(TimeoutError, match=r"listening at mongodb://127\.0\.0\.1"):
            wait_for_port(f"mongodb://127.0.0.1:{free_port()}/", process, timeout=0.5)
    finally:
        process.kill()
        process.wait()
