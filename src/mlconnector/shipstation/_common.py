"""What the V1 and V2 clients share: error-body parsing, frozen-order detection, pagination."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from mlconnector.errors import InvalidResponseError
from mlconnector.lenient import Unreadable, parse_each, unreadable_from

#: A 400 message that says the order is read-only because it shipped or was cancelled. The exact
#: wording is not documented, so this looks for a frozen status next to a refusal.
_FROZEN_STATUS = re.compile(r"(?i)\b(shipped|cancell?ed)\b")
_REFUSAL = re.compile(
    r"(?i)(cannot|can't|can not|could not|unable|not allowed|locked|read-?only"
    r"|not be (updated|modified)|no longer|only .*open|may not|is already)"
)


M = TypeVar("M", bound=BaseModel)


def parse_model(model: type[M], raw: Any, what: str, *, service: str) -> M:
    """Validate one resource from a response; a shape we cannot read is an invalid response."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problem = unreadable_from(exc, raw, kind=f"{service} {what}", id_keys=(), where="")
        raise InvalidResponseError(
            f"{service} returned a {what} the connector cannot read: "
            f"{exc.error_count()} problem(s), first: field {problem.field} = {problem.value}: "
            f"{problem.error}"
        ) from exc


#: the id field of each record kind a flow may quarantine, and the ids it names (to retry it)
ID_KEYS = {
    "shipment": ("shipmentId",),
    "fulfillment": ("fulfillmentId",),
    "order": ("orderId", "orderKey"),
    "inventory level": ("sku",),
}
REF_KEYS = ("orderId", "orderKey", "orderNumber", "sku", "inventory_location_id")


def parse_or_report(
    model: type[M],
    raw: Any,
    what: str,
    *,
    service: str,
    on_unreadable: Callable[[Unreadable], None] | None,
    where: str = "",
) -> M | None:
    """One list element: the record, or ``None`` after reporting it to ``on_unreadable``.

    Without a sink an unreadable element raises :class:`InvalidResponseError` (see
    :func:`parse_model`), as it did before lists were read element by element.
    """
    if on_unreadable is None:
        return parse_model(model, raw, what, service=service)
    good, bad = parse_each(
        model,
        [raw],
        kind=f"ShipStation {what}",
        where=where or f"{service} {what}s",
        id_keys=ID_KEYS.get(what, ()),
        ref_keys=REF_KEYS,
    )
    for problem in bad:
        on_unreadable(problem)
    return good[0] if good else None


def says_frozen(message: str | None) -> bool:
    """True when ShipStation's message says the order is shipped/cancelled and cannot change."""
    if not message:
        return False
    return bool(_FROZEN_STATUS.search(message) and _REFUSAL.search(message))


def error_text(response: httpx.Response) -> str | None:
    """The human message of a V1 (``message`` / ``Message`` + ``ExceptionMessage``) or V2
    (``errors[].message``) error body, or ``None`` when the body has none."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    errors = body.get("errors")
    if isinstance(errors, list):
        parts = []
        for item in errors:
            if isinstance(item, dict) and isinstance(item.get("message"), str):
                code = item.get("error_code")
                parts.append(f"{item['message']} ({code})" if code else item["message"])
        if parts:
            return "; ".join(parts)
    texts = [
        str(body[key])
        for key in ("message", "Message", "ExceptionMessage")
        if isinstance(body.get(key), str) and body[key]
    ]
    # ASP.NET-style bodies repeat a generic Message and put the reason in ExceptionMessage.
    unique = list(dict.fromkeys(texts))
    return ": ".join(unique) if unique else None


def body_request_id(response: httpx.Response) -> str | None:
    """The V2 ``request_id`` in an error body, if any."""
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("request_id"), str):
        return str(body["request_id"])
    return None


class RepeatedPageError(InvalidResponseError):
    """The server answered a page we had already seen: following it would loop forever."""


def _fingerprint(items: list[Any]) -> str:
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()


async def paginate(
    fetch: Callable[[int], Awaitable[Any]],
    *,
    key: str,
    what: str,
    max_pages: int | None = None,
) -> AsyncIterator[list[dict[str, Any]]]:
    """Yield the ``key`` list of page 1, 2, ... until the server's ``pages`` (or an empty page).

    Refuses to loop: a page whose items are identical to an earlier page raises
    :class:`RepeatedPageError` (a server ignoring ``page`` would otherwise be read forever).
    ``max_pages`` stops early, for callers that only want a bounded read.
    """
    seen: set[str] = set()
    page = 1
    while True:
        body = await fetch(page)
        if not isinstance(body, dict) or not isinstance(body.get(key), list):
            raise InvalidResponseError(f"{what}: page {page} has no '{key}' list")
        items: list[dict[str, Any]] = body[key]
        if not items:
            return
        fingerprint = _fingerprint(items)
        if fingerprint in seen:
            raise RepeatedPageError(
                f"{what}: page {page} repeats an earlier page; refusing to loop",
                hint="the server ignored the page parameter; narrow the filters and retry",
            )
        seen.add(fingerprint)
        yield items
        pages = body.get("pages")
        if not isinstance(pages, int) or page >= pages:
            return
        if max_pages is not None and page >= max_pages:
            return
        page += 1
