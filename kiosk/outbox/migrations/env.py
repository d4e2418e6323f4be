"""Alembic environment for the outbox database (``outbox.db``, apart from ``kiosk.db``).

The only way in is :func:`kiosk.outbox.db.open_outbox_database`, which hands over an open
connection inside one transaction: a power cut mid-migration leaves the old schema and the
waiting submissions as they were.
"""

from __future__ import annotations

from alembic import context

from kiosk.outbox.models import OutboxBase

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the outbox is migrated by kiosk.outbox.db.open_outbox_database, "
                       "which passes its connection")

# render_as_batch: SQLite cannot ALTER most things. transactional_ddl: the caller's BEGIN
# covers the whole run and SQLite can roll DDL back.
context.configure(connection=connection, target_metadata=OutboxBase.metadata,
                  render_as_batch=True, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
