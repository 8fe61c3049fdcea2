"""The ELK configs, checked against log lines our own formatter really writes.

No Elasticsearch runs on this machine (no package for it on the registries we reach), so
what Elasticsearch would check is checked here: every field of a real log line is mapped,
with a type that accepts its value, and the configs agree on names.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import yaml
from opentelemetry.sdk.trace import TracerProvider

from shared.observability.logs import REQUEST_ID
from tests.deploy.conftest import DEPLOY

ELK = DEPLOY / "elk"
TEMPLATE = json.loads((ELK / "index-template.json").read_text())
PIPELINE = json.loads((ELK / "ingest-pipeline.json").read_text())
FILEBEAT = yaml.safe_load((ELK / "filebeat.yml").read_text())


@pytest.fixture
def real_lines(ecs_log_lines: io.StringIO) -> list[dict[str, Any]]:
    """Log lines as a service writes them: in a span, with a request id, and with a traceback."""
    tracer = TracerProvider().get_tracer("test")
    token = REQUEST_ID.set("0af7651916cd43dd8448eb211c80319c")
    try:
        with tracer.start_as_current_span("POST /orders"):
            logging.getLogger("pg_data_service.outbox").warning("outbox: %d sent in this batch", 3)
            try:
                raise TimeoutError("no confirm within 5.0 s")
            except TimeoutError:
                logging.getLogger("pg_data_service.outbox").exception("outbox relay round failed")
    finally:
        REQUEST_ID.reset(token)
    return [json.loads(line) for line in ecs_log_lines.getvalue().splitlines()]


def leaves(document: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in document.items():
        if isinstance(value, dict):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def mapped_type(path: str) -> str | None:
    """The mapped type of a dotted field (``log.level``), following ``properties`` down."""
    node: dict[str, Any] = TEMPLATE["template"]["mappings"]
    parts = path.split(".")
    for i in range(len(parts)):
        properties = node.get("properties", {})
        # ECS writes a few fields with dots in their name ("log.level"); a mapping may too
        for size in range(len(parts) - i, 0, -1):
            name = ".".join(parts[i : i + size])
            if name in properties:
                node = properties[name]
                break
        else:
            return None
    return node.get("type")


ACCEPTS = {
    "keyword": lambda v: isinstance(v, str),
    "match_only_text": lambda v: isinstance(v, str),
    "wildcard": lambda v: isinstance(v, str),
    "long": lambda v: isinstance(v, int),
    "date": lambda v: isinstance(v, str) and datetime.fromisoformat(v.replace("Z", "+00:00")) is not None,
}


def test_every_field_of_a_real_log_line_is_mapped_with_a_fitting_type(
    real_lines: list[dict[str, Any]],
) -> None:
    assert len(real_lines) == 2
    seen = set()
    for line in real_lines:
        for path, value in leaves(line):
            kind = mapped_type(path)
            assert kind is not None, f"{path} is not mapped: with dynamic=false it would not be searchable"
            assert ACCEPTS[kind](value), f"{path}={value!r} does not fit {kind}"
            seen.add(path)
    assert {"trace.id", "span.id", "http.request.id", "error.stack_trace", "service.name"} <= seen


def test_mapping_is_closed_so_a_new_field_cannot_explode_it() -> None:
    assert TEMPLATE["template"]["mappings"]["dynamic"] is False


def test_filebeat_writes_to_the_data_stream_the_template_matches_through_the_pipeline() -> None:
    output = FILEBEAT["output.elasticsearch"]
    [pattern] = TEMPLATE["index_patterns"]
    assert re.fullmatch(pattern.replace("*", ".*"), output["index"])
    assert output["pipeline"] == "logs-hybrid"
    assert PIPELINE["description"].startswith(output["pipeline"] + ":")
    [parser_ndjson] = [p["ndjson"] for p in FILEBEAT["filebeat.inputs"][0]["parsers"] if "ndjson" in p]
    assert parser_ndjson["expand_keys"] is True  # "log.level" and "log": {...} end up as one object


def test_the_pipeline_only_touches_mapped_fields_and_its_pattern_redacts() -> None:
    for processor in PIPELINE["processors"]:
        [(_, options)] = processor.items()
        assert mapped_type(options["field"]) is not None, options["field"]
    [gsub] = [p["gsub"] for p in PIPELINE["processors"] if "gsub" in p]
    redacted = re.sub(gsub["pattern"], gsub["replacement"], "sent Authorization: bearer abc.DEF-123")
    assert redacted == "sent Authorization: Bearer [REDACTED]"
