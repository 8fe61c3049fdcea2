"""A RabbitMQ node of the test's own, on free ports, for the faults that would hurt every other test.

A test that stops the broker's application takes it away from every test running beside it
(the suite runs on every core). This one starts a second node next to the shared one, from
the same installation: its own name, ports, data and log folders, no plugins. Starting it
costs a few seconds (an Erlang VM), so only the tests that must restart a broker use it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from patterns.testing.service_resolution import Unavailable
from patterns.testing.urls import unique_name
from reference_system.ports import free_port


@dataclass(frozen=True)
class RabbitNode:
    name: str
    url: str
    env: dict[str, str]

    def ctl(self, *args: str, timeout: float = 120) -> None:
        """``rabbitmqctl -n <this node> <args>``; raise with its output when it fails."""
        done = subprocess.run(
            ["rabbitmqctl", "-n", self.name, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {self.name}: {done.stdout}{done.stderr}")

    def stop_app(self) -> None:
        """Stop the broker application (connections closed, listener gone), the VM stays."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")
        self.ctl("await_startup")


# --8<-- [start:node]
@contextmanager
def rabbitmq_node() -> Iterator[RabbitNode]:
    """Start a RabbitMQ node of its own on free ports; yield it; stop it and delete its data."""
    if shutil.which("rabbitmq-server") is None or shutil.which("rabbitmqctl") is None:
        raise Unavailable("rabbitmq: a node of its own needs rabbitmq-server and rabbitmqctl on this machine")
    folder = Path(tempfile.mkdtemp(prefix="rabbitmq-node-"))
    folder.chmod(0o777)  # the scripts run the node as the `rabbitmq` user when started by root
    port = free_port()
    (folder / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{port}\n")
    (folder / "enabled_plugins").write_text("[].\n")
    name = unique_name("test-") + "@localhost"
    env = os.environ | {
        "RABBITMQ_NODENAME": name,
        "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(folder / "data"),
        "RABBITMQ_LOG_BASE": str(folder / "log"),
        "RABBITMQ_PID_FILE": str(folder / "node.pid"),
        "RABBITMQ_DIST_PORT": str(free_port()),
    }
    node = RabbitNode(name, f"amqp://guest:guest@127.0.0.1:{port}/", env)
    try:
        subprocess.run(["rabbitmq-server", "-detached"], env=env, check=True, timeout=60, capture_output=True)
        node.ctl("wait", str(folder / "node.pid"))
        yield node
    finally:
        _stop(node, folder / "node.pid")
        shutil.rmtree(folder, ignore_errors=True)
        # --8<-- [end:node]


def _stop(node: RabbitNode, pid_file: Path) -> None:
    """``rabbitmqctl stop``; where the node never answered, end its VM by pid."""
    try:
        node.ctl("stop", timeout=60)
    except (RuntimeError, subprocess.TimeoutExpired):
        if pid_file.is_file():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
