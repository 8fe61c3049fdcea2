"""The Grafana dashboards of the reference system, as code.

``uv run python examples/deploy/grafana/dashboards.py`` writes one JSON file per dashboard
into ``dashboards/``, which Grafana's file provider loads. A test checks that the files are
up to date, that every query parses (promtool) and that it names metrics the services export.
"""

# ruff: noqa: E501 - a PromQL query reads best on one line
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

type Json = dict[str, Any]

PROMETHEUS = {"type": "prometheus", "uid": "prometheus"}
USER_TRAFFIC = 'route!~"/health/.*|/metrics"'
RATE = "$__rate_interval"  # Grafana picks it from the scrape interval and the zoom


# --8<-- [start:panel]
def panel(
    title: str, queries: dict[str, str], unit: str = "short", kind: str = "timeseries", width: int = 12
) -> Json:
    """One panel: ``queries`` maps a legend to a PromQL expression."""
    targets = [
        {"refId": chr(65 + i), "expr": expr, "legendFormat": legend, "datasource": PROMETHEUS}
        for i, (legend, expr) in enumerate(queries.items())
    ]
    return {
        "type": kind,
        "title": title,
        "datasource": PROMETHEUS,
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "gridPos": {"w": width, "h": 8},
    }


def dashboard(uid: str, title: str, panels: list[Json], variables: list[Json] | None = None) -> Json:
    """Lay panels out left to right, top to bottom, on Grafana's 24-column grid."""
    x = y = row_height = 0
    for number, item in enumerate(panels, start=1):
        grid = item["gridPos"]
        if x + grid["w"] > 24:
            x, y = 0, y + row_height
        grid.update(x=x, y=y)
        x, row_height = x + grid["w"], max(row_height if x else 0, grid["h"])
        item["id"] = number
    return {
        "uid": uid,
        "title": title,
        "tags": ["reference-system"],
        "timezone": "utc",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "templating": {"list": variables or []},
        "panels": panels,
    }
    # --8<-- [end:panel]


def job_variable(metric: str) -> Json:
    return {
        "name": "job",
        "label": "service",
        "type": "query",
        "datasource": PROMETHEUS,
        "query": f"label_values({metric}, job)",
        "includeAll": True,
        "multi": True,
        "current": {"text": "All", "value": "$__all"},
    }


# --8<-- [start:red]
def service_overview() -> Json:
    selected = f'job=~"$job", {USER_TRAFFIC}'
    return dashboard(
        "service-overview",
        "Service overview (RED)",
        [
            panel(
                "Requests per second",
                {
                    "{{job}} {{route}}": f"sum by (job, route) (rate(http_requests_total{{{selected}}}[{RATE}]))"
                },
                "reqps",
            ),
            panel(
                "Errors: share of 5xx",
                {
                    "{{job}}": f'sum by (job) (rate(http_requests_total{{{selected}, status=~"5.."}}[{RATE}])) / sum by (job) (rate(http_requests_total{{{selected}}}[{RATE}]))'
                },
                "percentunit",
            ),
            panel(
                "Duration p50 / p95 / p99",
                {
                    f"p{q} {{{{job}}}}": f"histogram_quantile(0.{q}, sum by (job, le) (rate(http_request_duration_seconds_bucket{{{selected}}}[{RATE}])))"
                    for q in (50, 95, 99)
                },
                "s",
            ),
            panel("Requests in flight", {"{{job}}": 'sum by (job) (http_requests_in_flight{job=~"$job"})'}),
            panel("Up", {"{{job}}": 'up{job=~".*_service"}'}, kind="stat", width=24),
        ],
        [job_variable("http_requests_total")],
    )
    # --8<-- [end:red]


