"""escalations: who took each one and whether it is closed

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 14:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mspclaw.store.tables

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_WHEN = mspclaw.store.tables.UTCDateTime(timezone=True)


def upgrade() -> None:
    # existing escalations are open and unheld; the defaults only fill them, new rows get theirs from the model
    with op.batch_alter_table('escalations') as batch:
        batch.add_column(sa.Column('state', sa.String(length=16), nullable=False, server_default='open'))
        batch.add_column(sa.Column('version', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('held_by', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('held_by_name', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('taken_at', _WHEN, nullable=True))
        batch.add_column(sa.Column('handed_over_by', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('handed_over_at', _WHEN, nullable=True))
        batch.add_column(sa.Column('handover_note', sa.Text(), nullable=True))
        batch.add_column(sa.Column('closed_by', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('closed_at', _WHEN, nullable=True))
        batch.add_column(sa.Column('resolution', sa.Text(), nullable=True))
    with op.batch_alter_table('escalations') as batch:
        batch.alter_column('state', server_default=None)
        batch.alter_column('version', server_default=None)
        batch.create_index(batch.f('ix_escalations_state'), ['state'], unique=False)
        batch.create_index(batch.f('ix_escalations_held_by'), ['held_by'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('escalations') as batch:
        batch.drop_index(batch.f('ix_escalations_held_by'))
        batch.drop_index(batch.f('ix_escalations_state'))
        for column in ('resolution', 'closed_at', 'closed_by', 'handover_note', 'handed_over_at', 'handed_over_by',
                       'taken_at', 'held_by_name', 'held_by', 'version', 'state'):
            batch.drop_column(column)
