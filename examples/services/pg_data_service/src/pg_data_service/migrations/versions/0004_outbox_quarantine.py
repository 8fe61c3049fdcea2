"""The outbox knows each event's order, and can quarantine a row the relay cannot publish.

``order_id`` is generated from the envelope, so existing rows get it too; adding it rewrites the
table under an exclusive lock, short while retention keeps the outbox small.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    order_of_event = sa.Computed("(envelope #>> '{data,order_id}')::bigint", persisted=True)
    op.add_column("outbox", sa.Column("order_id", sa.BigInteger(), order_of_event, nullable=True))
    op.add_column("outbox", sa.Column("quarantined_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("outbox", sa.Column("quarantine_reason", sa.Text(), nullable=True))
    op.create_index(
        "outbox_unsent_by_order",
        "outbox",
        ["order_id", "id"],
        postgresql_where=sa.text("published_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("outbox_unsent_by_order", table_name="outbox")
    op.drop_column("outbox", "quarantine_reason")
    op.drop_column("outbox", "quarantined_at")
    op.drop_column("outbox", "order_id")
