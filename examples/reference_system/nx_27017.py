"""nx-27017, a MongoDB wire-protocol server, for a machine with no MongoDB.

The real PyMongo driver talks to it as to MongoDB; ``python -m reference_system`` starts it
when nothing listens on 127.0.0.1:27017, and the tests fall back to it last.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from reference_system.ports import free_port, wait_for_port


class NotInstalled(RuntimeError):
    """The nx-27017 command is not on this machine."""


# --8<-- [start:nx-27017]
def start_nx_27017(stack: ExitStack) -> str:
    """Start the nx-27017 MongoDB wire-protocol server on a free port; stop it with ``stack``."""
    server = shutil.which("nx-27017") or str(Path(sys.executable).with_name("nx-27017"))
    if not Path(server).exists():
        raise NotInstalled("mongodb: nx-27017 is not installed (uv sync installs it)")
    data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nx-27017-")))
    port = free_port()
    arguments = ["--data-dir", str(data), "--port", str(port)]
    arguments += ["--pid-file", str(data / "pid"), "--log-file", str(data / "log")]
    process = subprocess.Popen(
        [server, *arguments],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stack.callback(_stop, process)
    url = f"mongodb://127.0.0.1:{port}/"
    wait_for_port(url, process)
    return url
    # --8<-- [end:nx-27017]


def _stop(process: subprocess.Popen[Any]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
