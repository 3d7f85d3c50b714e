"""Query-string filters as Plex reads them.

Only the parameters a route asks for are looked at; **every other parameter is ignored without a
word** (a misspelled filter returns the whole table, as on the real service). Parameters a route
does know are validated: date-times must be UTC with ``Z`` (``YYYY-MM-DDThh:mm:ss[.fffffff]Z``),
UUIDs must be UUIDs, else 400 ``ARGUMENT_INVALID``. Array parameters are repeated (``?id=a&id=b``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime as Datetime
from typing import TypeVar

from starlette.datastructures import QueryParams

from mlconnector.sandbox.plex.errors import invalid_argument
from mlconnector.timezones import parse_utc_z

PLEX_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?Z$")

T = TypeVar("T")


class Filters:
    """Typed access to known query parameters."""

    def __init__(self, params: QueryParams) -> None:
        self.params = params

    def text(self, name: str) -> str | None:
        value = self.params.get(name)
        return value if value not in (None, "") else None

    def texts(self, name: str) -> list[str]:
        return [v for v in self.params.getlist(name) if v != ""]

    def uuid(self, name: str) -> str | None:
        value = self.text(name)
        return _uuid(name, value) if value is not None else None

    def uuids(self, name: str) -> list[str]:
        return [_uuid(name, v) for v in self.texts(name)]

    def datetime(self, name: str) -> Datetime | None:
        value = self.text(name)
        return parse_plex_datetime(name, value) if value is not None else None

    def boolean(self, name: str) -> bool | None:
        value = self.text(name)
        if value is None:
            return None
        if value.lower() not in ("true", "false"):
            raise invalid_argument(name, f"'{value}' must be true or false")
        return value.lower() == "true"

    def date_range(self, begin: str, end: str) -> tuple[Datetime | None, Datetime | None]:
        return self.datetime(begin), self.datetime(end)


def parse_plex_datetime(name: str, value: object) -> Datetime:
    """A UTC date-time in Plex's form, else 400 ``ARGUMENT_INVALID`` naming the argument."""
    problem = f"{value!r} must be a UTC date-time like 2026-01-15T12:00:00.0000000Z"
    if not isinstance(value, str) or not PLEX_DATETIME.match(value):
        raise invalid_argument(name, problem)
    try:
        return parse_utc_z(value)
    except ValueError:  # well-formed but impossible, e.g. February 30th
        raise invalid_argument(name, problem) from None


def _uuid(name: str, value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise invalid_argument(name, f"'{value}' is not a valid UUID") from None


def in_range(value: Datetime | None, bounds: tuple[Datetime | None, Datetime | None]) -> bool:
    """Both bounds inclusive; a record without the date never matches a bounded filter."""
    begin, end = bounds
    if begin is None and end is None:
        return True
    if value is None:
        return False
    return (begin is None or value >= begin) and (end is None or value <= end)


def select(items: Iterable[T], *conditions: tuple[object, Callable[[T], bool]]) -> list[T]:
    """Keep items passing every condition whose filter value is set (not ``None``/empty)."""
    active = [test for value, test in conditions if value not in (None, [], "", (None, None))]
    return [item for item in items if all(test(item) for test in active)]
