"""Record every span of the test process in memory, to assert on whole traces.

The process gets its tracer provider exactly as a service does (``observe_process``), with
an in-memory exporter in place of OTLP. OpenTelemetry allows one global provider per
process, so the first caller sets it up and every later caller shares it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.observability.setup import observe_process
from shared.settings import ServiceSettings

_recorded: tuple[TracerProvider, InMemorySpanExporter] | None = None


# --8<-- [start:recorder]
class SpanRecorder:
    """The spans finished since :meth:`clear`, after the batch processor flushed them."""

    def __init__(self, provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
        self.provider, self.exporter = provider, exporter

    def clear(self) -> None:
        self.provider.force_flush()
        self.exporter.clear()

    def finished(self) -> Sequence[ReadableSpan]:
        self.provider.force_flush()
        return self.exporter.get_finished_spans()


def span_recorder() -> SpanRecorder:
    global _recorded
    if _recorded is None:
        exporter = InMemorySpanExporter()
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        settings = ServiceSettings(port=1, deployment_environment="test")
        provider = observe_process("tests", settings, exporter=exporter)
        root.handlers, root.level = handlers, level  # keep pytest's log capture
        _recorded = provider, exporter
    return SpanRecorder(*_recorded)
    # --8<-- [end:recorder]
