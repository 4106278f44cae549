"""Alembic's environment for the record: always run on a connection the caller gives
(record.store.Record.upgrade), never on a URL of its own."""

from alembic import context

from record.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
