"""Loopback ports: a free one to listen on, and whether something listens at a URL."""

from __future__ import annotations

import socket
import subprocess
from typing import Any
from urllib.parse import urlsplit

from reference_system.waiting import eventually_blocking


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_open(url: str, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections at the URL's host and port."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout):
            return True
    except OSError:
        return False


def wait_for_port(url: str, process: subprocess.Popen[Any], timeout: float = 20.0) -> None:
    """Wait until ``url`` accepts connections; stop at once if ``process`` exits first."""

    def exited() -> str | None:
        return None if process.poll() is None else f"{process.args!r} exited with {process.returncode}"

    eventually_blocking(
        lambda: port_is_open(url, timeout=0.2),
        f"{process.args!r} listening at {url}",
        timeout=timeout,
        abort=exited,
    )
