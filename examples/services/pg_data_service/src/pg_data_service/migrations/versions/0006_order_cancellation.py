"""A cancelled order says why: ``orders.cancellation_reason``, set when and only when cancelled.

Drafted by ``python -m pg_data_service.migrate revision "order cancellation"`` (the
``add_column`` and its ``drop_column``), then finished by hand: autogenerate sees neither a
backfill nor a CHECK constraint.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


# --8<-- [start:upgrade]
def upgrade() -> None:
    op.add_column("orders", sa.Column("cancellation_reason", sa.String(length=32), nullable=True))
    # Orders cancelled before this revision were cancelled by an operator (PATCH /orders/{id}).
    op.execute("UPDATE orders SET cancellation_reason = 'support' WHERE status = 'cancelled'")
    # NOT VALID, then VALIDATE after a commit: adding a checked constraint would hold ACCESS EXCLUSIVE
    # (no reads, no writes) for the whole scan; VALIDATE scans under SHARE UPDATE EXCLUSIVE, which
    # lets both go on. The commit matters: a lock is held until the end of its transaction.
    op.execute(
        "ALTER TABLE orders ADD CONSTRAINT orders_cancelled_has_reason "
        "CHECK ((status = 'cancelled') = (cancellation_reason IS NOT NULL)) NOT VALID"
    )
    with op.get_context().autocommit_block():  # commits what came before, then runs on its own
        op.execute("ALTER TABLE orders VALIDATE CONSTRAINT orders_cancelled_has_reason")


def downgrade() -> None:
    op.drop_constraint("orders_cancelled_has_reason", "orders", type_="check")
    op.drop_column("orders", "cancellation_reason")
    # --8<-- [end:upgrade]
