"""ShipStation webhook deliveries: parsing, the ``resource_url`` allow-list, V2 signatures.

A delivery is only a pointer (``{resource_url, resource_type}``): the connector fetches the
resource itself, with its own credentials. Because that GET carries credentials, the URL is checked
against an allow-list *before* anything is sent (DESIGN §1 rule 7): a forged delivery pointing at
another host raises :class:`~mlconnector.errors.ForeignURLError` and nothing leaves the process.

V2 deliveries are signed with RSA-SHA256; :class:`SignatureVerifier` checks them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mlconnector.clock import Clock
from mlconnector.errors import ForeignURLError, SignatureError
from mlconnector.timezones import TimeFormatError, parse_iso_offset

# --- delivery payloads -------------------------------------------------------------------------

V1_ORDER_EVENTS = frozenset({"ORDER_NOTIFY", "ITEM_ORDER_NOTIFY"})
V1_SHIP_EVENTS = frozenset({"SHIP_NOTIFY", "ITEM_SHIP_NOTIFY"})
V1_FULFILLMENT_EVENTS = frozenset({"FULFILLMENT_SHIPPED", "FULFILLMENT_REJECTED"})
V1_EVENTS = V1_ORDER_EVENTS | V1_SHIP_EVENTS | V1_FULFILLMENT_EVENTS
#: V2 ``resource_type`` values seen in the docs; the list there is incomplete, so any
#: upper-case ``*_V2`` name is accepted as a V2 event as well.
V2_EVENTS = frozenset(
    {
        "BATCH_PROCESSED_V2",
        "TRACK_EVENT_V2",
        "SHIPMENT_CREATED_V2",
        "LABEL_CREATED_V2",
        "FULFILLMENT_SHIPPED_V2",
        "FULFILLMENT_REJECTED_V2",
    }
)
_V2_EVENT = re.compile(r"^[A-Z][A-Z0-9_]{0,60}_V2$")

#: deliveries are tiny pointers; anything bigger is not from ShipStation
MAX_DELIVERY_BYTES = 64 * 1024
MAX_RESOURCE_URL = 2048
#: a pointer is flat; V2 events add a small ``data`` object. Deeper bodies are refused
MAX_DELIVERY_DEPTH = 16
#: the longest ``x-shipengine-timestamp`` value looked at
MAX_TIMESTAMP_CHARS = 64


class MalformedDeliveryError(SignatureError):
    """A webhook body that is not a ShipStation delivery (bad JSON, too big, unknown type)."""


class MissingSignatureError(SignatureError):
    """A V2 delivery without the signature headers (the docs advise answering 404)."""


@dataclass(frozen=True)
class WebhookDelivery:
    """A parsed delivery: where to look (``resource_url``) and what happened (``resource_type``)."""

    resource_url: str
    resource_type: str
    #: extra top-level fields some V2 events carry (e.g. ``data`` for TRACK_EVENT_V2)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_v2(self) -> bool:
        return self.resource_type.endswith("_V2")


def parse_delivery(raw: bytes, *, max_bytes: int = MAX_DELIVERY_BYTES) -> WebhookDelivery:
    """Parse a raw webhook body, refusing anything that is not a well-formed delivery."""
    if len(raw) > max_bytes:
        raise MalformedDeliveryError(
            f"webhook body of {len(raw)} bytes exceeds the {max_bytes}-byte limit",
            hint="ShipStation deliveries are small pointers; this did not come from ShipStation",
        )
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedDeliveryError("webhook body is not JSON") from exc
    except RecursionError as exc:  # nesting deeper than the interpreter's stack
        raise MalformedDeliveryError(_TOO_DEEP) from exc
    if _depth_over(body, MAX_DELIVERY_DEPTH):
        raise MalformedDeliveryError(_TOO_DEEP)
    if not isinstance(body, dict):
        raise MalformedDeliveryError("webhook body is not a JSON object")
    url, kind = body.get("resource_url"), body.get("resource_type")
    if not isinstance(url, str) or not url or len(url) > MAX_RESOURCE_URL:
        raise MalformedDeliveryError("webhook body has no usable 'resource_url'")
    if not isinstance(kind, str) or not (
        kind in V1_EVENTS or kind in V2_EVENTS or _V2_EVENT.match(kind)
    ):
        raise MalformedDeliveryError(
            f"unknown webhook resource_type {str(kind)[:60]!r}",
            hint=f"expected one of {sorted(V1_EVENTS)} or a *_V2 event",
        )
    extra = {k: v for k, v in body.items() if k not in ("resource_url", "resource_type")}
    return WebhookDelivery(resource_url=url, resource_type=kind, extra=extra)


_TOO_DEEP = f"webhook body is nested deeper than {MAX_DELIVERY_DEPTH} levels"


def _depth_over(value: Any, limit: int) -> bool:
    """Whether arrays/objects nest more than ``limit`` levels (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


# --- the resource_url allow-list ---------------------------------------------------------------

PRODUCTION_V1_HOST = re.compile(r"^ssapi\d*\.shipstation\.com$")
PRODUCTION_V2_HOST = re.compile(r"^api\.shipstation\.com$")


def _effective_port(url: httpx.URL) -> int | None:
    if url.port is not None:
        return url.port
    return {"https": 443, "http": 80}.get(url.scheme)


def _path_within(path: str, prefix: str) -> bool:
    prefix = prefix.rstrip("/")
    return not prefix or path == prefix or path.startswith(prefix + "/")


@dataclass(frozen=True)
class AllowList:
    """Where one credential may be sent when following a webhook pointer.

    A URL is allowed when it has the scheme, host, port and path prefix of one of ``bases`` (the
    configured API base URLs), or, with ``production_host`` set, when it is ``https`` to a host
    that matches it on the default port (ShipStation hands out ``ssapi11.shipstation.com`` and
    the like). URLs with user-info or ``..`` segments are never allowed.
    """

    bases: tuple[httpx.URL, ...]
    production_host: re.Pattern[str] | None = None

    @classmethod
    def build(cls, bases: Iterable[str], *, production_host: re.Pattern[str] | None) -> AllowList:
        return cls(tuple(httpx.URL(b) for b in bases), production_host)

    def allows(self, url: httpx.URL) -> bool:
        """True when a credentialed request to ``url`` is permitted."""
        if url.userinfo or url.scheme not in ("http", "https") or not url.host:
            return False
        if ".." in url.path.split("/"):
            return False
        for base in self.bases:
            if (
                url.scheme == base.scheme
                and url.host == base.host
                and _effective_port(url) == _effective_port(base)
                and _path_within(url.path, base.path)
            ):
                return True
        return bool(
            self.production_host is not None
            and url.scheme == "https"
            and _effective_port(url) == 443
            and self.production_host.match(url.host)
        )

    def check(self, url: str | httpx.URL, *, what: str = "webhook resource_url") -> httpx.URL:
        """Return the parsed URL if allowed; otherwise raise :class:`ForeignURLError`."""
        try:
            parsed = httpx.URL(url) if isinstance(url, str) else url
        except (httpx.InvalidURL, ValueError) as exc:
            raise ForeignURLError(f"{what} is not a valid URL") from exc
        try:
            allowed, host = self.allows(parsed), parsed.host
        except ValueError as exc:  # e.g. an IDNA label that does not decode (a UnicodeError)
            raise ForeignURLError(f"{what} is not a valid URL") from exc
        if not allowed:
            raise ForeignURLError(
                f"{what} points at {parsed.scheme}://{host[:100]}{parsed.path[:80]}, "
                "which is not an allowed ShipStation API address; nothing was sent",
                hint="only the configured ShipStation base URLs may receive credentials; if this "
                "is a genuine ShipStation host, add it to the connection's base URLs",
            )
        return parsed


def include_shipment_items(url: httpx.URL) -> httpx.URL:
    """Rewrite ``includeShipmentItems=False`` to ``True`` (SHIP_NOTIFY pointers omit items)."""
    params: list[tuple[str, str | int | float | bool | None]] = [
        (k, "True" if k.lower() == "includeshipmentitems" else v)
        for k, v in url.params.multi_items()
    ]
    if not any(k.lower() == "includeshipmentitems" for k, _ in params):
        params.append(("includeShipmentItems", "True"))
    return url.copy_with(params=httpx.QueryParams(params))


# --- V2 signatures -----------------------------------------------------------------------------

KEY_ID_HEADER = "x-shipengine-rsa-sha256-key-id"
SIGNATURE_HEADER = "x-shipengine-rsa-sha256-signature"
TIMESTAMP_HEADER = "x-shipengine-timestamp"

#: The signed-string layout. UNCONFIRMED: ShipStation's validation guide does not pin it down in
#: the sources we have, so it is a parameter; ``{timestamp}`` is the header value as received and
#: ``{body}`` the raw body bytes.
DEFAULT_SIGNED_LAYOUT = "{timestamp}.{body}"


def _b64decode(value: str) -> bytes:
    padded = value + "=" * (-len(value) % 4)
    return base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))


