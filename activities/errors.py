"""The one place integration errors become Temporal's retryable or non-retryable failures."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import ParamSpec, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from config import ConfigError
from integrations.errors import (
    ConfigurationError,
    DeliveryFailed,
    PublishFailed,
    SourceRejected,
    TicketNotFound,
    TrackerRejected,
    TrackerUnavailable,
)
from record.store import RecordUnavailable

P = ParamSpec("P")
R = TypeVar("R")

# Error types as workflows see them in ApplicationError.type: branch on these, never on text.
TRACKER_UNAVAILABLE = "TrackerUnavailable"
TRACKER_REJECTED = "TrackerRejected"
TICKET_NOT_FOUND = "TicketNotFound"
CONFIGURATION = "ConfigurationError"
INVALID_INPUT = "InvalidInput"
PUBLISH_FAILED = "PublishFailed"
DELIVERY_FAILED = "DeliveryFailed"
SOURCE_REJECTED = "SourceRejected"
# A bug or impossible data (a ValueError, an OverflowError, a model that does not validate):
# the same input fails the same way on every retry, so none is made. The workflow shows it
# as a problem and waits for `postmortem retry` after the fix.
UNEXPECTED = "UnexpectedError"
RECORD_UNAVAILABLE = "RecordUnavailable"

# What no retry fixes, in the error types above, for the workflows' retry policies.
NEVER_RETRIED = [CONFIGURATION, INVALID_INPUT, TRACKER_REJECTED, UNEXPECTED]

# Exceptions of these kinds are deterministic in their input: retrying repeats them. Network
# and OS errors (OSError and its kin) stay retryable: the other side may come back.
_DETERMINISTIC = (ArithmeticError, LookupError, TypeError, ValueError, AttributeError)


def to_application_error(exc: Exception) -> ApplicationError | None:
    if isinstance(exc, TrackerUnavailable):
        delay = timedelta(seconds=exc.retry_after) if exc.retry_after else None
        return ApplicationError(str(exc), type=TRACKER_UNAVAILABLE, next_retry_delay=delay)
    if isinstance(exc, SourceRejected):
        return ApplicationError(str(exc), type=SOURCE_REJECTED, non_retryable=True)
    if isinstance(exc, TicketNotFound):
        return ApplicationError(str(exc), type=TICKET_NOT_FOUND, non_retryable=True)
    if isinstance(exc, TrackerRejected):
        return ApplicationError(str(exc), type=TRACKER_REJECTED, non_retryable=True)
    if isinstance(exc, ConfigError | ConfigurationError):
        return ApplicationError(str(exc), type=CONFIGURATION, non_retryable=True)
    if isinstance(exc, PublishFailed):
        return ApplicationError(str(exc), type=PUBLISH_FAILED)
    if isinstance(exc, RecordUnavailable):  # retried: the database comes back
        return ApplicationError(str(exc), type=RECORD_UNAVAILABLE)
    if isinstance(exc, DeliveryFailed):
        return ApplicationError(str(exc), type=DELIVERY_FAILED)
    if isinstance(exc, _DETERMINISTIC) and not isinstance(exc, OSError):
        # Only the kind and the first line: a message may quote the input at length.
        first = str(exc).splitlines()[0][:300] if str(exc) else ""
        return ApplicationError(
            f"unexpected {type(exc).__name__}: {first}", type=UNEXPECTED, non_retryable=True
        )
    return None


def _count_error(kind: str, operation: str) -> None:
    try:
        meter = activity.metric_meter()
    except RuntimeError:  # called outside an activity (a test, the CLI)
        return
    meter.create_counter(
        "postmortem_integration_errors", "Errors from trackers, incident tools, mail, publishers"
    ).add(1, {"kind": kind, "operation": operation})


def maps_integration_errors(fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            mapped = to_application_error(exc)
            if mapped is None:
                raise
            _count_error(mapped.type or "unknown", fn.__name__)
            # `from None`: the cause's traceback may carry request details we never log.
            raise mapped from None

    return wrapper
