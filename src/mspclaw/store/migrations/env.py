"""Alembic environment: runs on the connection handed in by :func:`mspclaw.store.db.migrate`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from mspclaw.store.tables import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url or pass a connection to run migrations")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()  # its pooled connection closed now, not whenever the collector finds it
else:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
