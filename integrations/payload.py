"""Reading a vendor's JSON defensively: a field may be missing, null or of another type."""

from __future__ import annotations

from typing import Any


def items(value: Any) -> list[Any]:
    """A JSON array's elements; anything else (null, a number, an object) holds none."""
    return value if isinstance(value, list) else []


def obj(value: Any) -> dict[str, Any]:
    """A JSON object's fields; anything else (null, a list, a string) holds none."""
    return value if isinstance(value, dict) else {}
