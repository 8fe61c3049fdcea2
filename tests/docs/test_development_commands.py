"""Every command on the Development commands page runs and does what the page says.

The commands come from the sections of examples/commands/development.sh, the same
text the page shows. Nothing here runs a whole tool again that the run itself or
``.ci/run`` already runs on the same files, and what the run makes anyway is reused:

* ``test`` and ``test-browser`` would start this very suite again: they run with
  ``--collect-only`` on one file or folder, which proves the command line, the
  configuration and the plugins without recursing; ``test-required`` runs for real on
  one file inside the dev-loop run, and ``.ci/run`` runs it, as the page shows it, on
  everything;
* ``build`` and ``build-zensical`` are the run's own site builds (``tests/site_builds.py``),
  ``system`` is the system tests' running system (``tests/system/running.py``), and
  ``serve`` is timed, with a page and an example file edited, by the dev-loop run;
* ``types`` runs ``mypy --strict`` as written on a scratch project with one sound and
  one unsound file, and ``.ci/run`` runs it on examples/ and tests/;
* ``ruff format`` runs on a scratch copy, so the test never rewrites the working tree.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from docs_tooling.snippet_guard import sections_in
from patterns.testing.pytest_fixtures import skip_or_fail
from pg_data_service.migrate import MIGRATIONS
from reference_system.ports import free_port, port_is_open
from reference_system.waiting import eventually_blocking
from tests.site_builds import COMMANDS, ROOT, command, reader_env, run_script
from tests.system.running import System

SECTIONS = sorted(sections_in(COMMANDS))


def run(script: str, cwd: Path = ROOT, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return run_script(script, cwd, timeout)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (
        f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout + result.stderr


def test_every_section_has_a_test() -> None:
    assert set(SECTIONS) == set(EXERCISES), "add an exercise for each new command"


type Exercise = Callable[[Path, pytest.FixtureRequest], None]


def exercise_setup(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    assert "Resolved" in ok(run(command("setup")))


def exercise_build(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    site: Path = request.getfixturevalue("built_site")  # the command, run once for the whole test run
    assert (site / "index.html").is_file()
    assert (site / "llms.txt").is_file()


def exercise_build_zensical(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    site: Path = request.getfixturevalue("zensical_site")
    assert (site / "index.html").is_file()
    assert (site / "llms.txt").is_file()


@pytest.fixture(scope="session")
def dev_loop(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One tiny run of the dev-loop benchmark on this working tree: the page's test command on one
    file, and the page's dev server with one page and one example file edited. (Its build step is
    left out: the run's own site builds are the page's build commands.)"""
    output = tmp_path_factory.mktemp("dev-loop")
    tests = "tests/docs/test_tech_stack.py --no-cov -n 0"
    tiny = f"--here --rounds 1 --skip build --tests '{tests}'"
    ok(run(f"BENCH_OUTPUT_DIR={output} {command('bench-dev-loop')} {tiny}"))
    results = output / "benchmarks" / "results"
    latest: dict[str, Any] = json.loads((results / "dev_loop.json").read_text())["runs"]["latest"]
    return latest | {"table": (results / "dev_loop.md").read_text()}


