"""Each service installs what its code imports, and nothing of what it does not use.

`shared` is split into extras (client, events, redis, consume, server, ops); a service asks for the
ones it uses. The proof reads the lock, not the development environment (which holds everything):
``uv export --package <service>`` is exactly what the service's image installs, and every
third-party package imported by the service, or by a module of `shared` it reaches, must be in it.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import grimp
import pytest

from shared.observability import tracing

ROOT = Path(__file__).resolve().parents[3]
SERVICES = ("pg_data_service", "mongo_data_service", "api_service", "bot_service", "worker_service")

# What a service must not install: the web stack where nothing serves HTTP, the AMQP client where
# nothing publishes or consumes, Redis where nothing caches or de-duplicates, an HTTP client in the
# data services, which never call another service.
NOT_INSTALLED = {
    "pg_data_service": {"redis", "aiohttp"},
    "mongo_data_service": {"aio-pika", "aiormq", "redis", "aiohttp"},
    "api_service": {"aio-pika", "aiormq"},
    "bot_service": {"fastapi", "starlette", "uvicorn"},
    "worker_service": {"fastapi", "starlette", "uvicorn"},
}


# The first line of an import statement, as grimp reports it: `import a.b` or `from a.b import c, d`.
IMPORT = re.compile(
    r"\s*(?:from\s+(?P<module>[\w.]+)\s+import\s+\(?(?P<names>[\w\s,]*)|import\s+(?P<plain>[\w.]+))"
)


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.cache
def installed_by(service: str) -> frozenset[str]:
    """The distributions the service's image installs, from the lock (``--locked``: it is current)."""
    exported = subprocess.run(
        [
            *("uv", "export", "--locked", "--package", service, "--no-dev", "--no-emit-workspace"),
            *("--no-hashes", "--no-header", "--no-annotate"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert exported.returncode == 0, exported.stderr
    return frozenset(normalized(line.split("==")[0]) for line in exported.stdout.splitlines() if "==" in line)


@functools.cache
def owners() -> Mapping[str, list[str]]:
    """Top-level import name → the distributions that install it."""
    return importlib.metadata.packages_distributions()


@functools.cache
def modules_of(top: str) -> dict[str, str]:
    """Module name → distribution, for a top-level name several distributions share (``opentelemetry``)."""
    found = {}
    for distribution in owners()[top]:
        for file in importlib.metadata.distribution(distribution).files or []:
            if file.suffix == ".py" and file.parts[0] == top:
                parts = file.with_suffix("").parts
                found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = distribution
    return found


def distribution_of(line: str, top: str) -> str:
    """The distribution an import statement needs: the only one installing ``top``, or, in a namespace
    package, the one that holds the imported module (``from opentelemetry import trace``: the API)."""
    if len(owners().get(top, [])) == 1:
        return normalized(owners()[top][0])
    statement = IMPORT.match(line)
    assert statement, f"cannot read the import {line!r}"
    module = statement["module"] or statement["plain"]
    names = [name.split()[0] for name in (statement["names"] or "").split(",") if name.strip()]
    for candidate in (module, *(f"{module}.{name}" for name in names)):
        if candidate in modules_of(top):
            return normalized(modules_of(top)[candidate])
    raise AssertionError(f"no installed distribution provides {line!r}")


@functools.cache
def graph_of(packages: frozenset[str]) -> grimp.ImportGraph:
    return grimp.build_graph(
        *sorted(packages), include_external_packages=True, exclude_type_checking_imports=True, cache_dir=None
    )


def imported_distributions(package: str, *others: str) -> dict[str, set[str]]:
    """Distribution → the imports that need it, for ``package`` and every module of ``shared`` (and of
    ``others``) it reaches, directly or through other modules; imports under ``TYPE_CHECKING`` are left
    out, since they never run."""
    # One graph of all our packages serves every service (built once); a rogue test package gets its own.
    ours = (
        frozenset({"shared", *SERVICES, *others})
        if package in SERVICES
        else frozenset({package, "shared", *others})
    )
    graph = graph_of(ours)
    reached = {m for m in graph.modules if m.split(".")[0] == package}
    reached |= graph.find_upstream_modules(package, as_package=True)
    # Importing a module runs its packages' __init__ first.
    reached |= {".".join(m.split(".")[:n]) for m in set(reached) for n in range(1, m.count(".") + 1)}
    needed: dict[str, set[str]] = {}
    for importer in sorted(m for m in reached if m.split(".")[0] in ours):
        for imported in graph.find_modules_directly_imported_by(importer):
            top = imported.split(".")[0]
            if top in ours or top in sys.stdlib_module_names:
                continue
            for detail in graph.get_import_details(importer=importer, imported=imported):
                where = f"{importer}:{detail['line_number']} {detail['line_contents'].strip()}"
                needed.setdefault(distribution_of(detail["line_contents"], top), set()).add(where)
    return needed


def missing(needed: dict[str, set[str]], installed: Iterable[str]) -> dict[str, list[str]]:
    return {name: sorted(where) for name, where in needed.items() if name not in set(installed)}


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_installs_every_package_its_code_and_shared_code_import(service: str) -> None:
    needed = imported_distributions(service)
    assert {"pydantic", "prometheus-client", "opentelemetry-api"} <= set(needed)
    assert missing(needed, installed_by(service)) == {}


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_installs_nothing_of_what_it_does_not_use(service: str) -> None:
    assert NOT_INSTALLED[service] & installed_by(service) == set()


def test_a_worker_module_importing_the_web_stack_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a worker module that imports FastAPI, directly and through shared's server modules
    package = tmp_path / "rogue_worker"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "status.py").write_text(
        "import fastapi\n\nfrom shared.observability.http_server import observe_app\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    # when its imports are checked against what the worker installs
    gaps = missing(imported_distributions("rogue_worker"), installed_by("worker_service"))
    # then the packages the worker does not install are named, with the lines that need them
    assert "rogue_worker.status:1 import fastapi" in gaps["fastapi"]
    assert any(where.startswith("shared.observability.http_server:") for where in gaps["fastapi"])
    assert "opentelemetry-instrumentation-fastapi" in gaps
    assert "starlette" in gaps


def test_a_library_whose_extra_is_not_installed_is_not_instrumented(monkeypatch: pytest.MonkeyPatch) -> None:
    # given instrumentors of libraries this environment lacks, one even without its parent package
    missing_instrumentors = {
        "opentelemetry.instrumentation.not_installed": "NotInstalledInstrumentor",
        "not_installed_either.instrumentation": "NotInstalledInstrumentor",
    }
    monkeypatch.setattr(tracing, "INSTRUMENTORS", missing_instrumentors)
    # when the process sets up tracing, then nothing is imported and nothing fails
    assert tracing.instrument_libraries() == []
