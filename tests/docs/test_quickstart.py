"""The quickstart, as a reader runs it: every command on the page, exactly as written.

The first section runs in a "terminal" of its own (a process the test keeps reading); the others in
one bash session, as a second terminal would, so the variables one command sets reach the next.
The reader's defaults (ports 8000-8002, 9101-9103, the local servers' default names) are moved to
free ports and scratch namespaces through the variables the page's commands read, so the test
never meets another test's data; nothing in a command is changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

import pytest

from docs_tooling.snippet_guard import read_section, sections_in
from patterns.testing.isolation import mongo_database, postgres_database, rabbitmq_vhost, redis_namespace
from patterns.testing.service_resolution import Found
from reference_system.ports import free_port
from reference_system.processes import PORT_VARIABLES, server_address
from reference_system.waiting import eventually
from tests.site_builds import ROOT, run_script

QUICKSTART = ROOT / "examples" / "commands" / "quickstart.sh"
SECOND_TERMINAL = ["shell", "sign-up", "link", "order", "messages"]


def section(name: str) -> str:
    return read_section(QUICKSTART, name).strip()


def test_the_page_runs_every_section_in_this_order() -> None:
    assert list(sections_in(QUICKSTART)) == ["start", *SECOND_TERMINAL]
    page = (ROOT / "docs" / "guides" / "quickstart.md").read_text()
    shown = re.findall(r'--8<-- "examples/commands/quickstart\.sh:([\w-]+)"', page)
    assert shown == ["start", *SECOND_TERMINAL]


@asynccontextmanager
async def first_terminal(env: dict[str, str]) -> AsyncIterator[deque[str]]:
    """The start section until the system says it is up; Ctrl-C on the way out, which must stop it."""
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        section("start"),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    assert process.stdout is not None
    printed: deque[str] = deque(maxlen=400)
    ready = asyncio.Event()

    async def read() -> None:
        assert process.stdout is not None
        while line := (await process.stdout.readline()).decode(errors="replace"):
            printed.append(line)
            if line.startswith("API: http://127.0.0.1:"):
                ready.set()

    reader = asyncio.create_task(read())
    try:
        await eventually(
            ready.is_set,
            "the quickstart's system up",
            timeout=120,
            abort=lambda: f"it exited:\n{''.join(printed)}" if reader.done() else None,
        )
        yield printed
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGINT)
        status = await asyncio.wait_for(process.wait(), 60)
        await reader
    assert status == 0, f"Ctrl-C ended the system with {status}:\n{''.join(printed)}"


def run_sections(env: Mapping[str, str], *sections: str) -> subprocess.CompletedProcess[str]:
    """These sections, in order, in one bash session, as a reader types them into a terminal."""
    return run_script("\n".join(section(name) for name in sections), ROOT, timeout=120, env=env)


async def second_terminal(env: dict[str, str], *sections: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_sections, env, *sections)


async def test_from_a_clone_to_a_placed_order_and_the_bots_message(
    postgres_server: Found, mongodb_server: Found, redis_server: Found, rabbitmq_server: Found
) -> None:
    async with AsyncExitStack() as stack:
        env = (
            os.environ
            | {
                "DATABASE_URL": await stack.enter_async_context(postgres_database(postgres_server.url)),
                "MONGODB_URL": mongodb_server.url,
                "MONGODB_DATABASE": await stack.enter_async_context(mongo_database(mongodb_server.url)),
                "REDIS_URL": redis_server.url,
                "CACHE_PREFIX": await stack.enter_async_context(redis_namespace(redis_server.url)),
                "RABBITMQ_URL": await stack.enter_async_context(rabbitmq_vhost(rabbitmq_server.url)),
                "FAKE_TELEGRAM_PORT": str(free_port()),
            }
            | {name: str(free_port()) for name in PORT_VARIABLES.values()}
        )
        env.pop("TELEGRAM_API_URL", None)
        printed = await stack.enter_async_context(first_terminal(env))
        done = await second_terminal(env, *SECOND_TERMINAL[:-1])
        assert done.returncode == 0, done.stdout + done.stderr
        assert re.search(r"^user \d+$", done.stdout, re.MULTILINE), done.stdout
        order_id = re.search(r"^order (\d+)$", done.stdout, re.MULTILINE)
        assert order_id, done.stdout

        async def the_bot_told_them() -> str | None:
            shown = await second_terminal(env, "shell", "messages")
            assert shown.returncode == 0, shown.stderr
            return shown.stdout if f"#{order_id[1]}" in shown.stdout else None

        told = await eventually(the_bot_told_them, "the bot's message about the order", timeout=60)
        assert "Linked, Ada" in told
        # The order's log lines in the first terminal: the worker's and the bot's, in one trace
        handled: dict[str, set[str]] = {}
        for line in printed:
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if re.search(rf'"order_id":{order_id[1]}\b', record.get("message", "")):
                    handled.setdefault(record["service"]["name"], set()).add(
                        record.get("trace", {}).get("id", "")
                    )
        assert set(handled) == {"worker_service", "bot_service"}, "".join(printed)[-3000:]
        (trace_id,) = handled["worker_service"] | handled["bot_service"]
        assert len(trace_id) == 32


def refused_start(**settings: str) -> str:
    """The start section with these settings (every port free unless one is given): it must stop at
    once with a message and no traceback; return what it wrote to stderr."""
    env = os.environ | {name: str(free_port()) for name in [*PORT_VARIABLES.values(), "FAKE_TELEGRAM_PORT"]}
    env = {name: value for name, value in env.items() if name != "TELEGRAM_API_URL"} | settings
    done = run_sections(env, "start")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    return done.stderr


@pytest.mark.parametrize("taken", ["API_PORT", "FAKE_TELEGRAM_PORT"])
def test_a_port_already_in_use_is_named_not_a_traceback(taken: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert f"port {port} ({taken}) is in use" in refused_start(**{taken: str(port)})


def test_a_server_that_is_not_running_is_named_not_a_traceback() -> None:
    closed = free_port()
    said = refused_start(RABBITMQ_URL=f"amqp://guest:guest@127.0.0.1:{closed}/")
    assert f"RabbitMQ is not running at 127.0.0.1:{closed} (RABBITMQ_URL)" in said


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("postgresql://postgres@localhost/test", "localhost:5432"),  # no port: the scheme's
        ("redis://localhost", "localhost:6379"),
        ("amqp://guest:guest@127.0.0.1/", "127.0.0.1:5672"),
        ("postgresql+asyncpg://app@db:6000/app", "db:6000"),
        (
            "postgresql://app@db1:5432,db2:5432/app?target_session_attrs=read-write",
            None,
        ),  # the driver's to try
    ],
)
def test_the_start_check_probes_where_each_url_points(url: str, address: str | None) -> None:
    assert server_address(url) == address
