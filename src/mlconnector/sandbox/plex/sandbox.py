"""The simulated Plex as one object: ASGI app, state, credentials and operator methods.

Build it with :func:`create_plex_sandbox`; mount ``sandbox.app`` in-process with
``httpx.ASGITransport`` or serve it with :func:`mlconnector.sandbox.server.serve`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mlconnector.clock import Clock
from mlconnector.sandbox.faults import FaultInjector
from mlconnector.sandbox.plex.auth import PERMISSIONS, PRODUCTS, Authority, PlexApp
from mlconnector.sandbox.plex.datasources import DataSourceService, WebServiceUser
from mlconnector.sandbox.plex.dsapi import datasource_routes
from mlconnector.sandbox.plex.identity import identity_routes
from mlconnector.sandbox.plex.model import Container, Order, OrderLine, Release, Shipper
from mlconnector.sandbox.plex.rest import rest_routes
from mlconnector.sandbox.plex.seed import DEFAULT_TENANTS, TenantSpec, seed_tenant
from mlconnector.sandbox.plex.shipping import shipping_routes
from mlconnector.sandbox.plex.soap import soap_routes
from mlconnector.sandbox.plex.state import PlexState, TenantData
from mlconnector.sandbox.plex.token import token_route

DEFAULT_TOKEN_PATH = "/oauth2/v1/token"  # noqa: S105 - a URL path, not a secret
DEFAULT_CONSUMER_KEY = "sandbox-consumer-key"
DEFAULT_CONSUMER_SECRET = "sandbox-consumer-secret"  # noqa: S105 - sandbox-only credential
DEFAULT_WS_PASSWORD = "sandbox-ws-password"  # noqa: S105 - sandbox-only credential

RATE_LIMIT_BODY = json.dumps(
    {
        "code": "TOO_MANY_REQUESTS",
        "message": "Too many requests: the limit is 200 calls per minute.",
        "errors": [],
    }
).encode()

TenantRef = str | int | None


@dataclass(frozen=True)
class ReleasePlan:
    """One release of an order added by the operator."""

    quantity: float
    ship_date: datetime


@dataclass(frozen=True)
class LinePlan:
    """One line (a part and its releases) of an order added by the operator."""

    part_id: str
    releases: Sequence[ReleasePlan]


class PlexSandbox:
    """State, app and operator helpers of one simulated Plex."""

    def __init__(
        self,
        clock: Clock,
        state: PlexState,
        *,
        token_path: str = DEFAULT_TOKEN_PATH,
        token_lifetime: float = 3600.0,
    ) -> None:
        from mlconnector.sandbox.plex.operator import operator_routes  # cycle: routes use self

        self.clock = clock
        self.state = state
        self.token_path = token_path
        self.authority = Authority(state, clock, token_lifetime=token_lifetime)
        self.datasources = DataSourceService(state)
        self.default_app = self.authority.add_app(
            PlexApp(
                name="ml-connector",
                consumer_key=DEFAULT_CONSUMER_KEY,
                consumer_secret=DEFAULT_CONSUMER_SECRET,
                default_tenant_id=state.tenant().tenant.id,
                tenant_ids=set(state.tenants),
            )
        )
        for data in state.tenants.values():
            self.datasources.add_user(
                WebServiceUser(
                    username=self.ws_username(data.tenant.pcn),
                    password=DEFAULT_WS_PASSWORD,
                    tenant_id=data.tenant.id,
                )
            )
        routes = [
            token_route(self.authority, token_path),
            *rest_routes(self.authority),
            *shipping_routes(self.authority),
            *identity_routes(self.authority),
            *datasource_routes(self.datasources),
            *soap_routes(self.datasources),
            *operator_routes(self),
        ]
        inner = Starlette(
            routes=routes, exception_handlers={404: _not_found, 405: _method_not_allowed}
        )
        self.faults = FaultInjector(
            inner, clock, exempt_prefixes=("/_operator",), rate_limit_body=RATE_LIMIT_BODY
        )
        self.app = self.faults

    # -- credentials -------------------------------------------------------------------------

    @staticmethod
    def ws_username(pcn: int) -> str:
        """The web-service user of a tenant (Data Source API and SOAP)."""
        return f"MlConnectorWs{pcn}@plex.com"

    def credentials(self) -> dict[str, Any]:
        """Everything a client needs to talk to this sandbox (sandbox-only values)."""
        return {
            "consumer_key": self.default_app.consumer_key,
            "consumer_secret": self.default_app.consumer_secret,
            "token_path": self.token_path,
            "tenants": [
                {
                    "id": d.tenant.id,
                    "pcn": d.tenant.pcn,
                    "code": d.tenant.code,
                    "name": d.tenant.name,
                    "ws_username": self.ws_username(d.tenant.pcn),
                    "ws_password": DEFAULT_WS_PASSWORD,
                }
                for d in self.state.tenants.values()
            ],
        }

    # -- apps, products, permissions, limits -------------------------------------------------

    def add_app(
        self,
        consumer_key: str,
        consumer_secret: str,
        *,
        tenants: Sequence[TenantRef] | None = None,
        products: Sequence[str] | None = None,
        permissions: Sequence[str] | None = None,
    ) -> PlexApp:
        """Register another developer-portal app (default: every tenant, product, permission)."""
        datas = [self.tenant(t) for t in tenants] if tenants else list(self.state.tenants.values())
        return self.authority.add_app(
            PlexApp(
                name=consumer_key,
                consumer_key=consumer_key,
                consumer_secret=consumer_secret,
                default_tenant_id=datas[0].tenant.id,
                tenant_ids={d.tenant.id for d in datas},
                products=set(products if products is not None else PRODUCTS),
                permissions=set(permissions if permissions is not None else PERMISSIONS),
            )
        )

    def _app(self, consumer_key: str | None) -> PlexApp:
        return self.authority.app(consumer_key) if consumer_key else self.default_app

    def set_products(self, products: Sequence[str], *, app: str | None = None) -> None:
        """Replace the API products an app is subscribed to."""
        unknown = set(products) - PRODUCTS
        if unknown:
            raise ValueError(
                f"unknown Plex API products {sorted(unknown)}; known: {sorted(PRODUCTS)}"
            )
        self._app(app).products = set(products)

    def unsubscribe(self, product: str, *, app: str | None = None) -> None:
        """Drop one API product (its routes then answer 401, as Plex does)."""
        self._app(app).products.discard(product)

    def subscribe(self, product: str, *, app: str | None = None) -> None:
        self.set_products([*self._app(app).products, product], app=app)

    def revoke_permission(self, permission: str, *, app: str | None = None) -> None:
        """Take a role/permission from an app's user (its routes then answer 403)."""
        if permission not in PERMISSIONS:
            raise ValueError(f"unknown permission {permission!r}; known: {sorted(PERMISSIONS)}")
        self._app(app).permissions.discard(permission)

    def grant_permission(self, permission: str, *, app: str | None = None) -> None:
        self._app(app).permissions.add(permission)

    def set_rate_limit(self, per_minute: int, *, app: str | None = None) -> None:
        self._app(app).rate_limit = per_minute

    def set_row_limit(self, datasource_id: int, row_limit: int | None) -> None:
        """Change a datasource's Read Row Limit."""
        self.datasources.datasources[datasource_id].row_limit = row_limit

    def set_datasource_grants(self, pcn: int, granted: Sequence[int] | None) -> None:
        """Restrict the datasources a tenant's web-service user may run (``None``: all)."""
        user = self.datasources.users[self.ws_username(pcn)]
        user.granted = set(granted) if granted is not None else None

    def set_empty_list_not_found(self, enabled: bool = True) -> None:
        """Answer empty lists with 404 ``RESOURCE_NOT_FOUND`` (reported of Plex; off by default)."""
        self.authority.empty_list_not_found = enabled

    def expire_tokens(self) -> None:
        """Make every issued OAuth2 token expire now."""
        for token in self.authority.tokens.values():
            token.expires_at = self.clock.now() - timedelta(seconds=1)

    # -- tenant data -------------------------------------------------------------------------

    def tenant(self, ref: TenantRef = None) -> TenantData:
        """A tenant by id, PCN or code (the first tenant by default)."""
        return self.state.tenant(ref)

    def edit_release(
        self,
        release_id: str,
        *,
        quantity: float | None = None,
        ship_date: datetime | None = None,
        due_date: datetime | None = None,
        status: str | None = None,
        tenant: TenantRef = None,
    ) -> Release:
        """Change a release's quantity/dates/status; bumps its and its order's modifiedDate."""
        data = self.tenant(tenant)
        return data.edit_release(
            data.release(release_id),
            quantity=quantity,
            ship_date=ship_date,
            due_date=due_date,
            status=status,
        )

    def set_raw_field(
        self, record_id: str, field: str, value: object, *, tenant: TenantRef = None
    ) -> dict[str, object]:
        """Make every answer naming ``record_id`` (an order, line or release id, or a container
        serial) send ``value`` as ``field``, e.g. a malformed id or quantity. Nothing else
        changes: the record's modifiedDate stays, as when a tenant's data was bad all along."""
        fields = self.tenant(tenant).raw_fields.setdefault(record_id, {})
        fields[field] = value
        return dict(fields)

    def clear_raw_fields(self, record_id: str, *, tenant: TenantRef = None) -> None:
        """Send ``record_id`` as the simulator holds it again (the data was corrected)."""
        self.tenant(tenant).raw_fields.pop(record_id, None)

    def cancel_order(self, order_id: str, *, tenant: TenantRef = None) -> Order:
        data = self.tenant(tenant)
        return data.cancel_order(data.order(order_id))

    def set_order_status(self, order_id: str, status: str, *, tenant: TenantRef = None) -> Order:
        """E.g. put an order on ``Hold`` or back to ``Open``."""
        data = self.tenant(tenant)
        return data.set_order_status(data.order(order_id), status)

    def add_order(
        self,
        customer_id: str | None = None,
        lines: Sequence[LinePlan] | None = None,
        *,
        po_number: str | None = None,
        ship_to_address_id: str | None = None,
        tenant: TenantRef = None,
    ) -> Order:
        """Add an open sales order (defaults: first customer, one part, one release in 3 days)."""
        data = self.tenant(tenant)
        customer = (
            data.customers[customer_id] if customer_id else next(iter(data.customers.values()))
        )
        if lines is None:
            part = next(p for p in data.parts.values() if p.status == "Active")
            lines = [LinePlan(part.id, [ReleasePlan(10.0, self.clock.now() + timedelta(days=3))])]
        bill_to = next(a for a in customer.addresses if a.bill_to)
        ship_to = ship_to_address_id or next(a.id for a in customer.addresses if a.ship_to)
        now = self.clock.now()
        key = data.new_key()
        order = Order(
            id=data.new_id(),
            key=key,
            customer_id=customer.id,
            order_number=f"{data.tenant.pcn % 1000}{key}",
            po_number=po_number or f"PO-{customer.code}-{key}",
            status="Open",
            type="Spot Buy",
            bill_to_address_id=bill_to.id,
            ship_to_address_id=ship_to,
            building_id=next(iter(data.buildings)),
            carrier="UPS",
            order_date=now,
            created=now,
            modified=now,
        )
        data.orders[order.id] = order
        for number, plan in enumerate(lines, start=1):
            self._add_line(data, order, ship_to, number, plan)
        return order

    @staticmethod
    def _add_line(
        data: TenantData, order: Order, ship_to: str, number: int, plan: LinePlan
    ) -> None:
        part = data.parts[plan.part_id]
        now = data.now()
        line = OrderLine(
            data.new_id(), data.new_key(), order.id, part.id, number, part.unit_price, now, now
        )
        data.add_line(line)
        for index, rel in enumerate(plan.releases, start=1):
            release = Release(
                id=data.new_id(),
                key=data.new_key(),
                order_line_id=line.id,
                release_number=f"{number}-{index}",
                ship_to_address_id=ship_to,
                ship_date=rel.ship_date,
                due_date=rel.ship_date + timedelta(days=2),
                quantity=rel.quantity,
                quantity_shipped=0,
                status="Open",
                created=now,
                modified=now,
            )
            data.releases[release.id] = release

    def adjust_container(
        self,
        serial_no: str,
        *,
        quantity: float | None = None,
        status: str | None = None,
        tenant: TenantRef = None,
    ) -> Container:
        return self.tenant(tenant).adjust_container(serial_no, quantity=quantity, status=status)

    def add_container(
        self, part_id: str, location_id: str, quantity: float, *, tenant: TenantRef = None
    ) -> Container:
        return self.tenant(tenant).add_container(part_id, location_id, quantity)

    def split_container(
        self, serial_no: str, quantity: float, *, tenant: TenantRef = None
    ) -> Container:
        """What an operator does on Plex's container screen: ``quantity`` into a new serial."""
        return self.tenant(tenant).split_container(serial_no, quantity)

    # -- inspection --------------------------------------------------------------------------

    def on_hand(
        self, part_id: str, location_id: str | None = None, *, tenant: TenantRef = None
    ) -> float:
        """Shippable on-hand of a part (optionally at one location)."""
        return self.tenant(tenant).on_hand(part_id, location_id)

    def shippers(self, *, tenant: TenantRef = None) -> list[Shipper]:
        return list(self.tenant(tenant).shippers.values())

    def release(self, release_id: str, *, tenant: TenantRef = None) -> Release:
        return self.tenant(tenant).release(release_id)

    def quantity_shipped(self, release_id: str, *, tenant: TenantRef = None) -> int:
        return self.release(release_id, tenant=tenant).quantity_shipped


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        {"code": "RESOURCE_NOT_FOUND", "message": "The resource was not found.", "errors": []},
        status_code=404,
    )


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    headers = exc.headers if isinstance(exc, HTTPException) else None
    return JSONResponse(
        {"code": "METHOD_NOT_ALLOWED", "message": "The method is not allowed.", "errors": []},
        status_code=405,
        headers=headers,
    )


def create_plex_sandbox(
    clock: Clock,
    *,
    tenants: Sequence[TenantSpec] | None = None,
    seed: int = 42,
    token_path: str = DEFAULT_TOKEN_PATH,
    token_lifetime: float = 3600.0,
) -> PlexSandbox:
    """A seeded Plex simulator: same seed and clock start give the same data."""
    specs = tenants or DEFAULT_TENANTS
    datas = [seed_tenant(spec, clock, seed) for spec in specs]
    state = PlexState({d.tenant.id: d for d in datas})
    return PlexSandbox(clock, state, token_path=token_path, token_lifetime=token_lifetime)
