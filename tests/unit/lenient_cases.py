"""Shared by the lenient-model property tests of Plex and ShipStation: mutate one field of a
realistic payload and parse a page of such records element by element.

:func:`lenient_model_tests` makes the three tests both suites run over their own table of cases."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Set
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from mlconnector.lenient import parse_each

#: what real servers put into optional fields
OPTIONAL_MUTATIONS: tuple[Any, ...] = ("", None, "12", "SOMETHING_NEW_IN_THE_API", 12, "  ")
#: what must make a required identity (text) field unreadable
BAD_IDS: tuple[Any, ...] = ("", None, "   ", {"nested": 1}, [1])
#: what must make a numeric identity (ShipStation ids; ``null`` means "not created yet") unreadable
BAD_NUMERIC_IDS: tuple[Any, ...] = ("", "   ", "abc", {"nested": 1}, "12.5x")
#: what must make a quantity unreadable
BAD_QUANTITIES: tuple[Any, ...] = ("", None, "not-a-number", {"nested": 1}, -1, "nan", "   ")


def optional_fields(model: type[BaseModel], strict: frozenset[str]) -> list[str]:
    """The wire names of every optional field of ``model`` not listed as strict."""
    return sorted(
        info.alias or name
        for name, info in model.model_fields.items()
        if not info.is_required() and (info.alias or name) not in strict
    )


def page_with(payload: dict[str, Any], field: str, value: Any, size: int = 3) -> list[Any]:
    """A page of ``size`` copies of ``payload``; the middle one has ``field`` set to ``value``."""
    page = [copy.deepcopy(payload) for _ in range(size)]
    page[size // 2][field] = value
    return page


def mutation(payload: dict[str, Any], fields: list[str]) -> st.SearchStrategy[tuple[str, Any]]:
    """(field, value): an optional field with a real-world value, or a new field."""
    known = st.tuples(st.sampled_from(fields), st.sampled_from(OPTIONAL_MUTATIONS))
    extra = st.tuples(
        st.text(alphabet="abcdefghijXYZ_", min_size=1, max_size=12).filter(
            lambda k: k not in payload
        ),
        st.sampled_from([*OPTIONAL_MUTATIONS, {"a": [1, 2]}, [1, "x"]]),
    )
    return st.one_of(known, extra)


def assert_page_parses(
    model: type[BaseModel], payload: dict[str, Any], field: str, value: Any
) -> None:
    page = page_with(payload, field, value)
    good, bad = parse_each(model, page, kind=model.__name__, where="test")
    assert bad == [], f"{model.__name__}.{field} = {value!r}: {bad[0].describe()}"
    assert len(good) == len(page)
    mutated = good[1]
    if field not in model.model_fields and not any(
        info.alias == field for info in model.model_fields.values()
    ):
        # an unknown field is kept, as it came
        assert (mutated.model_extra or {}).get(field) == value


def assert_strict_field_fails(
    model: type[BaseModel], payload: dict[str, Any], field: str, value: Any
) -> None:
    page = page_with(payload, field, value)
    good, bad = parse_each(model, page, kind=model.__name__, where="test")
    assert len(good) == len(page) - 1, f"{model.__name__}.{field} = {value!r} was accepted"
    assert len(bad) == 1
    assert bad[0].field.split(".")[0] == field, bad[0].describe()


#: model → (realistic payload, {strict field: values that must make the record unreadable})
Cases = Mapping[type[BaseModel], tuple[dict[str, Any], dict[str, tuple[Any, ...]]]]


def lenient_model_tests(
    cases: Cases, not_mutated: Mapping[type[BaseModel], Set[str]]
) -> tuple[Callable[..., None], Callable[..., None], Callable[..., None]]:
    """The three tests of a table of ``cases`` (``not_mutated``: optional fields left alone on
    purpose), to be bound to test names in the suite's module:

    * every realistic payload parses as it is;
    * a page parses whatever an optional field holds (a property test per model);
    * an unreadable id or quantity fails naming the field (one test per strict value).
    """
    models = sorted(cases, key=lambda m: m.__name__)
    strict_cases = [
        (model, field, value)
        for model, (_payload, strict) in cases.items()
        for field, values in strict.items()
        for value in values
    ]

    def test_every_realistic_payload_parses_as_it_is() -> None:
        for model, (payload, _strict) in cases.items():
            model.model_validate(payload)

    @pytest.mark.parametrize("model", models, ids=lambda m: m.__name__)
    @given(data=st.data())
    def test_a_page_parses_whatever_an_optional_field_holds(
        model: type[BaseModel], data: Any
    ) -> None:
        payload, strict = cases[model]
        fields = optional_fields(model, frozenset(strict) | not_mutated.get(model, frozenset()))
        assert fields, model
        field, value = data.draw(mutation(payload, fields))
        assert_page_parses(model, payload, field, value)

    @pytest.mark.parametrize(
        ("model", "field", "value"),
        strict_cases,
        ids=[f"{m.__name__}.{f}={v!r}" for m, f, v in strict_cases],
    )
    def test_an_unreadable_id_or_quantity_fails_naming_the_field(
        model: type[BaseModel], field: str, value: Any
    ) -> None:
        assert_strict_field_fails(model, cases[model][0], field, value)

    return (
        test_every_realistic_payload_parses_as_it_is,
        test_a_page_parses_whatever_an_optional_field_holds,
        test_an_unreadable_id_or_quantity_fails_naming_the_field,
    )