def exercise_serve(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    measured: dict[str, Any] = request.getfixturevalue("dev_loop")["serve"]
    assert measured["command"].endswith(command("serve").removeprefix("uv run "))
    # The served page showed both edits: the page's own text, and a line added to an example file it
    # includes (which only the guard's hook makes a --dirty rebuild re-render).
    rebuilt = sorted(name for name in measured if name.startswith("rebuild after editing"))
    assert len(rebuilt) == 2
    assert rebuilt[0].startswith("rebuild after editing examples/")
    assert rebuilt[1] == "rebuild after editing one page"
    assert all(measured[name]["runs"] == 1 for name in rebuilt), measured  # each edit was shown in time


def exercise_bench_dev_loop(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    measured: dict[str, Any] = request.getfixturevalue("dev_loop")
    assert measured["suite"]["slowest"][0]["test"].startswith("tests.docs.test_tech_stack::")
    assert "builds" not in measured  # skipped, as asked
    assert "| suite, wall clock |" in measured["table"]


def collect_only(name: str, where: str) -> list[str]:
    """The page's command with ``--collect-only -q`` and a path: the tests it would run there."""
    output = ok(run(f"{command(name)} --collect-only -q {where}"))
    return [line for line in output.splitlines() if "::" in line]


def exercise_test(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    assert collect_only("test", "tests/docs/test_tech_stack.py") == [
        "tests/docs/test_tech_stack.py::test_every_version_on_the_page_is_the_locked_one"
    ]


def exercise_test_required(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    suite: dict[str, Any] = request.getfixturevalue("dev_loop")["suite"]  # the command, on one file
    assert suite["command"].startswith(command("test-required") + " ")
    assert suite["summary"].startswith("1 passed")
    script = (ROOT / ".ci" / "run").read_text()
    assert f"\n{command('test-required')}\n" in script, "CI runs the README's command, as the page shows it"


def exercise_test_browser(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    listed = collect_only("test-browser", "tests/site")
    assert listed
    assert all(line.startswith("tests/site/test_browser.py::") for line in listed), "only browser tests"


def exercise_test_subset(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    assert " passed" in ok(run(command("test-subset")))


def exercise_test_other_services(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    output = ok(run(command("test-other-services")))
    assert "postgres  env" in output
    assert "redis     env" in output
    assert "rabbitmq  env" in output


def exercise_guard(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    assert "snippet guard: 0 problem(s)" in ok(run(command("guard")))


def exercise_lint(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    ok(run(command("lint")))


def scratch_project(tmp_path: Path, files: dict[str, str]) -> Path:
    """This project's tool configuration, and ``files`` under examples/, in a scratch folder (the
    commands run from the project, as the page says, on the scratch folder's files)."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for name, text in files.items():
        (tmp_path / "examples" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "examples" / name).write_text(text)
    (tmp_path / "tests").mkdir(exist_ok=True)
    (tmp_path / "tests" / "test_nothing.py").write_text("")
    return tmp_path


def in_scratch(name: str, project: Path) -> str:
    """The page's command, pointed at the scratch project's examples/ and tests/."""
    return command(name).replace("examples tests", f"{project}/examples {project}/tests")


def exercise_format(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    messy = "import sys\nimport os\nx=[1,2 ,3]\nprint(x, os.sep, sys.argv)\n"
    project = scratch_project(tmp_path, {"messy.py": messy})
    ok(run(in_scratch("format", project)))
    tidy = "import os\nimport sys\n\nx = [1, 2, 3]\nprint(x, os.sep, sys.argv)\n"
    assert (project / "examples" / "messy.py").read_text() == tidy


def exercise_types(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    sound = "def double(x: int) -> int:\n    return 2 * x\n"
    project = scratch_project(tmp_path, {"sound.py": sound})
    assert "Success: no issues found" in ok(run(in_scratch("types", project)))
    (project / "examples" / "unsound.py").write_text("def double(x):\n    return 2 * x\n")
    failed = run(in_scratch("types", project))
    assert failed.returncode == 1
    assert "unsound.py:1: error: Function is missing a type annotation" in failed.stdout
    assert command("types") in (ROOT / ".ci" / "run").read_text(), "CI type-checks examples/ and tests/"


def exercise_services_up(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    output = ok(run(command("services-up")))
    for name in ("postgres", "redis", "rabbitmq", "mongodb"):
        assert any(line.startswith(name) and "MISSING" not in line for line in output.splitlines()), output


def exercise_system(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    # The system tests' own system: the page's command, pointed at scratch stores and free ports.
    # Its fixture sends Ctrl-C at the end of the run and fails unless every service stopped and
    # the command exited 0.
    system: System = request.getfixturevalue("system")
    ports = system.ports
    services = {"pg_data_service": ports.pg, "mongo_data_service": ports.mongo, "api_service": ports.api}
    services |= {"worker_service": ports.worker, "bot_service": ports.bot}
    reported = {line.split()[0] for line in system.started if line.rstrip().endswith("/health/ready")}
    assert reported == set(services), "".join(system.started)
    for name, port in services.items():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=5) as response:
            assert response.status == 200, name


def exercise_migrate(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    ok(run(command("migrate")))


def exercise_revision(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """As written, with the scripts copied first (``MIGRATIONS_DIR``): the draft must not land in
    this repository. The database is at head and the tables as mapped, so the draft is empty."""
    ok(run(command("migrate")))
    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    head = max(path.name for path in (migrations / "versions").glob("0*.py"))
    result = run_script(command("revision"), ROOT, env=reader_env() | {"MIGRATIONS_DIR": str(migrations)})
    drafted = migrations / "versions" / f"{int(head[:4]) + 1:04d}_what_the_change_does.py"
    assert f"drafted {drafted}" in ok(result)
    assert f"down_revision = '{head[:4]}'" in drafted.read_text()


def exercise_run_service(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    port = free_port()
    script = command("run-service").replace(
        "uv run python -m pg_data_service", f"PORT={port} uv run python -m pg_data_service"
    )
    service = subprocess.Popen(["bash", "-c", script], cwd=ROOT, env=reader_env(), start_new_session=True)
    try:
        eventually_blocking(
            lambda: port_is_open(f"http://127.0.0.1:{port}"),
            "pg_data_service listening",
            timeout=60,
            interval=0.2,
            abort=lambda: None if service.poll() is None else f"exited {service.returncode}",
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=5) as response:
            assert response.status == 200
    finally:
        os.killpg(service.pid, signal.SIGTERM)
        service.wait(timeout=30)


def exercise_architecture(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    assert "0 broken" in ok(run(command("architecture")))


def exercise_k8s_render(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if shutil.which("kubectl") is None:
        skip_or_fail("kubectl is not installed (https://kubernetes.io/docs/tasks/tools/)")
    rendered = ok(run(command("k8s-render")))
    assert rendered.count("\nkind: Deployment\n") == 10  # five services, five stores
    assert "kind: NetworkPolicy" in rendered


def exercise_k8s_rules(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    ok(run(f"{command('k8s-rules')} {tmp_path / 'rules.yaml'}"))  # elsewhere: the tree stays as it is
    committed = ROOT / "examples/deploy/kubernetes/base/prometheus-rules.yaml"
    assert (tmp_path / "rules.yaml").read_text() == committed.read_text()


def exercise_bench_http(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    output = ok(run(f"BENCH_SCALE=0.01 BENCH_OUTPUT_DIR={tmp_path} {command('bench-http')}"))
    assert "| pg_data_service | aiohttp | 16 |" in output
    assert (tmp_path / "benchmarks" / "results" / "http_clients.json").is_file()
    assert (tmp_path / "docs" / "assets" / "benchmarks" / "http_clients.png").stat().st_size > 10_000


def exercise_bench_isolation(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    output = ok(run(f"BENCH_ROUNDS=2 {command('bench-isolation')}"))
    assert "| PostgreSQL database | local |" in output


def exercise_bench_events(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    output = ok(run(f"BENCH_SCALE=0.01 BENCH_OUTPUT_DIR={tmp_path} {command('bench-events')}"))
    assert "| publish with confirms, one at a time |" in output
    assert "| outbox relay, rows to confirmed events (100 a batch) |" in output
    assert "| aiormq alone (no aio-pika), 100 in flight |" in output
    assert (tmp_path / "docs" / "assets" / "benchmarks" / "event_publishing.png").stat().st_size > 10_000


def exercise_bench_hop(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if shutil.which("wrk") is None:
        skip_or_fail("wrk is not installed (Debian: apt-get install wrk)")
    output = ok(run(f"BENCH_SCALE=0.05 BENCH_ROUNDS=1 BENCH_OUTPUT_DIR={tmp_path} {command('bench-hop')}"))
    assert "| pg_data_service as deployed |" in output
    results = json.loads((tmp_path / "benchmarks" / "results" / "hop.json").read_text())["results"]
    assert results["minimal"]["ratio"] == 1
    assert results["pg_data_service as deployed"]["req_per_s"] > 0
    assert results["writes"]["pg_data_service as deployed"]["req_per_s"] > 0  # POST /orders, all 201
    assert (tmp_path / "docs" / "assets" / "benchmarks" / "hop.png").stat().st_size > 10_000
    # Bad input: a benchmark loads what it reaches, so it refuses anything past loopback, and names
    # a server that is not running instead of printing a driver's traceback.
    elsewhere = run(f"DATABASE_URL=postgresql://postgres@db.example.org/test {command('bench-hop')}")
    assert elsewhere.returncode == 1
    assert "DATABASE_URL points at 'db.example.org'; benchmarks run against loopback only" in elsewhere.stderr
    down = run(f"DATABASE_URL=postgresql://postgres@127.0.0.1:{free_port()}/test {command('bench-hop')}")
    assert down.returncode == 1
    assert "PostgreSQL is not running at 127.0.0.1:" in down.stderr
    assert "Traceback" not in down.stderr


def exercise_bench_cache(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    output = ok(run(f"BENCH_SCALE=0.01 BENCH_ROUNDS=1 BENCH_OUTPUT_DIR={tmp_path} {command('bench-cache')}"))
    results = json.loads((tmp_path / "benchmarks" / "results" / "user_cache.json").read_text())["results"]
    assert set(results) == {"hit", "miss", "Redis down", "data service underneath"}
    assert results["miss"]["req_per_s"] is None  # misses are timed one at a time only
    assert results["hit"]["req_per_s"] > 0
    assert "| Redis down |" in output
    kept = (tmp_path / "benchmarks" / "results" / "user_cache.md").read_text()
    assert kept.startswith("# The API's user read")


def exercise_bench_footprint(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    output = ok(run(f"BENCH_ROUNDS=1 BENCH_OUTPUT_DIR={tmp_path} {command('bench-footprint')}"))
    assert "| `python -m reference_system` ready (all five) |" in output
    results = json.loads((tmp_path / "benchmarks" / "results" / "footprint.json").read_text())["results"]
    assert results["processes"] >= 6  # the command and its five services, at least
    assert 100 < results["rss_mib"] < 4096


def exercise_bench_observability(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    tiny = f"BENCH_SCALE=0.01 BENCH_ROUNDS=1 BENCH_OUTPUT_DIR={tmp_path}"
    output = ok(run(f"{tiny} {command('bench-observability')}"))
    assert "| observed, all traced |" in output
    measured = json.loads((tmp_path / "benchmarks" / "results" / "observability_overhead.json").read_text())
    assert measured["results"]["bare"]["otlp_batches"] == 0
    assert measured["results"]["observed, all traced"]["otlp_batches"] > 0  # spans really left the service
    plot = tmp_path / "docs" / "assets" / "benchmarks" / "observability_overhead.png"
    assert plot.stat().st_size > 10_000


def exercise_bench_dashboards(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if shutil.which("prometheus") is None:
        skip_or_fail("prometheus is not installed (Debian: apt-get install prometheus)")
    output = ok(run(f"BENCH_SCALE=0.03 BENCH_OUTPUT_DIR={tmp_path} {command('bench-dashboards')}"))
    assert "| POST /users/{id}/orders → 201 |" in output
    pictures = sorted((tmp_path / "docs" / "assets" / "dashboards").glob("*.png"))
    boards = sorted((ROOT / "examples" / "deploy" / "grafana" / "dashboards").glob("*.json"))
    assert [p.stem for p in pictures] == [json.loads(b.read_text())["uid"] for b in boards]
    assert all(p.stat().st_size > 20_000 for p in pictures)


def exercise_bench_rate_limit(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    scaled = f"BENCH_SCALE=0.01 BENCH_ROUNDS=1 BENCH_OUTPUT_DIR={tmp_path} {command('bench-rate-limit')}"
    assert "| spend, over the limit (429) |" in ok(run(scaled))
    assert (tmp_path / "benchmarks" / "results" / "rate_limit.json").is_file()


def exercise_bench_replication(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    scaled = f"BENCH_SCALE=0.01 BENCH_ROUNDS=1 BENCH_OUTPUT_DIR={tmp_path} {command('bench-replication')}"
    output = ok(run(scaled))
    assert "| promoted → first write the service acknowledges |" in output
    assert (tmp_path / "benchmarks" / "results" / "replication.json").is_file()


def exercise_ci(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    assert command("ci") == "bash .ci/run"
    ok(run("bash -n .ci/run"))
    script = (ROOT / ".ci" / "run").read_text()
    for line in [*command("lint").splitlines(), command("types")]:
        assert line in script, f".ci/run does not run {line!r}"


EXERCISES: dict[str, Exercise] = {
    "setup": exercise_setup,
    "serve": exercise_serve,
    "build": exercise_build,
    "build-zensical": exercise_build_zensical,
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
    "revision": exercise_revision,
    "run-service": exercise_run_service,
    "architecture": exercise_architecture,
    "k8s-render": exercise_k8s_render,
    "k8s-rules": exercise_k8s_rules,
    "bench-http": exercise_bench_http,
    "bench-isolation": exercise_bench_isolation,
    "bench-events": exercise_bench_events,
    "bench-observability": exercise_bench_observability,
    "bench-hop": exercise_bench_hop,
    "bench-cache": exercise_bench_cache,
    "bench-rate-limit": exercise_bench_rate_limit,
    "bench-replication": exercise_bench_replication,
    "bench-footprint": exercise_bench_footprint,
    "bench-dashboards": exercise_bench_dashboards,
    "bench-dev-loop": exercise_bench_dev_loop,
}
# Commands that share a fixture run on one xdist worker, so it is made once.
SHARED = {
    "serve": "dev-loop",
    "bench-dev-loop": "dev-loop",
    "test-required": "dev-loop",
    "system": "system",  # the system tests' running system (tests/system/running.py)
    "migrate": "test-database",
    "run-service": "test-database",
    "revision": "test-database",
}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.xdist_group(SHARED[name])) if name in SHARED else name
        for name in SECTIONS
    ],
)
def test_command_on_the_page_works(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    EXERCISES[name](tmp_path, request)
