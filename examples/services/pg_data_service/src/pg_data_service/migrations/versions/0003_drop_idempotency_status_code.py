"""Idempotency keys keep the first response only: a replayed create always answers 201.

The status code was written and never read.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.drop_column("idempotency_keys", "status_code")


def downgrade() -> None:
    op.add_column("idempotency_keys", sa.Column("status_code", sa.Integer(), nullable=True))
