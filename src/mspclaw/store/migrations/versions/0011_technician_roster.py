"""technician roster: technicians, notification channels and the roster's version in the database

The roster was ``techs.yaml`` in each server's data directory. The tables start empty; the first server or
``mspclaw`` command that opens the upgraded database imports an existing ``techs.yaml`` into them once (channel
webhook URLs sealed by the secret box, which this migration has no key for) and renames the file
``techs.yaml.imported`` (``TechRegistry.adopt_file`` in pipeline/techs.py).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 17:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mspclaw.store.tables

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('technicians',
    sa.Column('email', sa.String(length=255), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('slack_id', sa.String(length=64), nullable=True),
    sa.Column('teams_id', sa.String(length=255), nullable=True),
    sa.Column('clients', sa.JSON(), nullable=False),
    sa.Column('on_duty', sa.JSON(), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('aliases', sa.JSON(), nullable=False),
    sa.Column('updated_at', mspclaw.store.tables.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('email')
    )
    op.create_table('notification_channels',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('clients', sa.JSON(), nullable=False),
    sa.Column('events', sa.JSON(), nullable=False),
    sa.Column('updated_at', mspclaw.store.tables.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    state = op.create_table('roster_state',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('edited_at', mspclaw.store.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('imported_from', sa.String(length=500), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.bulk_insert(state, [{"id": 1, "version": 0, "edited_at": None, "imported_from": None}])


def downgrade() -> None:
    op.drop_table('roster_state')
    op.drop_table('notification_channels')
    op.drop_table('technicians')
