"""A stateful simulator of Plex: Connect REST, the JSON Data Source API and the SOAP service.

``create_plex_sandbox(clock, tenants=None, seed=42)`` builds it; ``sandbox.app`` is the ASGI
app (wrapped in :class:`~mlconnector.sandbox.faults.FaultInjector`, ``sandbox.faults``),
``sandbox.state`` the data, ``sandbox.credentials()`` what a client needs. Written from the
public Plex descriptions only; it never imports the connector's Plex client (DESIGN §2).

What a client meets (each point is tested in ``tests/unit/sandbox_plex``):

* **Auth**: ``X-Plex-Connect-Api-Key: <consumer key>`` or ``Authorization: Bearer <token>`` from
  ``POST /oauth2/v1/token`` (path configurable; form body or Basic; tokens live 3600 s by the
  injected clock). Bad/expired/missing → 401 ``{"code":"REQUEST_NOT_AUTHENTICATED",
  "message":"The request could not be authenticated."}``.
* **Tenants**: ``X-Plex-Connect-Customer-Id: <PCN>`` or ``X-Plex-Connect-Tenant-Id: <uuid>``, else
  the app's default; a tenant the app may not use → the same 401. Default tenants: PCN 340884
  (``mlauto``, 40 orders) and 340885 (``mlautoca``, 12 orders).
* **Products** ("Sales Orders", "Common APIs", "Inventory", "Customer Shippers", "Inventory
  Shipments"): unsubscribed → the same 401. **Permissions** (e.g. ``sales.releases.write``):
  missing → 403 ``REQUEST_NOT_AUTHORIZED`` with ``errors[0].message`` naming the permission.
* **Rate limit**: 200 requests per rolling minute per app → 429
  ``{"code":"TOO_MANY_REQUESTS",…}`` with **no** ``Retry-After``/rate headers (Plex documents
  none). Injected storms (``faults``) do carry ``Retry-After`` (the shared injector's behaviour).
* **Lists**: bare arrays, no pagination, unknown parameters ignored (a misspelled filter returns
  everything); known date-time filters must match ``YYYY-MM-DDThh:mm:ss[.f{1,7}]Z`` else 400
  ``ARGUMENT_INVALID``; date ranges are inclusive at both ends; array filters repeat the name.
  Unset optional fields are ``null``. Unknown ids → 404 ``RESOURCE_NOT_FOUND``; a malformed UUID
  → 400 ``ARGUMENT_INVALID``. ``set_empty_list_not_found()`` makes empty lists answer 404 (Plex
  is reported to do so at times).
* **Statuses** (Plex's are tenant-defined; the simulator's): orders ``Open``/``Hold``/``Closed``/
  ``Canceled``; releases ``Open``/``Hold``/``Shipped``/``Canceled`` (partly shipped stays
  ``Open``); containers ``OK`` (shippable), ``Hold``, ``Shipped``; shippers ``Open``/``Shipped``;
  inventory shipments ``Open``/``Staged``/``Shipped``.
* **Writes**: shipping a customer shipper takes the loaded quantities out of the containers and adds
  each line's quantity to its release's ``quantityShipped``; shipping an inventory shipment
  empties the staged containers (whole containers only; ``unship`` restores them, ``unstage``
  takes containers off before shipping). Every release change bumps the
  ``modifiedDate`` of the release and of its sales order.
* **Data Source API** (``POST /api/datasources/{id}/execute``, Basic auth with the tenant's
  web-service user) and **SOAP** (``POST /DataSource/Service.asmx``): see
  :mod:`~mlconnector.sandbox.plex.datasources` for the datasource ids and inputs,
  :mod:`~mlconnector.sandbox.plex.soap` for ``Error=true`` at HTTP 200, and
  :mod:`~mlconnector.sandbox.plex.identity` for UUID ⇄ key conversion.
* **Operator** (HTTP under ``/_operator/``, never faulted, and Python methods on
  :class:`PlexSandbox`): edit releases, cancel/hold/add orders, adjust/add containers, products,
  permissions, rate limit, row limits, token expiry, faults; inspect on-hand, shippers, releases.
"""

from mlconnector.sandbox.plex.datasources import (
    CONTAINER_SPLIT_ID,
    RELEASE_HISTORY_ID,
    SHIPPERS_GET_ID,
    TRACKING_UPDATE_ID,
)
from mlconnector.sandbox.plex.sandbox import (
    DEFAULT_CONSUMER_KEY,
    DEFAULT_CONSUMER_SECRET,
    DEFAULT_TOKEN_PATH,
    DEFAULT_WS_PASSWORD,
    LinePlan,
    PlexSandbox,
    ReleasePlan,
    create_plex_sandbox,
)
from mlconnector.sandbox.plex.seed import DEFAULT_TENANTS, TenantSpec

__all__ = [
    "CONTAINER_SPLIT_ID",
    "DEFAULT_CONSUMER_KEY",
    "DEFAULT_CONSUMER_SECRET",
    "DEFAULT_TENANTS",
    "DEFAULT_TOKEN_PATH",
    "DEFAULT_WS_PASSWORD",
    "RELEASE_HISTORY_ID",
    "SHIPPERS_GET_ID",
    "TRACKING_UPDATE_ID",
    "LinePlan",
    "PlexSandbox",
    "ReleasePlan",
    "TenantSpec",
    "create_plex_sandbox",
]
