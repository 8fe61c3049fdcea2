"""Metrics, traces and logs, set up the same way in every service.

* :mod:`shared.observability.metrics`: Prometheus RED metrics per route template, data-client,
  cache and business counters, and the ``/metrics`` route;
* :mod:`shared.observability.tracing`: the OpenTelemetry SDK (resource, sampler, OTLP export),
  library instrumentation, and trace context carried through HTTP and AMQP headers;
* :mod:`shared.observability.logs`: ECS JSON logs carrying ``trace.id``, ``span.id``, the service
  name and the request id, with tokens redacted;
* :mod:`shared.observability.setup`: one call per process and one per FastAPI app.
"""
