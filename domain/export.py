"""Data leaving the engine as files people open: CSV cells that a spreadsheet would run as
formulas are written as text."""

from __future__ import annotations

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """A text cell starting like a formula (`=HYPERLINK(...)`, `+1+cmd|...`, `@SUM`) gets a
    leading apostrophe, which spreadsheets show as text; numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value
