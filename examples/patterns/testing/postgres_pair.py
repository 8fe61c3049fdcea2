"""A PostgreSQL primary and a streaming standby of the test's own, for failover tests.

The shared server must not be stopped (every other test uses it), and it has no replication
entry in its ``pg_hba.conf``. This makes two clusters from the same installation, on free
ports, in a temporary folder: ``initdb`` for the primary, ``pg_basebackup -R`` for the standby
(which writes its ``primary_conninfo`` and ``standby.signal``), ``pg_ctl`` to start, crash and
promote. A cluster costs about a second to make. ``initdb`` refuses to run as root, so as root
every command runs as the ``postgres`` user.
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
from reference_system.ports import free_port


def binaries() -> Path:
    """The folder of ``initdb``, ``pg_ctl`` and ``pg_basebackup``: where the ``initdb`` on PATH really
    is (a link to it is not that folder), or Debian's newest."""
    if found := shutil.which("initdb"):
        return Path(found).resolve().parent
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not debian:
        raise Unavailable("PostgreSQL's initdb is not installed (Debian: apt-get install postgresql)")
    return debian[-1].parent


@dataclass(frozen=True)
class Cluster:
    data: Path
    port: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


@dataclass(frozen=True)
class PostgresPair:
    primary: Cluster
    standby: Cluster
    bin: Path
    as_postgres: tuple[str, ...]

    def url(self, database: str = "postgres", standby_first: bool = False) -> str:
        """Both servers in one URL (libpq's form): the driver tries them in order and keeps the
        first that accepts writes, so after a failover a new connection finds the new primary."""
        ports = (
            (self.standby.port, self.primary.port)
            if standby_first
            else (self.primary.port, self.standby.port)
        )
        hosts = ",".join(f"127.0.0.1:{port}" for port in ports)
        return f"postgresql://postgres@{hosts}/{database}?target_session_attrs=read-write"

    def ctl(self, cluster: Cluster, *args: str) -> None:
        pg_ctl = [*self.as_postgres, str(self.bin / "pg_ctl"), "-D", str(cluster.data), "-w", "-t", "60"]
        subprocess.run([*pg_ctl, *args], check=True, capture_output=True, timeout=90)

    def crash_primary(self) -> None:
        """Cut the primary's power: SIGKILL to it and every process it started, nothing flushed or
        said to the standby beyond what was already sent."""
        postmaster = _postmaster(self.primary)
        for pid in (*_children(postmaster), postmaster):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def promote_standby(self) -> None:
        """Make the standby the primary (what an operator or Patroni does); returns once it accepts writes."""
        self.ctl(self.standby, "promote")

    def replication(self, paused: bool) -> None:
        """Stop (or resume) the primary's WAL sender: commits go on, the standby receives nothing, as
        over a broken link, while both servers stay up."""
        senders = [
            pid for pid, title in _children(_postmaster(self.primary)).items() if b"walsender" in title
        ]
        if not senders:
            raise RuntimeError("the primary has no WAL sender running")
        for pid in senders:
            os.kill(pid, signal.SIGSTOP if paused else signal.SIGCONT)


def _postmaster(cluster: Cluster) -> int:
    return int((cluster.data / "postmaster.pid").read_text().split()[0])


def _children(parent: int) -> dict[int, bytes]:
    """The processes ``parent`` started, with their titles (Linux: read from /proc)."""
    found = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            ppid = next(line for line in status.read_text().splitlines() if line.startswith("PPid:"))
            if int(ppid.split()[1]) == parent:
                found[int(status.parent.name)] = (status.parent / "cmdline").read_bytes()
    return found


def _configure(data: Path, port: int, settings: dict[str, str]) -> None:
    lines = [f"port = {port}", "listen_addresses = '127.0.0.1'", f"unix_socket_directories = '{data}'"]
    lines += [f"{name} = '{value}'" for name, value in settings.items()]
    with (data / "postgresql.auto.conf").open("a") as conf:
        conf.write("\n".join(lines) + "\n")


@contextmanager
def postgres_pair(synchronous: bool) -> Iterator[PostgresPair]:
    """A running primary and standby; ``synchronous``: a commit returns only once the standby has it."""
    bin_ = binaries()
    as_postgres = ("runuser", "-u", "postgres", "--") if os.geteuid() == 0 else ()
    root = Path(tempfile.mkdtemp(prefix="pg-pair-"))
    if as_postgres:
        shutil.chown(root, "postgres", "postgres")
    pair = PostgresPair(
        Cluster(root / "primary", free_port()), Cluster(root / "standby", free_port()), bin_, as_postgres
    )

    def run(*command: str) -> None:
        subprocess.run([*as_postgres, *command], check=True, capture_output=True, timeout=120)

    try:
        run(
            str(bin_ / "initdb"), "-D", str(pair.primary.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        _configure(
            pair.primary.data, pair.primary.port, {"synchronous_standby_names": "*" if synchronous else ""}
        )
        pair.ctl(pair.primary, "-l", str(root / "primary.log"), "start")
        run(
            str(bin_ / "pg_basebackup"),
            *("-h", "127.0.0.1", "-p", str(pair.primary.port), "-U", "postgres"),
            *("-D", str(pair.standby.data), "-R", "-X", "stream", "--checkpoint=fast"),
        )
        # The copy carries the primary's settings: its own port, and no standby of its own to wait for
        _configure(pair.standby.data, pair.standby.port, {"synchronous_standby_names": ""})
        pair.ctl(pair.standby, "-l", str(root / "standby.log"), "start")
        yield pair
    except subprocess.CalledProcessError as error:
        raise RuntimeError(f"{' '.join(error.cmd)}: {error.stderr.decode(errors='replace')}") from error
    finally:
        for cluster in (pair.standby, pair.primary):
            with contextlib.suppress(subprocess.SubprocessError, FileNotFoundError):
                pair.ctl(cluster, "stop", "-m", "immediate")
        shutil.rmtree(root, ignore_errors=True)
