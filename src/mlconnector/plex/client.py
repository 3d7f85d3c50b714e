"""The Plex Connect REST client: reads in bounded windows, and the shipping/inventory primitives.

Paths and filter names come from the developers.plex.com scrape (shared/specs). Lists are bare,
unpaginated JSON arrays; a 404 on a list means "nothing there" (reference §6).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from mlconnector.clock import Clock
from mlconnector.errors import (
    ConnectorError,
    InvalidResponseError,
    NotFoundError,
    excerpt,
)
from mlconnector.http import ApiClient, RateLimiterRegistry, Redactor, RequestEvent, RetryPolicy
from mlconnector.lenient import Unreadable, UnreadableRecordError, parse_each
from mlconnector.plex.auth import PlexCredentials, TokenClient
from mlconnector.plex.cache import LRUCache
from mlconnector.plex.errors import classify_connect, with_rate_limit_wait
from mlconnector.plex.models import (
    Address,
    Container,
    Customer,
    InventoryShipment,
    LoadedContainer,
    Location,
    OnHand,
    OrderLine,
    Part,
    Release,
    SalesOrder,
    ScheduledRelease,
    Shipper,
    ShipperLine,
)
from mlconnector.plex.settings import PlexSettings
from mlconnector.plex.windows import check_ids, check_in_window, chunks, windows
from mlconnector.timezones import format_utc_z

log = logging.getLogger("mlconnector.plex")

M = TypeVar("M", bound=BaseModel)
Params = list[tuple[str, str]]
UnreadableSink = Callable[[Unreadable], None]

#: ids an unreadable record may name, kept so the caller can tell what it belongs to
REF_KEYS = ("orderId", "orderLineId", "partId", "partNo", "locationId", "customerId")

#: fields of the shipper update body (PUT shipping/v1-beta1/customer-shippers/{id})
#: release fields sent back on a release update (``quantityShipped`` never: Plex's ship owns it)
RELEASE_UPDATE_FIELDS = frozenset({"quantity", "shipDate", "dueDate", "status", "note"})
SHIPPER_UPDATE_FIELDS = frozenset(
    {
        "carrierId",
        "freightTerms",
        "status",
        "shipperNumber",
        "trackingNumber",
        "trailerNumber",
        "scheduledShipDate",
        "shipperNote",
        "truckId",
        "freightAmount",
        "bolNote",
        "pallets",
    }
)

#: ids per request when filtering by a repeated id parameter
ID_CHUNK = 50


def secrets_of(settings: PlexSettings) -> list[str]:
    """Every secret in the settings, for the redactor."""
    auth = settings.auth
    values = [auth.api_key, auth.api_secret, auth.client_secret, auth.ws_password]
    return [v.get_secret_value() for v in values if v is not None]


class PlexClient(ApiClient):
    """Plex Connect REST (``connect.plex.com``): typed reads and the write primitives."""

    service = "plex"

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: PlexSettings,
        *,
        clock: Clock,
        limiters: RateLimiterRegistry | None = None,
        retry: RetryPolicy | None = None,
        redactor: Redactor | None = None,
        on_event: Callable[[RequestEvent], None] | None = None,
    ) -> None:
        redactor = redactor or Redactor()
        for secret in secrets_of(settings):
            redactor.add(secret)
        token_client = None
        if settings.auth.strategy == "oauth2":
            assert settings.endpoints.token_url is not None
            token_client = TokenClient(
                http,
                token_url=settings.endpoints.token_url,
                auth=settings.auth,
                clock=clock,
                redactor=redactor,
                retry=retry,
            )
        self.credentials = PlexCredentials(settings.auth, clock=clock, token_client=token_client)
        limiter = None
        if limiters is not None:
            limiter = limiters.for_credential(
                httpx.URL(settings.endpoints.connect_url).host,
                self.credentials.credential_id,
                limit_per_minute=settings.requests_per_minute,
            )
        super().__init__(
            http,
            base_url=settings.endpoints.connect_url,
            clock=clock,
            retry=retry,
            limiter=limiter,
            redactor=redactor,
            on_event=on_event,
        )
        self.settings = settings
        # bounded (``settings.cache_entries`` each): a pass over orders of many customers and
        # parts keeps the most recently used, not every one it met
        self._customers: LRUCache[str, Customer] = LRUCache(settings.cache_entries)
        self._addresses: LRUCache[str, list[Address]] = LRUCache(settings.cache_entries)
        #: part id (lower-case) → part, or ``None`` when Plex did not return it (per run)
        self._parts: LRUCache[str, Part | None] = LRUCache(settings.cache_entries)

    def single_shot(self) -> PlexClient:
        """This client, sharing credentials, limiter and caches, but never re-sending a request
        after a failure that may have reached Plex (5xx, timeout, dropped connection); 429s are
        still waited out and a 401 still refreshes the token, since neither was processed."""
        twin = copy.copy(self)
        twin.retry = replace(self.retry, max_attempts=1)
        return twin

    # --- base-class hooks ------------------------------------------------------------------------
    async def auth_headers(self) -> dict[str, str]:
        return await self.credentials.headers()

    async def refresh_auth(self) -> bool:
        return await self.credentials.refresh()

    def classify(self, response: httpx.Response) -> ConnectorError | None:
        if response.status_code < 400:
            return None
        kwargs: dict[str, Any] = {
            "status": response.status_code,
            "request_id": self.request_id(response),
            "body_excerpt": self.redactor.text(excerpt(response.text) or ""),
        }
        error = classify_connect(
            response, routing=self.routing_label(), kwargs=kwargs, redact=self.redactor.text
        )
        return (
            error
            if error is not None
            else with_rate_limit_wait(super().classify(response), self.settings.rate_limit_wait)
        )

    def routing_label(self) -> str:
        """How the tenant is chosen, for messages."""
        auth = self.settings.auth
        if auth.pcn:
            return f"PCN {auth.pcn}"
        if auth.tenant_id:
            return f"tenant {auth.tenant_id}"
        return "the app's default tenant"

    # --- generic helpers -------------------------------------------------------------------------
    async def get_list(
        self,
        path: str,
        model: type[M],
        params: Params | None = None,
        *,
        on_unreadable: UnreadableSink | None = None,
    ) -> list[M]:
        """GET a bare-array list; 404 means an empty result in Plex's semantics.

        Each element is read on its own. An unreadable one goes to ``on_unreadable`` and the
        others are returned; without a sink it raises :class:`UnreadableRecordError` (a
        :class:`SkipRecordError`: the record the list belongs to cannot be read as it is).
        """
        try:
            body = await self.request_json("GET", path, params=params or [], record=path)
        except NotFoundError:
            return []
        if body is None:
            return []
        if not isinstance(body, list):
            raise InvalidResponseError(f"Plex {path} answered a {type(body).__name__}, not a list")
        good, bad = parse_each(
            model, body, kind=f"Plex {model.__name__}", where=path, ref_keys=REF_KEYS
        )
        if bad and on_unreadable is None:
            raise UnreadableRecordError(bad)
        for problem in bad:
            assert on_unreadable is not None  # for mypy: checked just above
            on_unreadable(problem)
        return good

    async def get_one(self, path: str, model: type[M]) -> M:
        """GET one record (a 404 stays a :class:`NotFoundError`; an unreadable record raises
        :class:`UnreadableRecordError`)."""
        body = await self.request_json("GET", path, record=path)
        good, bad = parse_each(
            model, [body], kind=f"Plex {model.__name__}", where=path, ref_keys=REF_KEYS
        )
        if bad:
            raise UnreadableRecordError(bad)
        return good[0]

    async def send(self, method: str, path: str, model: type[M], body: Any = None) -> M:
        """POST/PUT and parse the record Plex answers."""
        answer = await self.request_json(method, path, json_body=body, record=path)
        return self._parse(model, answer, path)

    def _parse(self, model: type[M], item: Any, path: str) -> M:
        try:
            return model.model_validate(item)
        except ValidationError as exc:
            raise InvalidResponseError(
                f"Plex {path} answered a record that is not a valid {model.__name__}: "
                f"{exc.errors()[0]['msg']}",
                body_excerpt=self.redactor.text(excerpt(str(item)) or ""),
            ) from exc

    async def iter_windowed(
        self,
        path: str,
        model: type[M],
        start: datetime,
        end: datetime,
        *,
        begin_param: str,
        end_param: str,
        date_of: Callable[[M], datetime | None],
        id_of: Callable[[M], str],
        extra: Params | None = None,
        on_unreadable: UnreadableSink | None = None,
    ) -> AsyncIterator[M]:
        """Walk ``[start, end]`` in windows, check each answer, de-duplicate window edges.

        Unreadable records go to ``on_unreadable`` (see :meth:`get_list`)."""
        pages = self.iter_windowed_pages(
            path,
            model,
            start,
            end,
            begin_param=begin_param,
            end_param=end_param,
            date_of=date_of,
            id_of=id_of,
            extra=extra,
            on_unreadable=on_unreadable,
        )
        async for page in pages:
            for record in page:
                yield record

    async def iter_windowed_pages(
        self,
        path: str,
        model: type[M],
        start: datetime,
        end: datetime,
        *,
        begin_param: str,
        end_param: str,
        date_of: Callable[[M], datetime | None],
        id_of: Callable[[M], str],
        extra: Params | None = None,
        on_unreadable: UnreadableSink | None = None,
    ) -> AsyncIterator[list[M]]:
        """:meth:`iter_windowed` one window at a time: one list per window of
        :func:`~mlconnector.plex.windows.windows` (``settings.window``), empty windows
        included, so two walks of the same ``[start, end]`` stay in step."""
        previous_edge: set[tuple[str, datetime | None]] = set()
        for low, high in windows(start, end, self.settings.window):
            params = [
                *(extra or []),
                (begin_param, format_utc_z(low)),
                (end_param, format_utc_z(high)),
            ]
            records = await self.get_list(path, model, params, on_unreadable=on_unreadable)
            check_in_window(
                ((id_of(r), date_of(r)) for r in records),
                low,
                high,
                resource=path,
                filter_names=f"{begin_param}/{end_param}",
            )
            edge: set[tuple[str, datetime | None]] = set()
            page: list[M] = []
            for record in records:
                key = (id_of(record), date_of(record))
                if key in previous_edge:
                    continue  # already yielded by the previous window (inclusive bounds)
                if key[1] == high:
                    edge.add(key)
                page.append(record)
            previous_edge = edge
            del records
            yield page

    # --- sales -----------------------------------------------------------------------------------
    async def iter_orders_modified(
        self, start: datetime, end: datetime, *, on_unreadable: UnreadableSink | None = None
    ) -> AsyncIterator[SalesOrder]:
        """Sales orders modified in ``[start, end]`` (``modifiedByDateBegin/End``), by window."""
        async for page in self.order_pages_modified(start, end, on_unreadable=on_unreadable):
            for order in page:
                yield order

    async def iter_releases_modified(
        self, start: datetime, end: datetime, *, on_unreadable: UnreadableSink | None = None
    ) -> AsyncIterator[Release]:
        """Releases modified in ``[start, end]`` (``modifiedDateBegin/End``), window by window."""
        async for page in self.release_pages_modified(start, end, on_unreadable=on_unreadable):
            for release in page:
                yield release

    def order_pages_modified(
        self, start: datetime, end: datetime, *, on_unreadable: UnreadableSink | None = None
    ) -> AsyncIterator[list[SalesOrder]]:
        """:meth:`iter_orders_modified`, one list per read window."""
        return self.iter_windowed_pages(
            "sales/v1/orders",
            SalesOrder,
            start,
            end,
            begin_param="modifiedByDateBegin",
            end_param="modifiedByDateEnd",
            date_of=lambda o: o.modified_date,
            id_of=lambda o: o.id,
            on_unreadable=on_unreadable,
        )

    def release_pages_modified(
        self, start: datetime, end: datetime, *, on_unreadable: UnreadableSink | None = None
    ) -> AsyncIterator[list[Release]]:
        """:meth:`iter_releases_modified`, one list per read window (the same windows as
        :meth:`order_pages_modified` for the same bounds)."""
        return self.iter_windowed_pages(
            "sales/v1/releases",
            Release,
            start,
            end,
            begin_param="modifiedDateBegin",
            end_param="modifiedDateEnd",
            date_of=lambda r: r.modified_date,
            id_of=lambda r: r.id,
            on_unreadable=on_unreadable,
        )

    async def get_order(self, order_id: str) -> SalesOrder:
        """One sales order."""
        return await self.get_one(f"sales/v1/orders/{order_id}", SalesOrder)

    async def list_orders(self, ids: Iterable[str]) -> list[SalesOrder]:
        """Sales orders by id (checked: nothing else may come back)."""
        return await self._by_ids("sales/v1/orders", SalesOrder, "id", list(ids), lambda o: o.id)

    async def list_order_lines(self, order_id: str) -> list[OrderLine]:
        """The lines of one sales order."""
        lines = await self.get_list(f"sales/v1/orders/{order_id}/lines", OrderLine)
        check_ids(
            (line.order_id or order_id for line in lines),
            [order_id],
            resource="sales order lines",
            filter_name="order id path",
        )
        return lines

    async def list_releases_for_lines(self, line_ids: Iterable[str]) -> list[Release]:
        """Releases of the given order lines (``orderLineIds``, checked)."""
        return await self._by_ids(
            "sales/v1/releases", Release, "orderLineIds", list(line_ids), lambda r: r.order_line_id
        )

    async def list_releases(self, ids: Iterable[str]) -> list[Release]:
        """Releases by id (checked). Plex's ``id`` filter takes a single value (reference §2.2;
        a repeated ``id`` returned one release), so one request per id."""
        found: list[Release] = []
        for release_id in sorted(set(ids)):
            found += await self._by_ids(
                "sales/v1/releases", Release, "id", [release_id], lambda r: r.id
            )
        return found

    async def get_release(self, release_id: str) -> Release:
        """One release."""
        return await self.get_one(f"sales/v1/releases/{release_id}", Release)

    async def update_release(self, release_id: str, changes: dict[str, Any]) -> Release:
        """Read, merge, PUT the release's writable fields back (``PUT sales/v1/releases/{id}``;
        Plex does not document whether omitted fields are kept, so they are all sent)."""
        current = await self.get_release(release_id)
        dumped = current.model_dump(by_alias=True, mode="json")
        body = {k: v for k, v in dumped.items() if k in RELEASE_UPDATE_FIELDS and v is not None}
        body.update(changes)
        return await self.send("PUT", f"sales/v1/releases/{release_id}", Release, body)

    async def _by_ids(
        self,
        path: str,
        model: type[M],
        param: str,
        ids: list[str],
        key: Callable[[M], str | None],
    ) -> list[M]:
        found: list[M] = []
        for chunk in chunks(sorted(set(ids)), ID_CHUNK):
            records = await self.get_list(path, model, [(param, i) for i in chunk])
            check_ids((key(r) for r in records), chunk, resource=path, filter_name=param)
            found.extend(records)
        return found

    # --- customers, parts, locations -------------------------------------------------------------
    async def get_customer(self, customer_id: str) -> Customer:
        """One customer (cached until :meth:`forget_cached`, the ``cache_entries`` most
        recently used: customers rarely change)."""
        cached = self._customers.get(customer_id)
        if cached is None:
            cached = await self.get_one(f"mdm/v1/customers/{customer_id}", Customer)
            self._customers[customer_id] = cached
        return cached

    async def list_addresses(self, customer_id: str) -> list[Address]:
        """The addresses of one customer (cached)."""
        cached = self._addresses.get(customer_id)
        if cached is None:
            cached = await self.get_list(f"mdm/v1/customers/{customer_id}/addresses", Address)
            self._addresses[customer_id] = cached
        return cached

    async def get_address(self, customer_id: str, address_id: str) -> Address:
        """One customer address, from the cached list."""
        for address in await self.list_addresses(customer_id):
            if address.id.lower() == address_id.lower():
                return address
        raise NotFoundError(
            f"Plex customer {customer_id} has no address {address_id}",
            record=address_id,
            hint="the order's ship-to/bill-to address may have been deleted in Plex",
        )

    def forget_cached(self) -> None:
        """Drop the customer, address and part caches (at the start of a sync run). Each keeps
        at most ``settings.cache_entries`` entries, the most recently used."""
        self._customers.clear()
        self._addresses.clear()
        self._parts.clear()

    async def list_parts(self, ids: Iterable[str]) -> list[Part]:
        """Parts by id (checked; an unfiltered parts list is tens of MB)."""
        return await self._by_ids("mdm/v1/parts", Part, "id", list(ids), lambda p: p.id)

    async def parts_by_id(self, ids: Iterable[str]) -> dict[str, Part]:
        """Parts by id (lower-case keys), cached until :meth:`forget_cached`: only ids not seen
        yet are requested, in checked multi-id requests. An id Plex did not return is
        remembered as missing and left out of the answer."""
        wanted = {i.lower(): i for i in ids}
        answer: dict[str, Part] = {}
        missing: list[str] = []
        for key, original in wanted.items():
            if key not in self._parts:
                missing.append(original)
            elif (found := self._parts.get(key)) is not None:
                answer[key] = found
        if missing:
            for part in await self.list_parts(missing):
                self._parts[part.id.lower()] = part
                if part.id.lower() in wanted:
                    answer[part.id.lower()] = part
            for original in missing:
                self._parts.setdefault(original.lower(), None)
        # the answer is built from what was read, not read back from the cache: with more ids
        # than ``cache_entries`` the first ones are evicted before the last ones are stored
        return {key: answer[key] for key in wanted if key in answer}

    async def get_part(self, part_id: str) -> Part:
        """One part."""
        return await self.get_one(f"mdm/v1/parts/{part_id}", Part)

    async def list_locations(self) -> list[Location]:
        """Inventory locations (a small table)."""
        return await self.get_list("inventory/v1/inventory-definitions/locations", Location)

    # --- inventory -------------------------------------------------------------------------------
    async def list_containers(
        self,
        *,
        part_id: str | None = None,
        location_id: str | None = None,
        on_unreadable: UnreadableSink | None = None,
    ) -> list[Container]:
        """Active containers, filtered by part and/or location (checked); unreadable ones go to
        ``on_unreadable`` (see :meth:`get_list`)."""
        params: Params = []
        if part_id:
            params.append(("partId", part_id))
        if location_id:
            params.append(("locationId", location_id))
        containers = await self.get_list(
            "inventory/v1/inventory-tracking/containers",
            Container,
            params,
            on_unreadable=on_unreadable,
        )
        if part_id:
            check_ids(
                (c.part_id for c in containers),
                [part_id],
                resource="containers",
                filter_name="partId",
            )
        if location_id:
            check_ids(
                (c.location_id for c in containers),
                [location_id],
                resource="containers",
                filter_name="locationId",
            )
        return containers

    def shippable(self, container: Container) -> bool:
        """Whether a container counts as on-hand stock (configured statuses, case-insensitive)."""
        statuses = {s.lower() for s in self.settings.shippable_statuses}
        return (container.container_status or "").lower() in statuses and container.quantity > 0

    async def on_hand(
        self,
        part_ids: Iterable[str] | None = None,
        *,
        on_unreadable: UnreadableSink | None = None,
    ) -> list[OnHand]:
        """On-hand per (part, location): the sum of shippable containers' quantities.

        With ``on_unreadable``, an unreadable container is reported (its ``partId`` in
        :attr:`Unreadable.refs` when it named one) and left out of the sums: the caller must
        hold that part's totals back, since they would be short."""
        containers: list[Container] = []
        if part_ids is None:
            containers = await self.list_containers(on_unreadable=on_unreadable)
        else:
            for part_id in sorted(set(part_ids)):
                containers.extend(
                    await self.list_containers(part_id=part_id, on_unreadable=on_unreadable)
                )
        totals: dict[tuple[str, str | None], list[Container]] = {}
        for container in containers:
            if container.part_id and self.shippable(container):
                totals.setdefault((container.part_id, container.location_id), []).append(container)
        return [
            OnHand(
                part_id=part,
                location_id=location,
                quantity=sum(c.quantity for c in group),
                part_no=group[0].part_no,
                location=group[0].location,
                containers=len(group),
            )
            for (part, location), group in sorted(totals.items(), key=lambda kv: str(kv[0]))
        ]

    # --- customer shippers -----------------------------------------------------------------------
    async def list_shippers(self, params: Params) -> list[Shipper]:
        """Customer shippers by the given filters."""
        return await self.get_list("shipping/v1/customer-shippers", Shipper, params)

    async def get_shipper(self, shipper_id: str) -> Shipper:
        """One customer shipper."""
        return await self.get_one(f"shipping/v1/customer-shippers/{shipper_id}", Shipper)

    async def list_shipper_lines(self, shipper_id: str) -> list[ShipperLine]:
        """The lines of one shipper."""
        return await self.get_list(f"shipping/v1/customer-shippers/{shipper_id}/lines", ShipperLine)

    async def list_line_containers(self, shipper_id: str, line_id: str) -> list[LoadedContainer]:
        """The containers loaded on one shipper line."""
        return await self.get_list(
            f"shipping/v1/customer-shippers/{shipper_id}/lines/{line_id}/containers",
            LoadedContainer,
        )

    async def create_shipper(self, body: dict[str, Any]) -> Shipper:
        """``POST shipping/v1-beta1/customer-shippers`` (beta)."""
        return await self.send("POST", "shipping/v1-beta1/customer-shippers", Shipper, body)

    async def update_shipper(self, shipper_id: str, changes: dict[str, Any]) -> Shipper:
        """Read, merge, PUT the whole shipper back (Plex does not document partial updates)."""
        current = await self.get_shipper(shipper_id)
        dumped = current.model_dump(by_alias=True, mode="json")
        body = {k: v for k, v in dumped.items() if k in SHIPPER_UPDATE_FIELDS and v is not None}
        body.update(changes)
        return await self.send(
            "PUT", f"shipping/v1-beta1/customer-shippers/{shipper_id}", Shipper, body
        )

    async def schedule_release(self, shipper_id: str, release_id: str) -> list[ScheduledRelease]:
        """Put a release onto a shipper; returns the shipper lines it landed on."""
        body = {"releaseId": release_id, "forceNewLine": False}
        answer = await self.request_json(
            "POST",
            f"shipping/v1-beta1/customer-shippers/{shipper_id}/schedule-releases",
            json_body=body,
            record=release_id,
        )
        items = answer if isinstance(answer, list) else [answer]
        return [self._parse(ScheduledRelease, item, "schedule-releases") for item in items]

    async def load_fifo(self, shipper_id: str, line_id: str) -> ShipperLine:
        """Load containers onto a shipper line, first in first out (Plex picks them)."""
        return await self.send(
            "POST",
            f"shipping/v1-beta1/customer-shippers/{shipper_id}/lines/{line_id}/load-fifo",
            ShipperLine,
        )

    async def load_container(self, shipper_id: str, line_id: str, serial_no: str) -> None:
        """Load one whole container onto a shipper line."""
        await self.request_json(
            "POST",
            f"shipping/v1-beta1/customer-shippers/{shipper_id}/lines/{line_id}/load-container",
            json_body={"serialNo": serial_no},
            record=serial_no,
        )

    async def ship_shipper(self, shipper_id: str) -> Shipper:
        """Ship the shipper: Plex removes its loaded containers from on-hand."""
        return await self.send(
            "POST", f"shipping/v1-beta1/customer-shippers/{shipper_id}/ship", Shipper
        )

    async def shipper_keys(self, shipper_ids: list[str]) -> dict[str, int]:
        """REST uuids → datasource ``Shipper_Key`` integers (Id Conversion API)."""
        ids = self.settings.datasources
        answer = await self.request_json(
            "POST",
            "platform/identity-mappings/v1/ids-to-keys",
            json_body={"standardObjectName": ids.shipper_standard_object, "ids": shipper_ids},
        )
        result: dict[str, int] = {}
        rows = answer.get("recordIdentifiers", []) if isinstance(answer, dict) else []
        for row in rows:
            if isinstance(row, dict) and row.get("Id") is not None:
                key = row.get(ids.shipper_key_column)
                if key is not None:
                    result[str(row["Id"]).lower()] = int(key)
        return result

    # --- inventory shipments ---------------------------------------------------------------------
    async def find_inventory_shipments(self, code: str) -> list[InventoryShipment]:
        """Inventory shipments whose ``externalShipmentCode`` is ``code`` (checked)."""
        found = await self.get_list(
            "inventory/v1/inventory-shipping/shipments",
            InventoryShipment,
            [("externalShipmentCode", code)],
        )
        check_ids(
            (s.external_shipment_code for s in found),
            [code],
            resource="inventory shipments",
            filter_name="externalShipmentCode",
        )
        return found

    async def create_inventory_shipment(self, code: str) -> InventoryShipment:
        """``POST inventory/v1/inventory-shipping/shipments``."""
        return await self.send(
            "POST",
            "inventory/v1/inventory-shipping/shipments",
            InventoryShipment,
            {"externalShipmentCode": code},
        )

    async def inventory_shipment_action(
        self, shipment_id: str, action: str, serial_nos: list[str] | None = None
    ) -> InventoryShipment:
        """``stage`` / ``unstage`` (with serials), ``ship`` / ``unship`` (beta endpoints)."""
        body = {"serialNos": serial_nos} if serial_nos is not None else None
        return await self.send(
            "POST",
            f"inventory/v1-beta1/inventory-shipping/shipments/{shipment_id}/{action}",
            InventoryShipment,
            body,
        )

    async def get_inventory_shipment(self, shipment_id: str) -> InventoryShipment:
        """One inventory shipment."""
        return await self.get_one(
            f"inventory/v1/inventory-shipping/shipments/{shipment_id}", InventoryShipment
        )
