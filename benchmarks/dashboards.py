"""Pictures of the Grafana dashboards: their definitions, drawn with data from a real Prometheus.

Run: ``uv run python benchmarks/dashboards.py`` (needs PostgreSQL, Redis, RabbitMQ and Debian's
``prometheus``; MongoDB, or the nx-27017 stand-in it starts).

Grafana cannot run on the machine that builds this site, so these are **not screenshots of
Grafana**. The script starts the five services (``reference_system``) and a real Prometheus
with the deployed rules, scraping every second; drives a varying load through the API and
the bot; halfway through, pauses ``mongo_data_service`` with SIGSTOP for a while (an incident
the dashboards should show, drawn as an annotation). Then it reads each committed dashboard
JSON, runs every panel's queries with ``query_range`` and draws the grid (positions, titles,
units, legends) with matplotlib to ``docs/assets/dashboards/<uid>.png``, and writes what
happened to ``benchmarks/results/dashboards.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import os
import random
import re
import signal
import tempfile
import time
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import astuple, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import matplotlib
from publishing import OUTPUT, save, stamp
from pydantic import SecretStr

from api_service.auth import issue
from api_service.settings import EndUserTokens
from patterns.testing.isolation import mongo_database, postgres_database, rabbitmq_vhost, redis_namespace
from reference_system.fake_telegram import FakeTelegram
from reference_system.ports import free_port
from reference_system.processes import Ports, local_config, running_system
from reference_system.prometheus import running_prometheus, wait_for_targets

matplotlib.use("Agg")
import matplotlib.dates as mdates  # the Agg backend is chosen above, before these imports
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter

SCALE = float(os.environ.get("BENCH_SCALE", "1"))
DURATION = max(180 * SCALE, 6.0)  # seconds of load
STEP = 2  # seconds between points, as a Grafana panel about 900 px wide would ask for 3 minutes
RATE_WINDOW = "10s"  # stands in for Grafana's $__rate_interval (4 x the 1 s scrape, rounded up)
ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "examples" / "deploy" / "grafana" / "dashboards"
SETTLE = max(5 * SCALE, 2.0)  # seconds after the load for the last scrapes and rule evaluations
THEME = {"page": "#111217", "panel": "#181b1f", "text": "#ccccdc", "grid": "#2c3235", "band": "#f2495c"}
UNIT_W, UNIT_H = 0.68, 0.4  # inches per grid column and per grid row
LEGEND_MAX, LEGEND_COLUMNS = 12, 3
COLORS = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#fade2a"]


@dataclass
class Incident:
    start: float = 0.0
    end: float = 0.0


# --- load -------------------------------------------------------------------------------------


async def customer(
    api: httpx.AsyncClient, tokens: EndUserTokens, telegram: FakeTelegram | None, n: int, sent: Counter[str]
) -> None:
    """One customer's visit: register, link Telegram, read, order, look at orders and activity."""

    async def call(method: str, url: str, **kwargs: Any) -> httpx.Response:
        route = f"{method} {re.sub(r'/[0-9]+', '/{id}', url)}"
        try:
            response = await api.request(method, url, **kwargs)
        except httpx.TimeoutException:
            sent[f"{route} → no answer in 5 s"] += 1
            raise
        sent[f"{route} → {response.status_code}"] += 1
        return response

    user = await call(
        "POST", "/users", json={"email": f"c{n}-{time.time_ns()}@example.org", "name": f"C {n}"}
    )
    if user.status_code != 201:
        return
    user_id, chat = user.json()["id"], 5_000_000 + n
    api.headers["Authorization"] = f"Bearer {issue(tokens, user_id)}"  # signed in, as the provider would
    link = await call("POST", f"/users/{user_id}/telegram-link")
    if telegram is not None and link.status_code == 201:  # the code goes to the bot from the user's chat
        await telegram.send_command(chat, f"/link {link.json()['code']}")
    for _ in range(3):
        await call("GET", f"/users/{user_id}")  # the first misses the cache, the others hit
    items = [{"sku": f"sku-{n % 7}", "quantity": 1 + n % 3, "unit_price": "4.50"}]
    key = {"Idempotency-Key": f"dashboard-order-{user_id}"}
    await call("POST", f"/users/{user_id}/orders", json={"items": items}, headers=key)
    await call("GET", f"/users/{user_id}/orders")
    await call("GET", f"/users/{user_id}/activity")
    if n % 5 == 0:  # a client mistake now and then: 422 and 404
        await call("POST", "/users", json={"email": "not-an-email", "name": ""})
        await call("GET", "/users/999999999")
    if telegram is not None and n % 3 == 0:  # a Telegram user meets the bot
        await telegram.send_command(6_000_000 + n, "/start", first_name=f"T {n}")
        await telegram.send_command(chat, "/orders")


