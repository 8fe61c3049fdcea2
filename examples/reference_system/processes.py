"""Start the five services as processes against local infrastructure, and stop them cleanly.

No Docker needed: PostgreSQL, Redis and MongoDB (or the nx-27017 stand-in) on this
machine. Start order follows the dependencies, in two waves: migrations and both data
services, then the three business services, which start only when every data service
reports ready. Within a wave the processes start together. Stop order is the reverse,
SIGTERM first, so in-flight work finishes.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
import urllib.request
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from reference_system.fake_telegram import FakeTelegram, fake_telegram
from reference_system.nx_27017 import start_nx_27017
from reference_system.ports import port_is_open
from reference_system.waiting import eventually

TOKEN_CALLERS = ("api", "bot", "worker")


@dataclass(frozen=True)
class Ports:
    api: int = 8000
    pg: int = 8001
    mongo: int = 8002
    worker: int = 9101
    bot: int = 9102

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Ports:
        """The defaults, each replaced by its variable in ``PORT_VARIABLES`` where that is set."""
        return cls(**{port: int(environ[name]) for port, name in PORT_VARIABLES.items() if name in environ})


# What moves each service off its default port, for `python -m reference_system`.
PORT_VARIABLES = {
    "api": "API_PORT",
    "pg": "PG_DATA_PORT",
    "mongo": "MONGO_DATA_PORT",
    "worker": "WORKER_PORT",
    "bot": "BOT_PORT",
}


@dataclass(frozen=True)
class SystemConfig:
    database_url: str = "postgresql://postgres@127.0.0.1:5432/test"
    mongodb_url: str = "mongodb://127.0.0.1:27017/"
    mongodb_database: str = "hybrid"
    redis_url: str = "redis://127.0.0.1:6379/0"
    cache_prefix: str = "api:"  # the API's Redis keys; a test gives each run its own
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    telegram_api_url: str | None = None  # None: the bot is not started
    bot_token: str = "123456:LOCAL-development-token"  # noqa: S105 - only valid for the local fake Telegram
    ports: Ports = field(default_factory=Ports)
    job_interval_seconds: float = 2.0
    otlp_endpoint: str | None = None  # e.g. Jaeger's http://127.0.0.1:4318; None: no export
    tokens: Mapping[str, str] = field(
        default_factory=lambda: {caller: secrets.token_urlsafe(24) for caller in TOKEN_CALLERS}
    )
    jwt_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))  # end users' tokens (HS256)
    metrics_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))  # Prometheus's bearer token


@dataclass
class Running:
    name: str
    process: asyncio.subprocess.Process
    url: str


type Step = tuple[str, dict[str, str], str]


# --8<-- [start:plan]
def plan(config: SystemConfig) -> list[list[Step]]:
    """(module, environment, readiness URL) for each service, in two waves: the data services,
    then the business services that call them."""
    p, tokens = config.ports, config.tokens
    data = {"PG_DATA_URL": f"http://127.0.0.1:{p.pg}", "MONGO_DATA_URL": f"http://127.0.0.1:{p.mongo}"}
    events = {"RABBITMQ_URL": config.rabbitmq_url, "REDIS_URL": config.redis_url}
    service_tokens = ",".join(f"{caller}={token}" for caller, token in tokens.items())
    data_services = [
        (
            "mongo_data_service",
            {
                "PORT": str(p.mongo),
                "MONGODB_URL": config.mongodb_url,
                "MONGODB_DATABASE": config.mongodb_database,
                "SERVICE_TOKENS": service_tokens,
            },
        ),
        (
            "pg_data_service",
            {
                "PORT": str(p.pg),
                "DATABASE_URL": config.database_url,
                "SERVICE_TOKENS": service_tokens,
                "RABBITMQ_URL": config.rabbitmq_url,  # the outbox relay runs inside
            },
        ),
    ]
    business_services = [
        (
            "api_service",
            {
                "PORT": str(p.api),
                "REDIS_URL": config.redis_url,
                "CACHE_PREFIX": config.cache_prefix,
                "SERVICE_TOKEN": tokens["api"],
                "JWT_KEY": config.jwt_key,
                **data,
            },
        ),
        (
            "worker_service",
            {
                "PORT": str(p.worker),
                "SERVICE_TOKEN": tokens["worker"],
                "JOB_INTERVAL_SECONDS": str(config.job_interval_seconds),
                **data,
                **events,
            },
        ),
    ]
    if config.telegram_api_url:
        bot = {"BOT_TOKEN": config.bot_token, "TELEGRAM_API_URL": config.telegram_api_url}
        business_services.append(
            ("bot_service", {"PORT": str(p.bot), "SERVICE_TOKEN": tokens["bot"], **bot, **data, **events})
        )
    for _, env in data_services + business_services:
        env["METRICS_TOKEN"] = config.metrics_token
        if config.otlp_endpoint:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = config.otlp_endpoint
    return [
        [(name, env, f"http://127.0.0.1:{env['PORT']}/health/ready") for name, env in wave]
        for wave in (data_services, business_services)
    ]
    # --8<-- [end:plan]


async def wait_ready(running: Running, timeout: float = 60) -> None:
    """Poll the readiness URL until it answers 200; fail fast if the process exits.

    The bound is generous on purpose: importing aiogram builds some 630 pydantic models
    (4-7 s for the bot on an idle 2-core machine, over 20 s when the cores are busy).
    """

    def exited() -> str | None:
        code = running.process.returncode
        return None if code is None else f"{running.name} exited with {code} during start-up"

    async def ready() -> bool:
        return await asyncio.to_thread(_is_ready, running.url)

    what = f"{running.name} ready at {running.url}"
    await eventually(ready, what, timeout=timeout, interval=0.2, abort=exited)


def _is_ready(url: str) -> bool:
    if not port_is_open(url, timeout=0.2):
        return False
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own loopback URL
            return int(response.status) == 200
    except OSError:
        return False


class StoppedBadly(RuntimeError):
    """A service did not stop cleanly on SIGTERM: it failed, or had to be killed."""


async def stop(running: Running, timeout: float = 15) -> str | None:
    """SIGTERM, wait for a clean exit, SIGKILL if it does not come; say what was not clean."""
    if running.process.returncode is None:
        running.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(running.process.wait(), timeout)
        except TimeoutError:
            running.process.kill()
            await running.process.wait()
            return f"{running.name} did not stop within {timeout:.0f} s of SIGTERM and was killed"
    if running.process.returncode != 0:
        return f"{running.name} exited with status {running.process.returncode}; see its log above"
    return None


# --8<-- [start:run]
@asynccontextmanager
async def running_system(config: SystemConfig) -> AsyncIterator[dict[str, Running]]:
    """Migrate, start the services wave by wave, yield them by name; stop all in reverse order."""
    started: dict[str, Running] = {}
    unclean: list[str] = []

    async def stopped(running: Running) -> None:
        if problem := await stop(running):
            unclean.append(problem)

    async with AsyncExitStack() as stack:
        # Migrations run while the MongoDB data service starts; the PostgreSQL one waits for them.
        migrate = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pg_data_service.migrate",
            env=os.environ | {"DATABASE_URL": config.database_url},
        )
        for wave in plan(config):
            for name, env, ready_url in wave:
                if name == "pg_data_service" and await migrate.wait() != 0:
                    raise RuntimeError("migrations failed; see the output above")
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", name, env=os.environ | env
                )
                started[name] = Running(name, process, ready_url)
                stack.push_async_callback(stopped, started[name])  # stopped in reverse order
            # The whole wave is ready before the next one starts (a TaskGroup fails on the first error).
            async with asyncio.TaskGroup() as group:
                for name, _, _ in wave:
                    group.create_task(wait_ready(started[name]))
        yield started
    if unclean:  # every service was stopped; say which did not go cleanly
        raise StoppedBadly("; ".join(unclean))
        # --8<-- [end:run]


DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "redis": 6379, "amqp": 5672, "amqps": 5671}


def server_address(url: str) -> str | None:
    """``host:port`` of a server URL, its scheme's port when it names none; ``None`` for a URL with
    several hosts (``h1:5432,h2:5432``), which the driver itself tries in turn."""
    parts = urlsplit(url)
    try:
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.split("+")[0])
    except ValueError:  # several hosts: not one address to probe
        return None
    return f"{parts.hostname or '127.0.0.1'}:{port}"


def preflight(environ: Mapping[str, str], telegram_port: int | None = None) -> list[str]:
    """What would stop the local run, each as a line that names it: a server that is not running,
    a port something else already listens on."""
    problems = []
    servers = {"DATABASE_URL": "PostgreSQL", "REDIS_URL": "Redis", "RABBITMQ_URL": "RabbitMQ"}
    defaults = {"DATABASE_URL": SystemConfig.database_url, "REDIS_URL": SystemConfig.redis_url}
    defaults["RABBITMQ_URL"] = SystemConfig.rabbitmq_url
    for variable, server in servers.items():
        url = environ.get(variable, defaults[variable])
        if (where := server_address(url)) is not None and not port_is_open(f"tcp://{where}"):
            problems.append(f"{server} is not running at {where} ({variable}): start it, or set {variable}")
    ports = {PORT_VARIABLES[name]: port for name, port in asdict(Ports.from_env(environ)).items()}
    if telegram_port is not None and "TELEGRAM_API_URL" not in environ:
        ports["FAKE_TELEGRAM_PORT"] = telegram_port
    for variable, port in ports.items():
        if port_is_open(f"http://127.0.0.1:{port}"):
            problems.append(f"port {port} ({variable}) is in use: stop what listens there, or set {variable}")
    return problems


@asynccontextmanager
async def local_config(
    environ: Mapping[str, str] = os.environ, telegram_port: int | None = None
) -> AsyncIterator[tuple[SystemConfig, FakeTelegram | None]]:
    """The config for this machine: URLs, names and ports from ``environ``, or the local defaults.

    Without ``MONGODB_URL`` and no MongoDB on 127.0.0.1:27017, the nx-27017 stand-in is
    started; without ``TELEGRAM_API_URL``, a local fake Bot API on ``telegram_port`` (a free
    one by default; yielded, so a caller can play a user). Both stop on exit.
    """
    with ExitStack() as servers:
        mongodb_url = environ.get("MONGODB_URL") or SystemConfig.mongodb_url
        if "MONGODB_URL" not in environ and not port_is_open(mongodb_url):
            mongodb_url = start_nx_27017(servers)
            print(f"MongoDB: nx-27017 stand-in at {mongodb_url}")
        async with AsyncExitStack() as stack:
            telegram, telegram_url = None, environ.get("TELEGRAM_API_URL")
            if not telegram_url:
                telegram, telegram_url = await stack.enter_async_context(fake_telegram(telegram_port))
                print(f"Telegram: local fake Bot API at {telegram_url}")
            yield (
                SystemConfig(
                    database_url=environ.get("DATABASE_URL", SystemConfig.database_url),
                    mongodb_url=mongodb_url,
                    mongodb_database=environ.get("MONGODB_DATABASE", SystemConfig.mongodb_database),
                    redis_url=environ.get("REDIS_URL", SystemConfig.redis_url),
                    cache_prefix=environ.get("CACHE_PREFIX", SystemConfig.cache_prefix),
                    rabbitmq_url=environ.get("RABBITMQ_URL", SystemConfig.rabbitmq_url),
                    telegram_api_url=telegram_url,
                    bot_token=environ.get("BOT_TOKEN", SystemConfig.bot_token),
                    ports=Ports.from_env(environ),
                    job_interval_seconds=float(
                        environ.get("JOB_INTERVAL_SECONDS", SystemConfig.job_interval_seconds)
                    ),
                    otlp_endpoint=environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
                    jwt_key=environ.get("JWT_KEY") or secrets.token_urlsafe(32),
                    metrics_token=environ.get("METRICS_TOKEN") or secrets.token_urlsafe(24),
                ),
                telegram,
            )