def data_services() -> Json:
    return dashboard(
        "data-services",
        "Data services",
        [
            panel(
                "Calls to data services by outcome",
                {
                    "{{job}} → {{target}} {{outcome}}": f"sum by (job, target, outcome) (rate(data_client_requests_total[{RATE}]))"
                },
                "reqps",
            ),
            panel(
                "Call duration p95, seen by the caller",
                {
                    "{{job}} → {{target}}": f"histogram_quantile(0.95, sum by (job, target, le) (rate(data_client_request_duration_seconds_bucket[{RATE}])))"
                },
                "s",
            ),
            panel(
                "User cache hit ratio",
                {
                    "hit ratio": f'sum(rate(cache_requests_total{{result="hit"}}[{RATE}])) / sum(rate(cache_requests_total[{RATE}]))'
                },
                "percentunit",
            ),
            panel(
                "Data service duration p95 by route",
                {
                    "{{job}} {{route}}": f'histogram_quantile(0.95, sum by (job, route, le) (rate(http_request_duration_seconds_bucket{{job=~".*_data_service", {USER_TRAFFIC}}}[{RATE}])))'
                },
                "s",
            ),
        ],
    )


def messaging() -> Json:
    return dashboard(
        "messaging",
        "Messaging (outbox, RabbitMQ, consumers)",
        [
            panel(
                "Outbox backlog",
                {
                    "unsent rows": "sum(outbox_backlog)",
                    "oldest (s)": "max(outbox_oldest_unsent_age_seconds)",
                    "quarantined or behind one": "sum(outbox_quarantined)",
                },
            ),
            panel(
                "Outbox publishes",
                {
                    "confirmed": f"sum(rate(outbox_published_total[{RATE}]))",
                    "not confirmed": f"sum(rate(outbox_publish_failures_total[{RATE}]))",
                },
                "ops",
            ),
            panel(
                "Consumed by outcome",
                {
                    "{{consumer}} {{outcome}}": f"sum by (consumer, outcome) (rate(events_consumed_total[{RATE}]))"
                },
                "ops",
            ),
            panel(
                "Handler time p95",
                {
                    "{{consumer}}": f"histogram_quantile(0.95, sum by (consumer, le) (rate(events_processing_seconds_bucket[{RATE}])))"
                },
                "s",
            ),
            panel(
                "Waiting in queues (lag)",
                {"{{queue}}": 'max by (queue) (events_queue_messages{queue!~".*\\\\.parking-lot"})'},
            ),
            panel(
                "Parking lot",
                {"{{queue}}": 'max by (queue) (events_queue_messages{queue=~".*\\\\.parking-lot"})'},
            ),
        ],
    )


def slos() -> Json:
    return dashboard(
        "slos",
        "SLOs and business",
        [
            panel(
                "Availability budget burn rate (1 = on budget)",
                {
                    "{{job}} 1h": "job:slo_errors:ratio_rate1h / 0.005",
                    "{{job}} 6h": "job:slo_errors:ratio_rate6h / 0.005",
                },
            ),
            panel(
                "Latency budget burn rate (1 = on budget)",
                {
                    "{{job}} 1h": "job:slo_slow:ratio_rate1h / 0.01",
                    "{{job}} 6h": "job:slo_slow:ratio_rate6h / 0.01",
                },
            ),
            panel("p95 by service", {"{{job}}": "job:http_request_duration_seconds:p95_5m"}, "s"),
            panel("Firing alerts", {"{{alertname}} {{job}}": 'ALERTS{alertstate="firing"}'}, kind="table"),
            panel(
                "Orders and users",
                {
                    "orders placed": f"sum(rate(orders_placed_total[{RATE}]))",
                    "orders confirmed": f"sum(rate(worker_orders_confirmed_total[{RATE}]))",
                    "users registered ({{channel}})": f"sum by (channel) (rate(users_registered_total[{RATE}]))",
                },
                "ops",
            ),
            panel(
                "Notifications",
                {"{{outcome}}": f"sum by (outcome) (rate(notifications_sent_total[{RATE}]))"},
                "ops",
            ),
        ],
    )


DASHBOARDS = (service_overview, data_services, messaging, slos)


def write(directory: Path) -> list[Path]:
    written = []
    for build in DASHBOARDS:
        board = build()
        path = directory / f"{board['uid']}.json"
        path.write_text(json.dumps(board, indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "dashboards"):
        print(path)
