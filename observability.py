"""Logging, configured once per process: structlog JSON with Temporal context on every line."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from temporalio import activity, workflow

from domain.models import parse_workflow_id

_SECRET_KEY = re.compile(r"(token|secret|password|passwd|api_key|apikey|authorization)", re.I)


def _temporal_context(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Flatten the SDK's `temporal_workflow` / `temporal_activity` extras, and add the
    activity's info for structlog loggers called inside an activity."""
    for key in ("temporal_workflow", "temporal_activity"):
        info = event.pop(key, None)
        if isinstance(info, dict):
            for name in ("workflow_id", "run_id", "workflow_type", "activity_type", "attempt"):
                if name in info:
                    event.setdefault(name, info[name])
    if activity.in_activity():
        info_ = activity.info()
        event.setdefault("workflow_id", info_.workflow_id)
        event.setdefault("activity_type", info_.activity_type)
        event.setdefault("attempt", info_.attempt)
    # The incident (and action) every line is about, read off the workflow id.
    parsed = parse_workflow_id(str(event.get("workflow_id") or ""))
    if parsed:
        source, incident, action = parsed
        event.setdefault("incident", incident)
        event.setdefault("source", source)
        if action:
            event.setdefault("action", action)
    return event


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if _SECRET_KEY.search(key) and event[key] is not None:
            event[key] = "[redacted]"
    return event


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        _temporal_context,
        _redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(default=str)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _temporal_context,
            _redact,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The context goes into fields, not into the message text.
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False