def lanes_at(elapsed: float) -> int:
    """Concurrent customers over the run: a morning ramp, a peak, a quieter tail."""
    share = elapsed / DURATION
    return 1 if share < 0.15 else 3 if share < 0.35 else 6 if share < 0.8 else 2


async def drive(
    api_url: str, tokens: EndUserTokens, telegram: FakeTelegram | None, mongo_pid: int, incident: Incident
) -> Counter[str]:
    """Run customers for DURATION seconds; pause the MongoDB data service from 50 % to 62 %."""
    sent: Counter[str] = Counter()
    numbers = itertools.count(1)
    started = time.monotonic()

    async def lane(index: int) -> None:
        async with httpx.AsyncClient(base_url=api_url, timeout=5) as api:
            while (elapsed := time.monotonic() - started) < DURATION:
                if index >= lanes_at(elapsed):
                    await asyncio.sleep(0.5)
                    continue
                with contextlib.suppress(httpx.TimeoutException):  # counted; the customer gives up
                    await customer(api, tokens, telegram, next(numbers), sent)
                await asyncio.sleep(random.uniform(0.05, 0.3))  # noqa: S311 - think time, not security

    async def pause_mongo() -> None:
        await asyncio.sleep(DURATION * 0.5)
        incident.start = time.time()
        os.kill(mongo_pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(DURATION * 0.12)
        finally:
            os.kill(mongo_pid, signal.SIGCONT)
            incident.end = time.time()

    async with asyncio.TaskGroup() as group:
        group.create_task(pause_mongo())
        for index in range(6):
            group.create_task(lane(index))
    return sent


# --- queries ----------------------------------------------------------------------------------


def concrete(expr: str) -> str:
    """A panel's query as Grafana would send it: variables replaced ($job: All)."""
    return expr.replace("$__rate_interval", RATE_WINDOW).replace('=~"$job"', '=~".+"')


def legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template).strip() or "value"


async def series(prom: httpx.AsyncClient, target: dict[str, Any], start: float, end: float) -> list[Any]:
    params = {"query": concrete(target["expr"]), "start": start, "end": end, "step": STEP}
    answer = (await prom.get("/api/v1/query_range", params=params)).json()
    if answer["status"] != "success":
        raise RuntimeError(f"{target['expr']}: {answer}")
    return [
        (legend(target["legendFormat"], s["metric"]), [(float(t), float(v)) for t, v in s["values"]])
        for s in answer["data"]["result"]
    ]


async def instant(prom: httpx.AsyncClient, target: dict[str, Any], at: float) -> list[Any]:
    answer = (await prom.get("/api/v1/query", params={"query": concrete(target["expr"]), "time": at})).json()
    if answer["status"] != "success":
        raise RuntimeError(f"{target['expr']}: {answer}")
    return [
        (legend(target["legendFormat"], s["metric"]), float(s["value"][1])) for s in answer["data"]["result"]
    ]


# --- drawing ----------------------------------------------------------------------------------


def unit_formatter(unit: str) -> FuncFormatter:
    def seconds(value: float) -> str:
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"

    formats = {
        "s": seconds,
        "percentunit": lambda v: f"{v * 100:.1f}%",
        "reqps": lambda v: f"{v:.1f} req/s",
        "ops": lambda v: f"{v:.2f}/s",
    }
    return FuncFormatter(lambda value, _: formats.get(unit, lambda v: f"{v:.3g}")(value))


