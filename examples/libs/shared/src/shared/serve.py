"""Serve a FastAPI app with uvicorn the way every HTTP service does, and flush traces on the way out."""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider

from shared.settings import ServiceSettings


# --8<-- [start:serve]
def serve(app: FastAPI, settings: ServiceSettings, provider: TracerProvider) -> None:
    """uvicorn on ``settings.host:port`` until SIGTERM or Ctrl-C; then flush the spans still batched.

    uvicorn (0.29 and later) shuts down gracefully, then raises the signal again so the exit
    status says what happened. With SIGTERM's default action that kills the process on the
    spot: no ``finally``, no ``atexit``, and the last batch of spans (up to 5 s) is lost on
    every deploy. Turning the re-raised SIGTERM into ``SystemExit(143)`` keeps the status and
    lets the flush run.
    """
    signal.signal(signal.SIGTERM, _exit_with_status)
    try:
        # No access log: the RED metrics count every request and the traces time them.
        # log_config=None: uvicorn's records go through our ECS handler.
        uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)
    finally:
        provider.shutdown()
        # --8<-- [end:serve]


def _exit_with_status(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)
