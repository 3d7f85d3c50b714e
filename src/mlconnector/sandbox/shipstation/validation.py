"""Validation of createorder(s) payloads: what makes one order fail with a per-order message.

Every failure raises :class:`OrderRejected`, whose message goes back to the caller as the
``errorMessage`` of createorders (or the 400 ``message`` of createorder). Client fields the payload
omits get their blank value here, which is what makes an update a whole-resource replacement.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mlconnector.timezones import TimeFormatError, parse_pacific

from .models import (
    ADVANCED_FIELDS,
    ITEM_FIELDS,
    NESTED_FIELDS,
    ORDER_DATE_FIELDS,
    ORDER_FIELDS,
    ORDER_STATUSES,
    JsonDict,
)

MAX_ORDER_NUMBER = 50


class OrderRejected(ValueError):
    """One order of a createorder(s) call cannot be accepted; the message goes to the caller."""


def parse_v1_datetime(value: object, name: str) -> datetime | None:
    """A client-supplied V1 datetime (Pacific, or with an explicit offset) as aware UTC."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise OrderRejected(f"{name} must be a date-time string, got {value!r}")
    text = value.strip()
    if len(text) == 10:  # a bare date means Pacific midnight
        text += " 00:00:00"
    try:
        return parse_pacific(text)
    except TimeFormatError as exc:
        raise OrderRejected(f"{name} is not a valid date-time: {value!r}") from exc


def validated_fields(payload: JsonDict) -> tuple[JsonDict, dict[str, datetime | None]]:
    """The order-level client fields (blanks for omitted ones) and its parsed dates."""
    number = payload.get("orderNumber")
    if not isinstance(number, str) or not number.strip():
        raise OrderRejected("orderNumber is required")
    if len(number) > MAX_ORDER_NUMBER:
        raise OrderRejected(f"orderNumber {number!r} is longer than {MAX_ORDER_NUMBER} characters")
    status = payload.get("orderStatus")
    if status not in ORDER_STATUSES:
        raise OrderRejected(f"orderStatus {status!r} is not one of {', '.join(ORDER_STATUSES)}")
    if payload.get("orderDate") in (None, ""):
        raise OrderRejected(f"orderDate is required (order {number})")
    dates = {name: parse_v1_datetime(payload.get(name), name) for name in ORDER_DATE_FIELDS}
    fields = {name: payload.get(name, default) for name, default in ORDER_FIELDS.items()}
    for name, keys in NESTED_FIELDS.items():
        value = fields.get(name)
        if value is not None and not isinstance(value, dict):
            raise OrderRejected(f"{name} must be an object")
        if value is not None:  # the service answers with every key of a nested object
            fields[name] = {key: value.get(key) for key in keys} | value
    return fields, dates


def validated_item(raw: Any, index: int) -> JsonDict:
    """One order line's client fields (blanks for omitted ones)."""
    if not isinstance(raw, dict):
        raise OrderRejected(f"items[{index}] must be an object")
    sku = raw.get("sku")
    if not isinstance(sku, str) or not sku.strip():
        raise OrderRejected(f"items[{index}].sku is required")
    line_key = raw.get("lineItemKey")
    if line_key is not None and not isinstance(line_key, str):
        raise OrderRejected(f"items[{index}].lineItemKey must be a string")
    quantity = raw.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise OrderRejected(f"items[{index}].quantity must be a positive whole number")
    return {name: raw.get(name, default) for name, default in ITEM_FIELDS.items()}


def advanced_options(raw: JsonDict) -> JsonDict:
    """``advancedOptions`` with every client field (``storeId`` is handled by the state)."""
    return {name: raw.get(name, default) for name, default in ADVANCED_FIELDS.items()}


def address(raw: Any) -> JsonDict:
    """A copy of an address object (anything else counts as empty)."""
    return dict(raw) if isinstance(raw, dict) else {}