def panel_axes(figure: Figure, box: tuple[float, float, float, float], title: str, legend_rows: int) -> Axes:
    """A Grafana-like panel in ``box`` (left, bottom, width, height in inches); return its plot area."""
    width, height = figure.get_size_inches()
    left, bottom, w, h = box
    frame = figure.add_axes((left / width, bottom / height, w / width, h / height))
    frame.set_facecolor(THEME["panel"])
    frame.set_xticks([])
    frame.set_yticks([])
    for edge in frame.spines.values():
        edge.set_color(THEME["grid"])
    frame.text(
        0.1 / w,
        1 - 0.22 / h,
        title,
        transform=frame.transAxes,
        color=THEME["text"],
        fontsize=10,
        fontweight="bold",
    )
    below = 0.3 + legend_rows * 0.16  # x tick labels, then the legend
    plot = figure.add_axes(
        (
            (left + 0.75) / width,
            (bottom + below) / height,
            (w - 0.95) / width,
            (h - 0.4 - below - 0.1) / height,
        )
    )
    plot.set_facecolor(THEME["panel"])
    plot.tick_params(colors=THEME["text"], labelsize=7)
    for edge in plot.spines.values():
        edge.set_visible(False)
    return plot


def draw_timeseries(
    axis: Axes, panel: dict[str, Any], found: list[Any], span: tuple[float, float], incident: Incident
) -> None:
    colors = itertools.cycle(COLORS)
    for name, points in found[:LEGEND_MAX]:
        times, values = [], []
        for index, (t, v) in enumerate(points):
            if (
                index and t - points[index - 1][0] > STEP * 1.5
            ):  # no samples (a paused target): a gap, as Grafana
                times.append(datetime.fromtimestamp(t - STEP, UTC))
                values.append(math.nan)
            times.append(datetime.fromtimestamp(t, UTC))
            values.append(v)
        axis.plot(times, values, linewidth=1.2, label=name, color=next(colors))
    axis.axvspan(
        *(datetime.fromtimestamp(t, UTC) for t in (incident.start, incident.end)),
        color=THEME["band"],
        alpha=0.15,
    )
    axis.set_xlim(*(datetime.fromtimestamp(t, UTC) for t in span))
    axis.yaxis.set_major_formatter(unit_formatter(panel["fieldConfig"]["defaults"]["unit"]))
    axis.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=UTC))
    axis.grid(color=THEME["grid"], linewidth=0.5)
    axis.set_ylim(bottom=0)
    if found:
        axis.legend(
            loc="upper left",
            bbox_to_anchor=(0, -0.08 if len(found) > 3 else -0.1),
            ncols=LEGEND_COLUMNS,
            fontsize=7,
            frameon=False,
            labelcolor=THEME["text"],
            borderaxespad=0.6,
        )
    else:
        no_data(axis)


def draw_values(axis: Axes, found: list[Any], kind: str) -> None:
    """A stat panel (one box per series) or a table (one row per series)."""
    axis.set_xticks([])
    axis.set_yticks([])
    if not found:
        no_data(axis, "no firing alerts" if kind == "table" else "no data")
        return
    if kind == "table":
        for row, (name, value) in enumerate(found[:8]):
            axis.text(0.02, 0.85 - row * 0.1, f"{name}   {value:g}", color=THEME["text"], fontsize=8)
        return
    width = 1 / len(found)
    for index, (name, value) in enumerate(sorted(found)):
        color = "#37872d" if value >= 1 else "#c4162a"
        axis.add_patch(Rectangle((index * width + 0.005, 0.0), width - 0.01, 1.0, color=color))
        middle = index * width + width / 2
        axis.text(
            middle,
            0.6,
            "UP" if value >= 1 else "DOWN",
            ha="center",
            color="white",
            fontsize=14,
            fontweight="bold",
        )
        axis.text(middle, 0.22, name, ha="center", color="white", fontsize=8)


def no_data(axis: Axes, text: str = "no data") -> None:
    axis.text(0.5, 0.5, text, transform=axis.transAxes, ha="center", va="center", color=THEME["text"])


async def render(
    prom: httpx.AsyncClient,
    board: dict[str, Any],
    span: tuple[float, float],
    incident: Incident,
    caption: list[str],
    target: Path,
) -> None:
    """Draw ``board`` as Grafana lays it out: 24 columns, rows of ``UNIT_H`` inches."""
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in board["panels"])
    header = 0.35 + 0.18 * len(caption)
    width, height = 24 * UNIT_W, rows * UNIT_H + header
    figure = plt.figure(figsize=(width, height), facecolor=THEME["page"])
    figure.text(
        0.12 / width, 1 - 0.3 / height, board["title"], color=THEME["text"], fontsize=15, fontweight="bold"
    )
    for line, text in enumerate(caption):
        figure.text(0.12 / width, 1 - (0.5 + 0.18 * line) / height, text, color="#9fa7b3", fontsize=8)
    for panel in board["panels"]:
        grid = panel["gridPos"]
        if panel["type"] == "timeseries":
            found = [s for t in panel["targets"] for s in await series(prom, t, *span)]
            legend_rows = -(-min(len(found), LEGEND_MAX) // LEGEND_COLUMNS)
        else:
            found = [v for t in panel["targets"] for v in await instant(prom, t, span[1])]
            legend_rows = 0
        box = (
            grid["x"] * UNIT_W + 0.06,
            (rows - grid["y"] - grid["h"]) * UNIT_H + 0.06,
            grid["w"] * UNIT_W - 0.12,
            grid["h"] * UNIT_H - 0.12,
        )
        axis = panel_axes(figure, box, panel["title"], legend_rows)
        if panel["type"] == "timeseries":
            draw_timeseries(axis, panel, found, span, incident)
        else:
            draw_values(axis, found, panel["type"])
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=80, facecolor=THEME["page"])
    plt.close(figure)


