"""One call per process: every service is observed the same way, whether it serves HTTP or not.

A FastAPI service also calls :func:`shared.observability.http_server.observe_app` on its app.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

from shared.observability.logs import configure_logging
from shared.observability.tracing import instrument_libraries, tracer_provider
from shared.settings import ServiceSettings


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


def _version(service: str) -> str:
    try:
        return version(service.replace("_", "-"))
    except PackageNotFoundError:  # not installed as a package: a test process, a script
        return "0+unknown"