def _jwk_to_key(jwk: Mapping[str, Any]) -> rsa.RSAPublicKey | None:
    pem = jwk.get("pem") or jwk.get("public_key")
    if isinstance(pem, str) and "BEGIN" in pem:
        key = serialization.load_pem_public_key(pem.encode())
        return key if isinstance(key, rsa.RSAPublicKey) else None
    n, e = jwk.get("n"), jwk.get("e")
    if jwk.get("kty", "RSA") != "RSA" or not isinstance(n, str) or not isinstance(e, str):
        return None
    numbers = rsa.RSAPublicNumbers(
        int.from_bytes(_b64decode(e), "big"), int.from_bytes(_b64decode(n), "big")
    )
    return numbers.public_key()


def keys_from_jwks(document: Any) -> dict[str, rsa.RSAPublicKey]:
    """RSA public keys by key id from a JWKS-like document ``{"keys": [{kid, kty, n, e}]}``.

    Entries may carry a PEM (``pem`` / ``public_key``) instead of ``n``/``e``. Entries that are not
    RSA keys or have no ``kid`` are skipped.
    """
    entries = document.get("keys") if isinstance(document, dict) else document
    if not isinstance(entries, list):
        raise SignatureError("webhook key document has no 'keys' list")
    keys: dict[str, rsa.RSAPublicKey] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        try:
            key = _jwk_to_key(entry)
        except (ValueError, binascii.Error, TypeError):
            continue
        if key is not None:
            keys[entry["kid"]] = key
    return keys


