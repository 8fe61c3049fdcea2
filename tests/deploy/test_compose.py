"""The Compose file and the Dockerfiles, checked without a Docker engine (none runs on this machine).

What ``docker compose config`` would catch is caught by the Compose specification's own JSON schema;
what it would not (a misspelt setting, a wrong port, a missing file) by reading the services' code.
"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from api_service.settings import Settings as ApiSettings
from bot_service.settings import Settings as BotSettings
from mongo_data_service.settings import Settings as MongoSettings
from pg_data_service.settings import Settings as PgSettings
from tests.deploy.conftest import DEPLOY
from worker_service.settings import Settings as WorkerSettings

ROOT = DEPLOY.parents[1]
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
SETTINGS: dict[str, type[BaseSettings]] = {
    "pg_data_service": PgSettings,
    "mongo_data_service": MongoSettings,
    "api_service": ApiSettings,
    "worker_service": WorkerSettings,
    "bot_service": BotSettings,
}


def test_the_file_follows_the_compose_specification() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(DEPLOY / "compose.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("service", SETTINGS)
def test_every_variable_set_for_a_service_is_one_of_its_settings(service: str) -> None:
    accepted = {name.upper() for name in SETTINGS[service].model_fields}
    assert set(COMPOSE["services"][service]["environment"]) <= accepted


@pytest.mark.parametrize("service", SETTINGS)
def test_each_service_image_installs_only_its_own_package_and_runs_it(service: str) -> None:
    build = COMPOSE["services"][service]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    assert build["args"] == {"SERVICE": service, "PORT": COMPOSE["services"][service]["environment"]["PORT"]}
    # the lock file holds everything the image's `uv sync --locked --package` needs
    exported = subprocess.run(
        ["uv", "export", "--locked", "--no-dev", "--package", service, "--no-hashes"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert exported.returncode == 0, exported.stderr
    assert ("sqlalchemy==" in exported.stdout) == (service == "pg_data_service")


def test_the_dockerfile_installs_exposes_and_runs_the_service_it_is_given() -> None:
    text = DOCKERFILE.read_text()
    assert 'uv sync --locked --no-dev --no-editable --package "$SERVICE"\n' in text
    assert "ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 HOST=0.0.0.0 SERVICE=${SERVICE}\n" in text
    assert 'CMD ["sh", "-c", "exec python -m \\"$SERVICE\\""]' in text
    assert "EXPOSE ${PORT}\n" in text
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.MULTILINE):
        for path in source.split():
            assert (ROOT / path).exists(), path


def test_the_image_keeps_one_venv_path_caches_its_dependencies_and_pins_its_base() -> None:
    text = DOCKERFILE.read_text()
    # The venv is built where it runs: console scripts' shebangs name /app/.venv/bin/python.
    assert "WORKDIR /app\n" in text
    assert "COPY --from=build /app/.venv /app/.venv\n" in text
    # Third-party packages in a layer that only the lock file invalidates, before the code is copied.
    assert text.index("--no-install-workspace") < text.index("COPY examples ./examples")
    bases = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(bases) == 2
    for base in bases:  # a patch release of a named Debian: a rebuild next month gets the same Python
        assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-[a-z]+", base), base


def test_the_build_context_leaves_out_the_venv_git_and_secrets_and_keeps_what_the_image_copies() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip()[:1] not in {"", "#"}
    }
    assert {".git", ".venv", "**/.venv", "**/__pycache__", "**/.env"} <= ignored
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE.read_text(), re.MULTILINE):
        for path in source.split():
            assert path not in ignored, path
            assert path.split("/")[0] not in ignored, path


def test_prometheus_scrapes_each_service_where_compose_runs_it() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    for job in config["scrape_configs"]:
        [target] = job["static_configs"][0]["targets"]
        host, port = target.split(":")
        assert host in COMPOSE["services"]
        if host in SETTINGS:
            assert COMPOSE["services"][host]["environment"]["PORT"] == port
            # /metrics answers only a bearer of METRICS_TOKEN: Prometheus reads it from the secret
            assert job["authorization"] == {"credentials_file": "/run/secrets/metrics_token"}
            assert (
                COMPOSE["services"][host]["environment"]["METRICS_TOKEN"]
                == "${METRICS_TOKEN:?set METRICS_TOKEN}"
            )
    assert COMPOSE["services"]["prometheus"]["secrets"] == ["metrics_token"]
    assert COMPOSE["secrets"]["metrics_token"] == {"environment": "METRICS_TOKEN"}


def test_every_file_mounted_from_here_exists() -> None:
    for service in COMPOSE["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), source


def test_traces_go_to_jaegers_otlp_http_port() -> None:
    for service in SETTINGS:
        assert (
            COMPOSE["services"][service]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
        )
    jaeger = COMPOSE["services"]["jaeger"]
    assert jaeger["image"].startswith(
        "jaegertracing/jaeger:2."
    )  # v1 (all-in-one) has reached its end of life
    assert "--set=receivers.otlp.protocols.http.endpoint=0.0.0.0:4318" in jaeger["command"]


def test_business_services_start_once_the_data_services_are_ready() -> None:
    for service in SETTINGS:
        port = COMPOSE["services"][service]["environment"]["PORT"]
        check = " ".join(COMPOSE["services"][service]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/health/ready" in check, service
    for service in ("api_service", "worker_service", "bot_service"):
        depends = COMPOSE["services"][service]["depends_on"]
        for data in ("pg_data_service", "mongo_data_service"):
            assert depends[data] == {"condition": "service_healthy"}, (service, data)


def test_a_region_shown_on_a_page_defines_every_alias_it_uses() -> None:
    """A reader copies one region: an alias (``*name``) whose anchor is outside it breaks the copy."""
    text = (DEPLOY / "compose.yaml").read_text()
    for name in re.findall(r"# --8<-- \[start:([\w-]+)\]", text):
        region = text.split(f"# --8<-- [start:{name}]")[1].split(f"# --8<-- [end:{name}]")[0]
        defined = set(re.findall(r"&([\w-]+)", region))
        assert set(re.findall(r"\*([\w-]+)", region)) <= defined, name


def test_only_the_api_and_grafana_are_published_and_every_secret_comes_from_the_environment() -> None:
    published = {name for name, service in COMPOSE["services"].items() if service.get("ports")}
    assert published == {"api_service", "grafana"}
    text = (DEPLOY / "compose.yaml").read_text()
    assert "guest" not in text  # RabbitMQ's user is RABBITMQ_USER
    assert COMPOSE["services"]["elasticsearch"]["environment"]["xpack.security.enabled"] == "true"
    assert COMPOSE["services"]["grafana"]["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    for variable in (
        "RABBITMQ_PASSWORD",
        "ELASTIC_PASSWORD",
        "KIBANA_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
        "JWT_KEY",
        "METRICS_TOKEN",
        "POSTGRES_PASSWORD",
    ):
        assert f"${{{variable}:?set {variable}}}" in text  # required: no default to forget
