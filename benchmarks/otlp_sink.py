"""An OTLP/HTTP endpoint that accepts span batches and counts them: ``python otlp_sink.py PORT``.

It stands in for Jaeger in ``observability_overhead.py``, so exporting costs the service
what it costs in production (serialising, a POST per batch) while the sink itself stays
out of the measured process. ``GET /count`` answers the batches and bytes received.
"""

from __future__ import annotations

import sys

from aiohttp import web

received = {"batches": 0, "bytes": 0}


async def export(request: web.Request) -> web.Response:
    received["batches"] += 1
    received["bytes"] += len(await request.read())
    return web.Response(body=b"", content_type="application/x-protobuf")


async def count(request: web.Request) -> web.Response:
    return web.json_response(received)


if __name__ == "__main__":
    app = web.Application()
    app.router.add_post("/v1/traces", export)
    app.router.add_get("/count", count)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
