#!/usr/bin/env bash
# The commands a contributor runs, one section each. The site shows these sections
# on the Development commands page and tests/docs/test_development_commands.py runs
# every one of them, so a command on that page is a command that works.
# This file is a catalogue, not a script: run the commands one at a time.
set -euo pipefail

# --8<-- [start:setup]
uv sync
# --8<-- [end:setup]

# --8<-- [start:serve]
uv run mkdocs serve --dirty
# --8<-- [end:serve]

# --8<-- [start:build]
uv run mkdocs build --strict
# --8<-- [end:build]

# --8<-- [start:build-zensical]
uv run zensical build --strict
# --8<-- [end:build-zensical]

# --8<-- [start:test]
uv run pytest
# --8<-- [end:test]

# --8<-- [start:test-required]
REQUIRE_SERVICES=1 uv run pytest
# --8<-- [end:test-required]

# --8<-- [start:test-subset]
uv run pytest tests/examples/patterns --no-cov -n 0 -q
# --8<-- [end:test-subset]

# --8<-- [start:test-browser]
uv run pytest -m browser --no-cov
# --8<-- [end:test-browser]

# --8<-- [start:test-other-services]
DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
REDIS_URL=redis://127.0.0.1:6379/0 \
RABBITMQ_URL=amqp://guest:guest@127.0.0.1:5672/ \
uv run pytest tests/examples/patterns --no-cov -n 0 -q
# --8<-- [end:test-other-services]

# --8<-- [start:system]
uv run python -m reference_system
# --8<-- [end:system]

# --8<-- [start:migrate]
DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test uv run python -m pg_data_service.migrate
# --8<-- [end:migrate]

# --8<-- [start:revision]
DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
uv run python -m pg_data_service.migrate revision "what the change does"
# --8<-- [end:revision]

# --8<-- [start:run-service]
DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
SERVICE_TOKENS=api=local-api-token-0123456789,bot=local-bot-token-0123456789,worker=local-worker-token-0123 \
uv run python -m pg_data_service
# --8<-- [end:run-service]

# --8<-- [start:architecture]
uv run lint-imports
# --8<-- [end:architecture]

# --8<-- [start:k8s-render]
kubectl kustomize examples/deploy/kubernetes/overlays/local
# --8<-- [end:k8s-render]

# --8<-- [start:k8s-rules]
uv run python examples/deploy/kubernetes/prometheus_rules.py
# --8<-- [end:k8s-rules]

# --8<-- [start:bench-http]
uv run python benchmarks/http_clients.py
# --8<-- [end:bench-http]

# --8<-- [start:bench-isolation]
uv run python benchmarks/isolation_cost.py
# --8<-- [end:bench-isolation]

# --8<-- [start:bench-events]
uv run python benchmarks/event_publishing.py
# --8<-- [end:bench-events]

# --8<-- [start:bench-observability]
uv run python benchmarks/observability_overhead.py
# --8<-- [end:bench-observability]

# --8<-- [start:bench-hop]
uv run python benchmarks/hop.py
# --8<-- [end:bench-hop]

# --8<-- [start:bench-cache]
uv run python benchmarks/user_cache.py
# --8<-- [end:bench-cache]

# --8<-- [start:bench-rate-limit]
uv run python benchmarks/rate_limit.py
# --8<-- [end:bench-rate-limit]

# --8<-- [start:bench-replication]
uv run python benchmarks/replication.py
# --8<-- [end:bench-replication]

# --8<-- [start:bench-footprint]
uv run python benchmarks/footprint.py
# --8<-- [end:bench-footprint]

# --8<-- [start:bench-dashboards]
uv run python benchmarks/dashboards.py
# --8<-- [end:bench-dashboards]

# --8<-- [start:bench-dev-loop]
uv run python benchmarks/dev_loop.py
# --8<-- [end:bench-dev-loop]

# --8<-- [start:guard]
uv run python -m docs_tooling.snippet_guard
# --8<-- [end:guard]

# --8<-- [start:lint]
uv run ruff check examples tests
uv run ruff format --check examples tests
# --8<-- [end:lint]

# --8<-- [start:format]
uv run ruff format examples tests
uv run ruff check --fix examples tests
# --8<-- [end:format]

# --8<-- [start:types]
uv run mypy --strict examples tests
# --8<-- [end:types]

# --8<-- [start:services-up]
uv run python -m patterns.testing.services_up
# --8<-- [end:services-up]

# --8<-- [start:ci]
bash .ci/run
# --8<-- [end:ci]
