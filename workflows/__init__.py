"""Temporal workflows: deterministic, no I/O, no clock but workflow.now()."""
