"""Property tests of the query-filter rules: only UTC-with-Z date-times pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import QueryParams

from mlconnector.sandbox.plex.errors import PlexApiError
from mlconnector.sandbox.plex.query import PLEX_DATETIME, Filters
from mlconnector.timezones import format_utc_z

instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(instants)
def test_plex_form_round_trips(instant: datetime) -> None:
    parsed = Filters(QueryParams({"d": format_utc_z(instant)})).datetime("d")
    assert parsed == instant


@given(instants, st.integers(min_value=-14, max_value=14).filter(lambda h: h != 0))
def test_any_offset_other_than_z_is_rejected(instant: datetime, hours: int) -> None:
    offset = instant.astimezone(timezone(timedelta(hours=hours)))
    with pytest.raises(PlexApiError) as caught:
        Filters(QueryParams({"d": offset.isoformat()})).datetime("d")
    assert caught.value.code == "ARGUMENT_INVALID"


@given(st.text(max_size=40))
def test_arbitrary_text_is_either_a_z_datetime_or_rejected(value: str) -> None:
    filters = Filters(QueryParams({"d": value}))
    if value == "":
        assert filters.datetime("d") is None  # an empty filter is no filter
    elif PLEX_DATETIME.match(value):
        parsed = filters.datetime("d")
        assert parsed is not None
        assert parsed.tzinfo is UTC
    else:
        with pytest.raises(PlexApiError) as caught:
            filters.datetime("d")
        assert caught.value.status == 400


@given(st.text(min_size=1, max_size=20).filter(lambda k: k not in {"d"}), st.text(max_size=20))
def test_unknown_parameters_are_never_read(name: str, value: str) -> None:
    filters = Filters(QueryParams({name: value}))
    assert filters.datetime("d") is None
    assert filters.uuids("d") == []
