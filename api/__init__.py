"""The HTTP API (FastAPI): webhooks in, status out."""