def _parse_timestamp(value: str) -> datetime:
    """The instant of a timestamp header, as UTC; :class:`SignatureError` for anything that is
    not one or lies outside what a datetime holds (``0001-01-01T00:00:00+14:00`` is year 0 in
    UTC)."""
    value = value.strip()
    if len(value) > MAX_TIMESTAMP_CHARS:
        raise SignatureError("webhook timestamp is too long to be a timestamp")
    try:
        if re.fullmatch(r"\d{9,13}(\.\d{1,9})?", value):
            seconds = float(value)
            if seconds > 1e11:  # milliseconds
                seconds /= 1000
            return datetime.fromtimestamp(seconds, tz=UTC)
        return parse_iso_offset(value).astimezone(UTC)
    except TimeFormatError as exc:
        raise SignatureError(f"webhook timestamp {value[:40]!r} is not a timestamp") from exc
    except (OverflowError, ValueError, OSError) as exc:
        raise SignatureError(f"webhook timestamp {value[:40]!r} is out of range") from exc


def signed_bytes(layout: str, timestamp: str, body: bytes) -> bytes:
    """The bytes that were signed: ``layout`` with ``{timestamp}`` and the raw ``{body}``."""
    pieces = [part.replace("{timestamp}", timestamp).encode() for part in layout.split("{body}")]
    return body.join(pieces)


