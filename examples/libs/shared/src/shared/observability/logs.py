"""ECS JSON logs: one JSON object per line, joined to traces by ``trace.id``, tokens redacted.

Every record (ours, uvicorn's, aio-pika's) goes through one handler. A filter adds the
current ``trace.id`` / ``span.id`` and the request id; the formatter (Elastic's
``ecs-logging``) writes the ECS fields; redaction runs on the finished line, so a token in
a message, an argument or a traceback is caught alike.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from typing import Any, TextIO

import ecs_logging
from opentelemetry import trace

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

# --8<-- [start:redact]
SECRETS = (
    (re.compile(r"(?i)\bBearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer [REDACTED]"),
    (
        re.compile(r"(?<!\d)\d{6,12}:[A-Za-z0-9_-]{20,}"),
        "[REDACTED]",
    ),  # Telegram bot token, also in /bot<token>/
    # A URL's password, with a user or without one (redis://:password@host)
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s\"]*):[^@\s\"/]+@"), r"\1:[REDACTED]@"),
    (re.compile(r"(?i)\b(token|password|secret|api[_-]?key)=[^&\s\"]+"), r"\1=[REDACTED]"),
)


def redact(text: str) -> str:
    for pattern, replacement in SECRETS:
        text = pattern.sub(replacement, text)
    return text
    # --8<-- [end:redact]


# --8<-- [start:formatter]
class TraceContext(logging.Filter):
    """Add the ids that join a log line to its trace and its request."""

    def filter(self, record: logging.LogRecord) -> bool:
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            setattr(record, "trace.id", format(span.trace_id, "032x"))
            setattr(record, "span.id", format(span.span_id, "016x"))
        if (request_id := REQUEST_ID.get()) is not None:
            setattr(record, "http.request.id", request_id)
        return True


class RedactingEcsFormatter(ecs_logging.StdlibFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(
    service: str, version: str, environment: str, level: str = "info", stream: TextIO = sys.stdout
) -> logging.Handler:
    """Send every log record of the process, as ECS JSON, to ``stream`` (stdout for containers)."""
    fields: dict[str, Any] = {
        "service": {"name": service, "version": version, "environment": environment},
        "event": {"dataset": f"{service}.log"},
    }
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingEcsFormatter(extra=fields, exclude_fields=["process", "log.original"]))
    handler.addFilter(TraceContext())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []  # propagate to ours instead of uvicorn's text format
        logging.getLogger(name).propagate = True
    logging.getLogger("aiormq").setLevel("WARNING")  # one line per frame at DEBUG
    return handler
    # --8<-- [end:formatter]
