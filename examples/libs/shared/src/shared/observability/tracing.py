"""OpenTelemetry tracing: one provider per process, context through HTTP and AMQP headers.

Sampling is decided once, at the edge: ``ParentBased(TraceIdRatioBased(ratio))``. A request
that arrives with a sampled parent is always recorded, one without a parent is recorded with
probability ``ratio``. Every hop follows the first one's decision, so a trace is either whole
or absent, never a few disconnected pieces.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Mapping

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

log = logging.getLogger(__name__)


# --8<-- [start:provider]
def tracer_provider(
    service: str, version: str, environment: str, ratio: float, exporter: SpanExporter | None
) -> TracerProvider:
    """A provider naming this service, sampling at the edge, exporting in batches."""
    resource = Resource.create(
        {"service.name": service, "service.version": version, "deployment.environment.name": environment}
    )
    provider = TracerProvider(resource=resource, sampler=ParentBased(TraceIdRatioBased(ratio)))
    if exporter is not None:
        # Batches leave on a background thread: a slow collector never slows a request.
        provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=4096))
    return provider


# Each instrumentor comes with the extra of `shared` that installs its library: a service instruments
# what it installed and never imports what it did not (the API has no aio-pika, the data services no
# aiohttp client).
INSTRUMENTORS = {
    "opentelemetry.instrumentation.aiohttp_client": "AioHttpClientInstrumentor",  # extra: client
    "opentelemetry.instrumentation.redis": "RedisInstrumentor",  # extras: redis, consume
    "opentelemetry.instrumentation.aio_pika": "AioPikaInstrumentor",  # extras: events, consume
}


def instrument_libraries() -> list[str]:
    """Spans for outgoing HTTP (aiohttp), Redis and AMQP, for every client created afterwards.

    Only the instrumentors this service installed are used; returns those instrumented by this call.
    """
    instrumented = []
    for module, name in INSTRUMENTORS.items():
        if not _installed(module):
            continue
        instrumentor = getattr(importlib.import_module(module), name)()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()
            instrumented.append(module)
    return instrumented
    # --8<-- [end:provider]


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # not even its parent (opentelemetry.instrumentation) is installed
        return False


# --8<-- [start:carriers]
def trace_headers() -> dict[str, str]:
    """The current trace context as W3C headers (``traceparent``, ``tracestate``)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def context_from(carrier: Mapping[str, object], where: str) -> context.Context:
    """The context in ``carrier``; a malformed one starts a new trace and is logged, never raised."""
    headers = {key: str(value) for key, value in carrier.items()}
    extracted = propagate.extract(headers)
    if "traceparent" in headers and not trace.get_current_span(extracted).get_span_context().is_valid:
        log.warning(
            "malformed traceparent %r in %s; starting a new trace", headers["traceparent"][:80], where
        )
    return extracted
    # --8<-- [end:carriers]