class SignatureVerifier:
    """Verifies V2 webhook deliveries (RSA-SHA256, PKCS#1 v1.5, over the raw body).

    * the three ``x-shipengine-*`` headers must be present (:class:`MissingSignatureError`);
    * the timestamp (Unix seconds or ISO 8601) must be within ``tolerance`` seconds of the
      injected clock, either side, because ShipStation's clocks may run ahead;
    * the key id must be known; an unknown one triggers a refresh through ``fetch_keys`` (at most
      one per ``refresh_interval`` seconds: key rotation is rare, forged key ids are cheap);
    * the signature (base64) must verify over ``signed_layout`` (default
      ``"{timestamp}.{body}"``). **The real layout is unconfirmed**; it is a parameter so that it
      can be corrected from configuration without code changes.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        keys: Mapping[str, rsa.RSAPublicKey] | None = None,
        fetch_keys: Callable[[], Awaitable[Mapping[str, rsa.RSAPublicKey]]] | None = None,
        tolerance: float = 300.0,
        signed_layout: str = DEFAULT_SIGNED_LAYOUT,
        refresh_interval: float = 60.0,
    ) -> None:
        if "{body}" not in signed_layout:
            raise ValueError("signed_layout must contain {body}")
        self.clock = clock
        self.keys: dict[str, rsa.RSAPublicKey] = dict(keys or {})
        self.fetch_keys = fetch_keys
        self.tolerance = tolerance
        self.signed_layout = signed_layout
        #: at most one key refresh per ``refresh_interval`` seconds, so forged key ids cannot
        #: turn every delivery into a request to the key endpoint
        self.refresh_interval = refresh_interval
        self._last_refresh: float | None = None

    async def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Return if the delivery is authentic and fresh; raise :class:`SignatureError` if not."""
        lowered = {k.lower(): v for k, v in headers.items()}
        key_id = lowered.get(KEY_ID_HEADER)
        signature = lowered.get(SIGNATURE_HEADER)
        timestamp = lowered.get(TIMESTAMP_HEADER)
        if not key_id or not signature or not timestamp:
            raise MissingSignatureError("webhook delivery is missing its signature headers")
        sent = _parse_timestamp(timestamp)
        try:
            skew = abs((self.clock.now() - sent).total_seconds())
        except OverflowError as exc:
            raise SignatureError("webhook timestamp is out of range") from exc
        if skew > self.tolerance:
            raise SignatureError(
                f"webhook timestamp is {skew:.0f}s from now (tolerance {self.tolerance:.0f}s)",
                hint="a replayed or delayed delivery; if many are rejected, check the server clock",
            )
        key = await self._key(key_id)
        try:
            raw_signature = base64.b64decode(signature, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise SignatureError("webhook signature is not base64") from exc
        message = signed_bytes(self.signed_layout, timestamp, body)
        try:
            key.verify(raw_signature, message, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature as exc:
            raise SignatureError(
                f"webhook signature does not verify with key {key_id[:40]!r}"
            ) from exc

    def _may_refresh(self) -> bool:
        if self.fetch_keys is None:
            return False
        if self._last_refresh is None:
            return True
        return self.clock.monotonic() - self._last_refresh >= self.refresh_interval

    async def _key(self, key_id: str) -> rsa.RSAPublicKey:
        key = self.keys.get(key_id)
        if key is None and self._may_refresh():
            assert self.fetch_keys is not None
            self._last_refresh = self.clock.monotonic()
            self.keys.update(await self.fetch_keys())
            key = self.keys.get(key_id)
        if key is None:
            raise SignatureError(
                f"webhook signed with unknown key id {key_id[:40]!r}",
                hint="the key is not in ShipStation's published webhook keys",
            )
        return key
