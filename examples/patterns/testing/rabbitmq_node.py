"""A RabbitMQ node of the test's own, on free ports, for the faults that would hurt every other test.

A test that stops the broker's application takes it away from every test running beside it
(the suite runs on every core). This one starts a second node next to the shared one, from
the same installation: its own name, ports, data and log folders, no plugins. Starting it
costs a few seconds (an Erlang VM), so only the tests that must restart a broker use it.

Run as root, Debian's scripts run every node and every ``rabbitmqctl`` as the ``rabbitmq``
user, whose home holds the one Erlang cookie they share: the nodes can cluster and the CLI
can reach each of them with no cookie of their own.
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
from reference_system.ports import free_port, port_is_open
from reference_system.waiting import eventually_blocking


@dataclass(frozen=True)
class RabbitNode:
    name: str
    port: int
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def ctl(self, *args: str, timeout: float = 120) -> str:
        """``rabbitmqctl -n <this node> <args>``: its output; raise with it when the command fails."""
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
        return done.stdout

    def start(self) -> None:
        """Boot the node (again, on the data it kept) and return once it is running."""
        subprocess.run(
            ["rabbitmq-server", "-detached"], env=self.env, check=True, timeout=60, capture_output=True
        )
        self.ctl("wait", self.env["RABBITMQ_PID_FILE"])

    def kill(self) -> None:
        """End the node's VM with SIGKILL, as a crash would; return once its listener is gone."""
        pid_file = Path(self.env["RABBITMQ_PID_FILE"])
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        pid_file.unlink()  # that pid is no longer this node's, and may be reused
        eventually_blocking(lambda: not port_is_open(self.url), f"{self.name} down", timeout=10)

    def stop_app(self) -> None:
        """Stop the broker application (connections closed, listener gone), the VM stays."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")
        self.ctl("await_startup")


def node_name() -> str:
    return unique_name("test-") + "@localhost"


# --8<-- [start:node]
@contextmanager
def rabbitmq_node(name: str | None = None, config: str = "") -> Iterator[RabbitNode]:
    """Start a RabbitMQ node of its own on free ports (``config``: more rabbitmq.conf lines); yield it;
    end it and delete its data."""
    if shutil.which("rabbitmq-server") is None or shutil.which("rabbitmqctl") is None:
        raise Unavailable("rabbitmq: a node of its own needs rabbitmq-server and rabbitmqctl on this machine")
    folder = Path(tempfile.mkdtemp(prefix="rabbitmq-node-"))
    folder.chmod(0o777)  # the scripts run the node as the `rabbitmq` user when started by root
    port = free_port()
    (folder / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{port}\n{config}")
    (folder / "enabled_plugins").write_text("[].\n")
    name = name or node_name()
    env = os.environ | {
        "RABBITMQ_NODENAME": name,
        "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(folder / "data"),
        "RABBITMQ_LOG_BASE": str(folder / "log"),
        "RABBITMQ_PID_FILE": str(folder / "node.pid"),
        "RABBITMQ_DIST_PORT": str(free_port()),
    }
    node = RabbitNode(name, port, env)
    try:
        node.start()
        yield node
    finally:
        _end(node, folder / "node.pid")
        shutil.rmtree(folder, ignore_errors=True)
        # --8<-- [end:node]


def _end(node: RabbitNode, pid_file: Path) -> None:
    """SIGKILL the VM, whose data is deleted next anyway; without a pid file, ask the node to stop."""
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            node.ctl("stop", timeout=60)
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
