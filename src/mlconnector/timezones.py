"""Time zone conversion at the edges: ShipStation V1 (US Pacific, no offset), V2 and Plex (UTC).

Inside the connector every datetime is aware and in UTC. Only the V1 boundary sees a naive
datetime, for one line, in :func:`parse_pacific` and :func:`to_pacific_naive`.

DST decisions (deliberate, and tested for every hour 2000-2040):

* **Fall back (the repeated hour, e.g. 01:30 on the first Sunday of November happens twice).**
  A naive Pacific time in that hour is ambiguous. :func:`parse_pacific` takes the *first*
  occurrence (PDT, ``fold=0``) unless told otherwise. For a timestamp read from ShipStation this can
  place a record up to one hour *earlier* than it really was, never later; cursors overlap by two
  hours (DESIGN §1 rule 2) and de-duplicate on (id, modified), so nothing is missed. For an outgoing
  filter, :func:`to_pacific_naive` of an instant in the second occurrence gives the same wall time,
  which ShipStation reads as the first one: a start bound moves an hour earlier (the window
  widens); an end bound too (the window ends early), and the next run's two-hour overlap covers it.
* **Spring forward (the gap, e.g. 02:30 on the second Sunday of March never happens).** A naive time
  in the gap cannot come from a correct clock; we read it with the pre-transition offset (PST), i.e.
  02:30 → 10:30 UTC (= 03:30 PDT), the instant a clock that missed the change would have meant.
  It is later than every real time before the gap (01:59 PST < 02:30), but it coincides with the
  hour after it (02:30 and 03:30 read as the same instant, and 02:30 reads later than 03:00 PDT):
  no reading of an hour that never happened can keep order with both neighbours.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

PACIFIC = ZoneInfo("America/Los_Angeles")

_NAIVE = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}(?::\d{2})?)"
    r"(?:\.(?P<frac>\d{1,7}))?(?P<tz>Z|[+-]\d{2}:?\d{2})?$"
)


class TimeFormatError(ValueError):
    """A timestamp that does not have the form its API promises."""


def _split(value: str) -> tuple[datetime, str | None]:
    match = _NAIVE.match(value.strip())
    if not match:
        raise TimeFormatError(f"not a timestamp: {value!r}")
    time_part = match["time"]
    if len(time_part) == 5:
        time_part += ":00"
    frac = match["frac"] or ""
    micro = int((frac + "000000")[:6]) if frac else 0
    # Round the 7th digit (100 ns) half-up into microseconds.
    if len(frac) == 7 and frac[6] >= "5":
        micro += 1
    try:
        base = datetime.fromisoformat(f"{match['date']}T{time_part}")
    except ValueError as exc:
        raise TimeFormatError(f"not a valid date or time: {value!r}") from exc
    return base + timedelta(microseconds=micro), match["tz"]


def _offset(tz: str) -> timedelta:
    if tz == "Z":
        return timedelta(0)
    sign = -1 if tz[0] == "-" else 1
    digits = tz[1:].replace(":", "")
    return sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))


def pacific_to_utc(naive: datetime, *, fold: int = 0) -> datetime:
    """Attach US Pacific to a naive wall time and convert it to UTC (see the module doc for DST)."""
    if naive.tzinfo is not None:
        raise ValueError("pacific_to_utc takes a naive datetime")
    return naive.replace(tzinfo=PACIFIC, fold=fold).astimezone(UTC)


def parse_pacific(value: str, *, fold: int = 0) -> datetime:
    """Parse a ShipStation V1 timestamp (0-7 fractional digits, no offset) into aware UTC.

    A value that does carry ``Z`` or an offset (newer V1 examples do) is honoured as such.
    """
    naive, tz = _split(value)
    if tz is not None:
        return (naive - _offset(tz)).replace(tzinfo=UTC)
    return pacific_to_utc(naive, fold=fold)


def to_pacific_naive(instant: datetime) -> datetime:
    """An aware instant as naive US Pacific wall time, for the V1 boundary."""
    if instant.tzinfo is None:
        raise ValueError("to_pacific_naive takes an aware datetime")
    return instant.astimezone(PACIFIC).replace(tzinfo=None)


def format_pacific(instant: datetime) -> str:
    """V1 body form: ``2015-07-16T14:00:34.8230000`` (Pacific, 7 fractional digits, no offset)."""
    # isoformat, unlike strftime("%Y"), always writes four year digits.
    return to_pacific_naive(instant).isoformat(timespec="microseconds") + "0"


def format_pacific_filter(instant: datetime) -> str:
    """V1 query-filter form: ``yyyy-mm-dd hh:mm:ss`` in Pacific."""
    return to_pacific_naive(instant).isoformat(sep=" ", timespec="seconds")


def format_pacific_filter_ceil(instant: datetime) -> str:
    """Like :func:`format_pacific_filter`, rounded *up* to the second (inclusive end bound)."""
    if instant.microsecond:
        instant = instant.replace(microsecond=0) + timedelta(seconds=1)
    return format_pacific_filter(instant)


def parse_utc_z(value: str) -> datetime:
    """Parse a Plex timestamp, which must be UTC with a ``Z`` (``YYYY-MM-DDThh:mm:ss.fffffffZ``)."""
    naive, tz = _split(value)
    if tz != "Z":
        raise TimeFormatError(f"Plex timestamps must be UTC with a 'Z': {value!r}")
    return naive.replace(tzinfo=UTC)


def format_utc_z(instant: datetime) -> str:
    """Plex form: ``2026-01-15T12:00:00.0000000Z``."""
    if instant.tzinfo is None:
        raise ValueError("format_utc_z takes an aware datetime")
    utc = instant.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "0Z"


def parse_iso_offset(value: str) -> datetime:
    """Parse a ShipStation V2 timestamp, which carries ``Z`` or an offset; returns aware UTC."""
    naive, tz = _split(value)
    if tz is None:
        raise TimeFormatError(f"V2 timestamps carry an offset: {value!r}")
    return (naive - _offset(tz)).replace(tzinfo=UTC)


def format_iso_utc(instant: datetime) -> str:
    """V2 form: ``2019-03-12T19:24:13.657000Z``."""
    if instant.tzinfo is None:
        raise ValueError("format_iso_utc takes an aware datetime")
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")
