"""console: technicians' TOTP second factor

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 12:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mspclaw.store.tables

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tech_second_factors',
    sa.Column('email', sa.String(length=255), nullable=False),
    sa.Column('secret', sa.Text(), nullable=False),
    sa.Column('recovery_hashes', sa.JSON(), nullable=False),
    sa.Column('last_step', sa.BigInteger(), nullable=False),
    sa.Column('confirmed_at', mspclaw.store.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', mspclaw.store.tables.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('email')
    )


def downgrade() -> None:
    op.drop_table('tech_second_factors')