# --- the run ----------------------------------------------------------------------------------


async def run(machine: str, date: str) -> dict[str, Any]:
    # Every customer of the load signs up from this one address: lift the API's per-address limit,
    # which the services inherit from this environment, or the run would draw mostly 429s.
    os.environ.setdefault("SIGN_UP_RATE", "1000000/minute")
    incident = Incident()
    async with AsyncExitStack() as stack:
        config, telegram = await stack.enter_async_context(local_config())
        ports = Ports(api=free_port(), pg=free_port(), mongo=free_port(), worker=free_port(), bot=free_port())
        config = replace(  # a scratch namespace in every store, so runs never see each other's data
            config,
            database_url=await stack.enter_async_context(postgres_database(config.database_url)),
            cache_prefix=await stack.enter_async_context(redis_namespace(config.redis_url)),
            rabbitmq_url=await stack.enter_async_context(rabbitmq_vhost(config.rabbitmq_url)),
            mongodb_database=await stack.enter_async_context(mongo_database(config.mongodb_url)),
            ports=ports,
            job_interval_seconds=15,
        )
        # Prometheus first: it starts while the services do, and scrapes each once it is up.
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        prom_url = await stack.enter_async_context(running_prometheus(ports, config.metrics_token, directory))
        system = await stack.enter_async_context(running_system(config))
        prom = await stack.enter_async_context(httpx.AsyncClient(base_url=prom_url, timeout=30))
        await wait_for_targets(prom_url, count=len(astuple(ports)))
        started = time.time()
        tokens = EndUserTokens(jwt_key=SecretStr(config.jwt_key))
        mongo_pid = system["mongo_data_service"].process.pid
        sent = await drive(f"http://127.0.0.1:{ports.api}", tokens, telegram, mongo_pid, incident)
        await asyncio.sleep(SETTLE)
        ended = time.time()
        version = (await prom.get("/api/v1/status/buildinfo")).json()["data"]["version"]
        this_run = (
            f"{date} · {machine} · {ended - started - SETTLE:.0f} s of load · "
            f"$__rate_interval = {RATE_WINDOW} · red band: mongo_data_service paused (SIGSTOP) "
            f"for {incident.end - incident.start:.0f} s"
        )
        pictures = []
        for path in sorted(DASHBOARDS.glob("*.json")):
            board = json.loads(path.read_text())
            source = (
                f"Not a Grafana screenshot: drawn by benchmarks/dashboards.py from {path.relative_to(ROOT)},"
                f" with data from a real Prometheus {version} scraping the services."
            )
            picture = OUTPUT / "docs" / "assets" / "dashboards" / f"{board['uid']}.png"
            await render(prom, board, (started, ended), incident, [source, this_run], picture)
            pictures.append(str(picture.relative_to(OUTPUT)))
    return {
        "prometheus": version,
        "load_seconds": round(ended - started - SETTLE),
        "responses": dict(sorted(sent.items())),
        "incident": {
            "paused": "mongo_data_service",
            "seconds": round(incident.end - incident.start, 1),
            "starts_after_seconds": round(incident.start - started, 1),
        },
        "pictures": pictures,
    }


def main() -> None:
    date, machine = stamp()
    results = asyncio.run(run(machine, date))
    print(f"{date} · {machine}\n")
    print("| request → answer | count |\n|---|---|")
    for answer, count in results["responses"].items():
        print(f"| {answer} | {count} |")
    for picture in results["pictures"]:
        print(picture)
    save("dashboards", date, machine, results)


if __name__ == "__main__":
    main()
