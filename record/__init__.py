"""The record: the organisation's memory of its post-mortems, in a relational database
(ARCHITECTURE.md, "Two stores"). Temporal runs the process and forgets a closed workflow
after its retention; the record keeps every post-mortem and action with their outcomes,
written only by activities as an idempotent projection (an upsert keyed by workflow id with
a monotonic version: a retried or late write never overwrites newer data).

SQLite under `.data/` for the trial (`make run`), PostgreSQL in production; the schema is
Alembic's (`record/migrations/`), upgraded in place."""
