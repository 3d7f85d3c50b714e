"""Reading what real servers send: lenient on optional values, strict on identity and quantities.

Real Plex and ShipStation payloads carry ``""`` and ``null`` for absent values, numbers as
strings, values of enums the docs do not list and fields nobody documented. The models here
accept all of that for *optional* fields (:data:`Opt`); an identity (:data:`Ident`) or a
quantity (:data:`Quantity`) that cannot be read is an error naming the field. A list read from a
server is parsed element by element (:func:`parse_each`), so one unreadable record is reported
and the others are kept.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

from mlconnector.errors import SkipRecordError

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

#: how much of an unreadable value is kept for the operator (values are remote data, not secrets)
EXCERPT_LIMIT = 80


def _optional(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """An optional value: ``null`` and any wire scalar of the wrong shape read as ``None``.

    Errors inside a nested record or list still count: a shipment item with an unreadable
    quantity makes the shipment unreadable rather than silently losing the item. A Python
    object of the wrong kind (a naive ``datetime`` built by our own code) is a bug and is raised.
    """
    if value is None:
        return None
    try:
        return handler(value)
    except ValidationError:
        if isinstance(value, str | int | float | bool):
            return None
        raise


#: An optional field: ``""``, ``null``, ``"12"`` or an unknown value never make a record unreadable.
#: Text keeps what was sent (``""`` stays ``""``, an unknown status stays its text); other types
#: read an unparseable scalar as ``None``.
Opt = Annotated[T | None, WrapValidator(_optional)]

#: An identity field: a non-blank string (a number is read as its text).
Ident = Annotated[str, StringConstraints(min_length=1, pattern=r"\S")]


def _finite_non_negative(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError("a quantity must be a finite number ≥ 0")
    return value


#: A quantity: a number (or a numeric string such as ``"12"``), finite and ≥ 0; ``""``, ``null``
#: and text are errors naming the field.
Quantity = Annotated[float, AfterValidator(_finite_non_negative)]


def value_excerpt(value: Any, limit: int = EXCERPT_LIMIT) -> str:
    """A short ``repr`` of a remote value, for quarantine rows and messages."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _field_path(loc: Sequence[int | str]) -> str:
    # Union members show up in ``loc`` as type names (``'int'``, ``'list[OrderItem]'``): drop them.
    parts = [str(p) for p in loc if not (isinstance(p, str) and ("[" in p or p in _TYPE_TAGS))]
    return ".".join(parts) or "(record)"


_TYPE_TAGS = frozenset(
    {"int", "float", "str", "bool", "datetime", "date", "none", "function-wrap", "function-after"}
)


@dataclass(frozen=True)
class Unreadable:
    """One record of a server's answer that could not be read, and why."""

    kind: str  # e.g. "Plex OrderLine", "ShipStation shipment"
    #: the record's id as sent, or ``#<digest of the record>`` when even that is unreadable (the
    #: same record read twice, in a list or on its own, gets the same digest)
    record_id: str
    field: str  # the first offending field, dotted (``shipmentItems.0.quantity``)
    value: str  # excerpt of the offending value
    error: str  # pydantic's message for it
    where: str = ""  # the request that answered it
    #: a few ids the record names (e.g. a container's ``partId``), to tell what it belongs to
    refs: tuple[tuple[str, str], ...] = ()

    def ref(self, key: str) -> str | None:
        """The value of ``key`` in :attr:`refs`, if the record named it."""
        return dict(self.refs).get(key)

    def describe(self) -> str:
        """``Plex OrderLine L-1: field lineNumber = {'x': 1}: Input should be …``."""
        place = f" (from {self.where})" if self.where else ""
        return (
            f"{self.kind} {self.record_id}{place}: field {self.field} = {self.value}: {self.error}"
        )


def _scalar(raw: Any, key: str) -> str | None:
    candidate = raw.get(key) if isinstance(raw, dict) else None
    if isinstance(candidate, str | int) and not isinstance(candidate, bool) and str(candidate):
        return str(candidate).strip() or None
    return None


def _fingerprint(raw: Any) -> str:
    text = json.dumps(raw, sort_keys=True, default=str)
    return "#" + hashlib.sha256(text.encode()).hexdigest()[:12]


def identity_keys(model: type[BaseModel]) -> tuple[str, ...]:
    """The wire names of a model's required fields (its identity), in declaration order."""
    return tuple(
        info.alias or name for name, info in model.model_fields.items() if info.is_required()
    )


def unreadable_from(
    exc: ValidationError,
    raw: Any,
    *,
    kind: str,
    id_keys: Sequence[str],
    where: str,
    ref_keys: Sequence[str] = (),
) -> Unreadable:
    """The :class:`Unreadable` for one record whose validation failed."""
    first = exc.errors(include_url=False)[0]
    record_id = next((v for key in id_keys if (v := _scalar(raw, key))), None)
    refs = tuple((key, v) for key in ref_keys if (v := _scalar(raw, key)))
    return Unreadable(
        kind=kind,
        record_id=record_id or _fingerprint(raw),
        field=_field_path(first.get("loc", ())),
        value=value_excerpt(first.get("input")),
        error=str(first.get("msg", "invalid")),
        where=where,
        refs=refs,
    )


class UnreadableRecordError(SkipRecordError):
    """A record of a server's answer cannot be read; it is quarantined, the others go on."""

    def __init__(self, problems: Sequence[Unreadable], *, hint: str | None = None) -> None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(
            f"cannot read {first.describe()}{more}",
            record=f"{first.kind} {first.record_id}",
            body_excerpt=first.value,
            hint=hint or what_to_do(first),
        )
        self.problems = list(problems)


def what_to_do(problem: Unreadable) -> str:
    """The operator's next step for an unreadable record."""
    return (
        f"correct {problem.field} of {problem.kind} {problem.record_id} in the source system; "
        "the connector retries it on every pass until it reads (or dismiss it with "
        "'mlconnector quarantine dismiss')"
    )


def parse_each(
    model: type[M],
    items: Iterable[Any],
    *,
    kind: str,
    where: str,
    id_keys: Sequence[str] | None = None,
    ref_keys: Sequence[str] = (),
) -> tuple[list[M], list[Unreadable]]:
    """Validate each item on its own: the readable records, and what could not be read.

    ``id_keys`` (default: the model's required fields) name the record in the report.
    """
    keys = identity_keys(model) if id_keys is None else id_keys
    good: list[M] = []
    bad: list[Unreadable] = []
    for raw in items:
        try:
            good.append(model.model_validate(raw))
        except ValidationError as exc:
            bad.append(
                unreadable_from(exc, raw, kind=kind, id_keys=keys, where=where, ref_keys=ref_keys)
            )
    return good, bad
