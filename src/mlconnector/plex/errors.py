"""Translation of Plex error answers into the connector's error tree, with operator-facing messages.

Plex Connect answers ``{"code", "message", "errors": [{"code", "message"}]}``. Its 401
``REQUEST_NOT_AUTHENTICATED`` means a bad key *or* an app that is not subscribed to the API product
of that path *or* a PCN not granted to the app (reference §6), so the message names the product.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from mlconnector.errors import (
    AuthenticationError,
    ConnectorError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RemoteValidationError,
)

#: path prefix → (API product in the developer portal, what the Plex user needs to be granted)
PRODUCTS: tuple[tuple[str, str, str], ...] = (
    ("sales/v1/orders", "Sales Orders", "Sales Orders access (view/edit customer orders)"),
    ("sales/v1/releases", "Sales Releases", "Sales Releases access (view/edit releases)"),
    ("mdm/v1/customers", "Customers", "Customers access (view customers and addresses)"),
    ("mdm/v1/parts", "Parts", "Parts access (view parts)"),
    (
        "inventory/v1/inventory-shipping",
        "Inventory Shipments",
        "Inventory Shipments access (create, stage, ship and unship inventory shipments)",
    ),
    (
        "inventory/v1-beta1/inventory-shipping",
        "Inventory Shipments",
        "Inventory Shipments access (create, stage, ship and unship inventory shipments)",
    ),
    (
        "inventory/",
        "Inventory",
        "Inventory Operations Management access (containers, locations, inventory shipments)",
    ),
    (
        "shipping/",
        "Customer Shippers",
        "Customer Shippers access (create, load and ship customer shippers)",
    ),
    ("platform/identity-mappings", "Id Conversion", "Id Conversion API access"),
    ("mdm/v1/tenants", "Common APIs", "Common APIs access"),
)


def product_for(path: str) -> tuple[str, str]:
    """The API product name and the grant a path needs (by its prefix)."""
    clean = path.lstrip("/")
    for prefix, product, grant in PRODUCTS:
        if clean.startswith(prefix) or f"/{prefix}" in f"/{clean}":
            return product, grant
    return "Plex Connect", "access to this API"


def error_body(response: httpx.Response) -> tuple[str | None, str | None, list[str]]:
    """``(code, message, detail messages)`` of a Plex error answer (any part may be missing)."""
    try:
        body: Any = response.json()
    except ValueError:
        return None, None, []
    if not isinstance(body, dict):
        return None, None, []
    details: list[str] = []
    for item in body.get("errors") or []:
        if isinstance(item, dict):
            text = " ".join(str(item[k]) for k in ("code", "message", "field") if item.get(k))
            if text:
                details.append(text)
    code = body.get("code")
    message = body.get("message")
    return (
        str(code) if code is not None else None,
        str(message) if message is not None else None,
        details,
    )


def classify_connect(
    response: httpx.Response,
    *,
    routing: str,
    kwargs: dict[str, Any],
    redact: Callable[[str], str] = str,
) -> ConnectorError | None:
    """A Plex Connect error, or ``None`` to let the base class decide (429, 5xx)."""
    status = response.status_code
    method = response.request.method
    path = response.request.url.path
    product, grant = product_for(path)
    code, message, details = error_body(response)
    said = "; ".join(x for x in [f"{code}: {message}" if code else message, *details] if x)
    said = redact(said or response.reason_phrase)
    if status == 401:
        return AuthenticationError(
            f"Plex did not authenticate {method} {path} ({product}): {said}. The app may not "
            f"be subscribed to the '{product}' API product, or {routing} is not granted to the "
            "app, or the key/token is wrong or expired",
            hint=(
                f"in developers.plex.com → My Apps, add the '{product}' API product to the app "
                f"and have the Plex administrator grant {routing}; if other products work, the "
                "key is fine and the subscription is missing"
            ),
            **kwargs,
        )
    if status == 403:
        return PermissionDeniedError(
            f"Plex denied {method} {path} ({product}): {said}",
            hint=(
                f"ask the Plex administrator to grant the integration user the role with "
                f"{grant} for {routing}; re-authenticating does not help"
            ),
            **kwargs,
        )
    if status == 400:
        return RemoteValidationError(
            f"Plex rejected {method} {path} ({product}) as invalid: {said}",
            hint="check the values sent (dates must be UTC with Z, ids lower-case uuids)",
            **kwargs,
        )
    if status == 404:
        return NotFoundError(f"Plex: nothing at {method} {path} ({product}): {said}", **kwargs)
    if 400 < status < 500 and status != 429:
        return RemoteValidationError(f"Plex refused {method} {path} ({product}): {said}", **kwargs)
    return None


def with_rate_limit_wait(error: ConnectorError | None, wait: float) -> ConnectorError | None:
    """Plex answers 429 without ``Retry-After`` (none is documented): wait ``wait`` seconds
    instead of the retry policy's short backoff, which would spend every wait within the minute.
    """
    if isinstance(error, RateLimitedError) and error.retry_after is None:
        error.retry_after = wait
    return error
