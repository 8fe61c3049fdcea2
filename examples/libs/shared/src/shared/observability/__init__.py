"""Metrics, traces and logs, set up the same way in every service.

* :mod:`shared.observability.metrics`: Prometheus data-client, cache and business counters;
* :mod:`shared.observability.tracing`: the OpenTelemetry SDK (resource, sampler, OTLP export),
  instrumentation of the client libraries a service installed, and trace context carried
  through HTTP and AMQP headers;
* :mod:`shared.observability.logs`: ECS JSON logs carrying ``trace.id``, ``span.id``, the service
  name and the request id, with tokens redacted;
* :mod:`shared.observability.setup`: one call per process;
* :mod:`shared.observability.http_server`: one call per FastAPI app (RED metrics per route
  template, ``/metrics``, request ids, server spans); the only module here that needs the
  ``server`` extra.
"""
