"""Every command on the Development commands page runs and does what the page says.

The commands come from the sections of examples/commands/development.sh, the same
text the page shows. Three commands would run this very suite again; those are run
with ``--collect-only`` appended, which proves the command line is valid and finds
the tests without recursing. ``ruff format`` runs on a scratch copy so the test
never rewrites the working tree.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from docs_tooling.snippet_guard import read_section, sections_in
from patterns.testing.pytest_fixtures import skip_or_fail
from patterns.testing.service_resolution import free_port, port_is_open

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ROOT / "examples" / "commands" / "development.sh"
SECTIONS = sorted(sections_in(COMMANDS))


def command(name: str) -> str:
    return read_section(COMMANDS, name).strip()


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "REQUIRE_SERVICES"} | {"NO_MKDOCS_2_WARNING": "1"}


def run(script: str, cwd: Path = ROOT, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (
        f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout + result.stderr


def test_every_section_has_a_test() -> None:
    assert set(SECTIONS) == set(EXERCISES), "add an exercise for each new command"


def exercise_setup(tmp_path: Path) -> None:
    assert "Resolved" in ok(run(command("setup")))


def exercise_serve(tmp_path: Path) -> None:
    line = command("serve")
    assert line == "uv run mkdocs serve"
    address = "127.0.0.1:8800"
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 8800)) == 0:  # a developer's own server is running
            address = f"127.0.0.1:{free_port()}"
            line += f" --dev-addr {address}"
    server = subprocess.Popen(
        ["bash", "-c", f"exec {line}"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
            try:
                with urllib.request.urlopen(f"http://{address}/", timeout=2) as response:
                    assert "Improved Hybrid Approach" in response.read().decode()
                    break
            except OSError:
                assert time.monotonic() < deadline, "mkdocs serve did not answer within 90 s"
                time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)


def exercise_build(tmp_path: Path) -> None:
    ok(run(command("build")))
    assert (ROOT / "site" / "index.html").is_file()
    assert (ROOT / "site" / "llms.txt").is_file()


def collect_only(name: str) -> str:
    return ok(run(command(name) + " --collect-only -q"))


def exercise_test(tmp_path: Path) -> None:
    assert " tests collected" in collect_only("test")


def exercise_test_required(tmp_path: Path) -> None:
    assert " tests collected" in collect_only("test-required")


def exercise_test_browser(tmp_path: Path) -> None:
    listed = [line for line in collect_only("test-browser").splitlines() if "::" in line]
    assert listed
    assert all(line.startswith("tests/site/test_browser.py::") for line in listed)


def exercise_test_subset(tmp_path: Path) -> None:
    assert " passed" in ok(run(command("test-subset")))


def exercise_test_other_services(tmp_path: Path) -> None:
    output = ok(run(command("test-other-services")))
    assert "postgres  env" in output
    assert "redis     env" in output
    assert "rabbitmq  env" in output


def exercise_guard(tmp_path: Path) -> None:
    assert "snippet guard: 0 problem(s)" in ok(run(command("guard")))


def exercise_lint(tmp_path: Path) -> None:
    ok(run(command("lint")))


def exercise_format(tmp_path: Path) -> None:
    for name in ("examples", "tests"):
        shutil.copytree(
            ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "artifacts")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    messy = tmp_path / "examples" / "messy.py"
    messy.write_text("import sys\nimport os\nx=[1,2 ,3]\nprint(x, os.sep, sys.argv)\n")
    script = command("format").replace("examples tests", f"{tmp_path}/examples {tmp_path}/tests")
    ok(run(script))
    assert messy.read_text() == "import os\nimport sys\n\nx = [1, 2, 3]\nprint(x, os.sep, sys.argv)\n"


def exercise_types(tmp_path: Path) -> None:
    assert "Success: no issues found" in ok(run(command("types")))


def exercise_services_up(tmp_path: Path) -> None:
    output = ok(run(command("services-up")))
    for name in ("postgres", "redis", "rabbitmq", "mongodb"):
        assert any(line.startswith(name) and "MISSING" not in line for line in output.splitlines()), output


def exercise_system(tmp_path: Path) -> None:
    busy = [port for port in (8000, 8001, 8002, 9101, 9102) if port_is_open(f"http://127.0.0.1:{port}")]
    assert not busy, f"ports {busy} are taken: stop what runs there to test the system command"
    system = subprocess.Popen(
        ["bash", "-c", f"exec {command('system')}"], cwd=ROOT, stdout=subprocess.PIPE, text=True, env=_env()
    )
    try:
        assert system.stdout is not None
        lines = []
        deadline = time.monotonic() + 120
        for line in system.stdout:
            lines.append(line)
            if line.startswith("API: http://127.0.0.1:8000/docs"):
                break
            assert time.monotonic() < deadline, "".join(lines)
        assert any(line.startswith("bot_service") for line in lines), "".join(lines)
        with urllib.request.urlopen("http://127.0.0.1:8000/health/ready", timeout=5) as response:
            assert response.status == 200
        system.send_signal(signal.SIGINT)
        assert system.wait(timeout=60) == 0
    finally:
        system.kill()
        system.wait()


def exercise_migrate(tmp_path: Path) -> None:
    ok(run(command("migrate")))


def exercise_run_service(tmp_path: Path) -> None:
    port = free_port()
    script = command("run-service").replace(
        "uv run python -m pg_data_service", f"PORT={port} uv run python -m pg_data_service"
    )
    service = subprocess.Popen(["bash", "-c", script], cwd=ROOT, env=_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not port_is_open(f"http://127.0.0.1:{port}"):
            assert service.poll() is None, "pg_data_service exited"
            assert time.monotonic() < deadline, "pg_data_service did not listen within 60 s"
            time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=5) as response:
            assert response.status == 200
    finally:
        os.killpg(service.pid, signal.SIGTERM)
        service.wait(timeout=30)


def exercise_architecture(tmp_path: Path) -> None:
    assert "0 broken" in ok(run(command("architecture")))


def exercise_bench_http(tmp_path: Path) -> None:
    output = ok(run(f"BENCH_SCALE=0.01 BENCH_OUTPUT_DIR={tmp_path} {command('bench-http')}"))
    assert "| pg_data_service | aiohttp | 16 |" in output
    assert (tmp_path / "benchmarks" / "results" / "http_clients.json").is_file()
    assert (tmp_path / "docs" / "assets" / "benchmarks" / "http_clients.png").stat().st_size > 10_000


def exercise_bench_isolation(tmp_path: Path) -> None:
    output = ok(run(f"BENCH_ROUNDS=2 {command('bench-isolation')}"))
    assert "| PostgreSQL database | local |" in output


def exercise_bench_events(tmp_path: Path) -> None:
    output = ok(run(f"BENCH_SCALE=0.01 BENCH_OUTPUT_DIR={tmp_path} {command('bench-events')}"))
    assert "| publish with confirms, one at a time |" in output
    assert (tmp_path / "docs" / "assets" / "benchmarks" / "event_publishing.png").stat().st_size > 10_000


def exercise_bench_observability(tmp_path: Path) -> None:
    output = ok(run(f"BENCH_SCALE=0.01 BENCH_OUTPUT_DIR={tmp_path} {command('bench-observability')}"))
    assert "| observed, all traced |" in output
    measured = json.loads((tmp_path / "benchmarks" / "results" / "observability_overhead.json").read_text())
    assert measured["results"]["bare"]["otlp_batches"] == 0
    assert measured["results"]["observed, all traced"]["otlp_batches"] > 0  # spans really left the service
    plot = tmp_path / "docs" / "assets" / "benchmarks" / "observability_overhead.png"
    assert plot.stat().st_size > 10_000


def exercise_bench_dashboards(tmp_path: Path) -> None:
    if shutil.which("prometheus") is None:
        skip_or_fail("prometheus is not installed (Debian: apt-get install prometheus)")
    output = ok(run(f"BENCH_SCALE=0.05 BENCH_OUTPUT_DIR={tmp_path} {command('bench-dashboards')}"))
    assert "| POST /orders → 201 |" in output
    pictures = sorted((tmp_path / "docs" / "assets" / "dashboards").glob("*.png"))
    boards = sorted((ROOT / "examples" / "deploy" / "grafana" / "dashboards").glob("*.json"))
    assert [p.stem for p in pictures] == [json.loads(b.read_text())["uid"] for b in boards]
    assert all(p.stat().st_size > 20_000 for p in pictures)


def exercise_ci(tmp_path: Path) -> None:
    assert command("ci") == "bash .ci/run"
    ok(run("bash -n .ci/run"))
    script = (ROOT / ".ci" / "run").read_text()
    assert "REQUIRE_SERVICES=1 uv run pytest" in script
    for line in [*command("lint").splitlines(), command("types")]:
        assert line in script, f".ci/run does not run {line!r}"


EXERCISES: dict[str, Callable[[Path], None]] = {
    "setup": exercise_setup,
    "serve": exercise_serve,
    "build": exercise_build,
    "test": exercise_test,
    "test-required": exercise_test_required,
    "test-browser": exercise_test_browser,
    "test-subset": exercise_test_subset,
    "test-other-services": exercise_test_other_services,
    "guard": exercise_guard,
    "lint": exercise_lint,
    "format": exercise_format,
    "types": exercise_types,
    "services-up": exercise_services_up,
    "ci": exercise_ci,
    "system": exercise_system,
    "migrate": exercise_migrate,
    "run-service": exercise_run_service,
    "architecture": exercise_architecture,
    "bench-http": exercise_bench_http,
    "bench-isolation": exercise_bench_isolation,
    "bench-events": exercise_bench_events,
    "bench-observability": exercise_bench_observability,
    "bench-dashboards": exercise_bench_dashboards,
}


@pytest.mark.parametrize("name", SECTIONS)
def test_command_on_the_page_works(name: str, tmp_path: Path) -> None:
    EXERCISES[name](tmp_path)
