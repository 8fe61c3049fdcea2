"""One call per process, one per FastAPI app: every service is observed the same way."""

from __future__ import annotations

import re
import uuid
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.observability.logs import REQUEST_ID, configure_logging
from shared.observability.metrics import RedMetrics, metrics_router
from shared.observability.tracing import context_from, instrument_libraries, tracer_provider
from shared.settings import ServiceSettings

REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
NOT_TRACED = "health/live,health/ready,metrics"


# --8<-- [start:process]
def observe_process(
    service: str, settings: ServiceSettings, exporter: SpanExporter | None = None
) -> TracerProvider:
    """Logs, tracer provider and library instrumentation for this process; call before anything else."""
    release = _version(service)
    configure_logging(service, release, settings.deployment_environment, settings.log_level)
    if exporter is None and settings.otel_exporter_otlp_endpoint is not None:
        endpoint = str(settings.otel_exporter_otlp_endpoint).rstrip("/")
        exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", timeout=5)
    provider = tracer_provider(
        service, release, settings.deployment_environment, settings.otel_traces_sampler_arg, exporter
    )
    trace.set_tracer_provider(provider)
    instrument_libraries()
    return provider
    # --8<-- [end:process]


# --8<-- [start:app]
def observe_app(app: FastAPI) -> None:
    """RED metrics, ``/metrics``, request ids and a server span per request."""
    app.add_middleware(RequestContext)
    app.add_middleware(RedMetrics)
    app.include_router(metrics_router())
    # One span per request: the per-message "http send"/"http receive" spans add nothing a reader of a
    # trace needs and cost CPU (benchmarks/observability_overhead.py measures it).
    FastAPIInstrumentor.instrument_app(app, excluded_urls=NOT_TRACED, exclude_spans=["receive", "send"])


class RequestContext:
    """Take the caller's ``X-Request-ID`` (or make one), log with it, and send it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        if "traceparent" in headers:  # the instrumentation used it; look again only to log a malformed one
            context_from(headers, f"{scope['method']} {scope['path'][:100]}")
        given = headers.get("x-request-id", "")
        request_id = given if REQUEST_ID_PATTERN.fullmatch(given) else uuid.uuid4().hex

        async def with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("X-Request-ID", request_id)
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, with_request_id)
        finally:
            REQUEST_ID.reset(token)
            # --8<-- [end:app]


def _version(service: str) -> str:
    try:
        return version(service.replace("_", "-"))
    except PackageNotFoundError:  # pragma: no cover - every service is an installed package
        return "0+unknown"
