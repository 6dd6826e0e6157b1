"""single sign-on: OpenID Connect providers and pending sign-ins

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 14:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mspclaw.store.tables

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sso_providers',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('label', sa.String(length=100), nullable=False),
    sa.Column('issuer', sa.String(length=500), nullable=False),
    sa.Column('client_id', sa.String(length=255), nullable=False),
    sa.Column('client_secret', sa.Text(), nullable=False),
    sa.Column('domains', sa.JSON(), nullable=False),
    sa.Column('created_at', mspclaw.store.tables.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('sso_pending',
    sa.Column('state_hash', sa.String(length=64), nullable=False),
    sa.Column('provider', sa.String(length=40), nullable=False),
    sa.Column('browser_hash', sa.String(length=64), nullable=False),
    sa.Column('nonce_hash', sa.String(length=64), nullable=False),
    sa.Column('verifier', sa.Text(), nullable=False),
    sa.Column('expires_at', mspclaw.store.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', mspclaw.store.tables.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('state_hash')
    )
    op.create_index(op.f('ix_sso_pending_expires_at'), 'sso_pending', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_sso_pending_expires_at'), table_name='sso_pending')
    op.drop_table('sso_pending')
    op.drop_table('sso_providers')
