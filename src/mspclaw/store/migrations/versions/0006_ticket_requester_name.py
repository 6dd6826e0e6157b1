"""tickets: the contact's name as the PSA holds it, read at intake

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 13:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tickets') as batch:
        batch.add_column(sa.Column('requester_name', sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tickets') as batch:
        batch.drop_column('requester_name')
