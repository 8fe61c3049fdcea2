#!/usr/bin/env bash
# Commands for looking at a running system, one section each; the Troubleshooting page shows
# them and tests/docs/test_operations_commands.py runs every one against the local services.
# A catalogue, not a script: run the commands one at a time.
set -euo pipefail

# --8<-- [start:queues]
rabbitmqctl list_queues name type messages messages_ready messages_unacknowledged consumers
# --8<-- [end:queues]

# --8<-- [start:alarms]
rabbitmq-diagnostics alarms
# --8<-- [end:alarms]

# --8<-- [start:connections]
rabbitmqctl list_connections name state channels send_pend
# --8<-- [end:connections]

# --8<-- [start:parking-lot-list]
uv run python -m shared.events.parking_lot list worker.order-placed
# --8<-- [end:parking-lot-list]

# --8<-- [start:parking-lot-replay]
uv run python -m shared.events.parking_lot replay worker.order-placed
# --8<-- [end:parking-lot-replay]

# --8<-- [start:outbox-backlog]
psql postgresql://postgres@127.0.0.1:5432/test -c "SELECT count(*) FILTER (WHERE quarantined_at IS NULL) AS unsent, count(quarantined_at) AS quarantined, min(created_at) AS oldest FROM outbox WHERE published_at IS NULL"
# --8<-- [end:outbox-backlog]

# --8<-- [start:outbox-quarantine-list]
DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test uv run python -m pg_data_service.outbox_quarantine list
# --8<-- [end:outbox-quarantine-list]

# --8<-- [start:outbox-quarantine-replay]
DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test uv run python -m pg_data_service.outbox_quarantine replay --all
# --8<-- [end:outbox-quarantine-replay]

# --8<-- [start:health]
curl -fsS http://127.0.0.1:8001/health/ready
# --8<-- [end:health]
