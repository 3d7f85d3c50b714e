"""Who may call the simulated Plex Connect REST API, for which tenant, and how often.

Checks run in the order a real request meets them:

1. credentials: ``Authorization: Bearer`` (an OAuth2 client-credentials token from the token
   endpoint) **or** the ``X-Plex-Connect-Api-Key`` header (the app's consumer key); a bad, expired
   or missing credential is 401 ``REQUEST_NOT_AUTHENTICATED``;
2. the rate limit: 200 requests per rolling minute per app, then 429. Plex documents no 429 body and
   no headers, so the simulator sends ``{"code":"TOO_MANY_REQUESTS",…}`` and **no** ``Retry-After``
   or rate headers: a client must back off on its own;
3. the tenant: ``X-Plex-Connect-Customer-Id`` (PCN) or ``X-Plex-Connect-Tenant-Id``, else the app's
   default tenant; a tenant the app may not use is 401 ``REQUEST_NOT_AUTHENTICATED``;
4. the API product subscription: unsubscribed is **401** ``REQUEST_NOT_AUTHENTICATED`` (as Plex);
5. the permission (role) of the app's user: missing is 403 ``REQUEST_NOT_AUTHORIZED`` (Plex's code
   for this is undocumented; the simulator's choice).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from starlette.requests import Request

from mlconnector.clock import Clock
from mlconnector.sandbox.plex.errors import PlexApiError, not_authenticated
from mlconnector.sandbox.plex.state import PlexState, TenantData

API_KEY_HEADER = "x-plex-connect-api-key"
CUSTOMER_ID_HEADER = "x-plex-connect-customer-id"
TENANT_ID_HEADER = "x-plex-connect-tenant-id"

#: API products an app can subscribe to (names as in the Plex developer portal, roughly)
PRODUCTS = frozenset(
    {"Sales Orders", "Common APIs", "Inventory", "Customer Shippers", "Inventory Shipments"}
)

#: permissions (roles of the app's integration user) that routes require
PERMISSIONS = frozenset(
    {
        "sales.orders.read",
        "sales.releases.read",
        "sales.releases.write",
        "mdm.read",
        "inventory.read",
        "shipping.shippers.read",
        "shipping.shippers.write",
        "inventory.shipments.read",
        "inventory.shipments.write",
    }
)

RATE_LIMIT_PER_MINUTE = 200


@dataclass
class PlexApp:
    """A developer-portal app: consumer key/secret, tenants, products and its user's permissions."""

    name: str
    consumer_key: str
    consumer_secret: str
    default_tenant_id: str
    tenant_ids: set[str]
    products: set[str] = field(default_factory=lambda: set(PRODUCTS))
    permissions: set[str] = field(default_factory=lambda: set(PERMISSIONS))
    rate_limit: int = RATE_LIMIT_PER_MINUTE
    recent: deque[float] = field(default_factory=deque)


@dataclass
class Token:
    value: str
    app: PlexApp
    expires_at: datetime


@dataclass
class CallContext:
    """An authenticated REST call: the calling app and the tenant it addresses."""

    app: PlexApp
    data: TenantData
    state: PlexState

    def data_all(self) -> list[TenantData]:
        """Every tenant of the simulator (routes filter by what the app may see)."""
        return list(self.state.tenants.values())


class Authority:
    """Apps, issued tokens and the checks above."""

    def __init__(self, state: PlexState, clock: Clock, *, token_lifetime: float = 3600.0) -> None:
        self.state = state
        self.clock = clock
        self.token_lifetime = token_lifetime
        self.apps: dict[str, PlexApp] = {}
        self.tokens: dict[str, Token] = {}
        #: answer an empty list with 404 RESOURCE_NOT_FOUND, as Plex is reported to do at times
        self.empty_list_not_found = False

    def add_app(self, app: PlexApp) -> PlexApp:
        self.apps[app.consumer_key] = app
        return app

    def app(self, consumer_key: str) -> PlexApp:
        return self.apps[consumer_key]

    # -- OAuth2 client credentials -----------------------------------------------------------

    def issue_token(self, client_id: str, client_secret: str) -> Token | None:
        """A bearer token for valid client credentials, else ``None``."""
        app = self.apps.get(client_id)
        if app is None or not hmac.compare_digest(app.consumer_secret, client_secret):
            return None
        token = Token(
            value=secrets.token_urlsafe(32),
            app=app,
            expires_at=self.clock.now() + timedelta(seconds=self.token_lifetime),
        )
        self.tokens[token.value] = token
        return token

    # -- request checks ----------------------------------------------------------------------

    def authenticate(self, request: Request) -> PlexApp:
        """Step 1: the calling app, from a bearer token or the API-key header."""
        authorization = request.headers.get("authorization", "")
        if authorization[:7].lower() == "bearer ":
            token = self.tokens.get(authorization[7:].strip())
            if token is None or token.expires_at <= self.clock.now():
                raise not_authenticated()
            return token.app
        key = request.headers.get(API_KEY_HEADER)
        app = self.apps.get(key) if key else None
        if app is None:
            raise not_authenticated()
        return app

    def count_request(self, app: PlexApp) -> None:
        """Step 2: a rolling one-minute window per app."""
        now = self.clock.monotonic()
        while app.recent and app.recent[0] <= now - 60.0:
            app.recent.popleft()
        if len(app.recent) >= app.rate_limit:
            raise PlexApiError(
                429,
                "TOO_MANY_REQUESTS",
                f"Too many requests: the limit is {app.rate_limit} calls per minute.",
            )
        app.recent.append(now)

    def resolve_tenant(self, request: Request, app: PlexApp) -> TenantData:
        """Step 3: the tenant from the PCN / tenant-id headers, else the app's default."""
        pcn = request.headers.get(CUSTOMER_ID_HEADER)
        tenant_id = request.headers.get(TENANT_ID_HEADER)
        data: TenantData | None
        if pcn is not None:
            data = self.state.by_pcn(int(pcn)) if pcn.strip().isdigit() else None
        elif tenant_id is not None:
            data = self.state.tenants.get(tenant_id.strip().lower())
        else:
            data = self.state.tenants.get(app.default_tenant_id)
        if data is None or data.tenant.id not in app.tenant_ids:
            raise not_authenticated()
        if (
            tenant_id is not None
            and pcn is not None
            and tenant_id.strip().lower() != data.tenant.id
        ):
            raise not_authenticated()
        return data

    def authorize(self, request: Request, product: str, permission: str) -> CallContext:
        """All five checks; returns the call context or raises a :class:`PlexApiError`."""
        app = self.authenticate(request)
        self.count_request(app)
        data = self.resolve_tenant(request, app)
        if product not in app.products:
            raise not_authenticated()
        if permission not in app.permissions:
            raise PlexApiError(
                403,
                "REQUEST_NOT_AUTHORIZED",
                "The request is not authorized for this resource.",
                [{"code": "PERMISSION_REQUIRED", "message": f"missing permission '{permission}'"}],
            )
        return CallContext(app=app, data=data, state=self.state)


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """``(user, password)`` from an ``Authorization: Basic …`` header, or ``None``."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None
