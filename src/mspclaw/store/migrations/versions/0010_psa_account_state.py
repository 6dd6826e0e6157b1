"""psa_accounts: enabled and last credential test

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 14:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mspclaw.store.tables

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('psa_accounts') as batch:
        batch.add_column(sa.Column('last_test_at', mspclaw.store.tables.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('last_test_ok', sa.Boolean(), nullable=True))
        batch.add_column(sa.Column('last_test_message', sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('psa_accounts') as batch:
        batch.drop_column('last_test_message')
        batch.drop_column('last_test_ok')
        batch.drop_column('last_test_at')
