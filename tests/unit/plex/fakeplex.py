"""A small in-memory stand-in for Plex, for ``httpx.MockTransport`` unit tests of the write paths.

It models only what the write strategies touch (releases, shippers, containers, inventory
shipments, the id conversion and one datasource), written from the spec like the client, and
records every request so tests can assert what was (not) sent.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import httpx

CUSTOMER = "c0000000-0000-0000-0000-000000000001"
ADDRESS = "a0000000-0000-0000-0000-000000000001"
ORDER = "00000000-0000-0000-0000-0000000000a1"
PART = "p0000000-0000-0000-0000-000000000001"
LOC = "l0000000-0000-0000-0000-000000000001"


@dataclass
class FakePlex:
    """State plus an ``httpx`` handler."""

    releases: dict[str, dict[str, Any]] = field(default_factory=dict)
    shippers: dict[str, dict[str, Any]] = field(default_factory=dict)
    lines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    containers: list[dict[str, Any]] = field(default_factory=list)
    shipments: dict[str, dict[str, Any]] = field(default_factory=dict)
    executions: list[dict[str, Any]] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    #: raise ConnectionError on the N-th request matching (method, path suffix) to simulate a crash
    crash_on: tuple[str, str] | None = None
    #: process the next matching (method, path suffix) request, then drop the connection
    lose_answer_on: tuple[str, str] | None = None
    now: str = "2026-01-15T12:00:00.0000000Z"
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def seed(self) -> FakePlex:
        self.releases["r1"] = {
            "id": "r1",
            "orderLineId": "ol1",
            "shipToAddressId": ADDRESS,
            "quantity": 10,
            "quantityShipped": 0,
            "status": "Open",
            "modifiedDate": self.now,
        }
        for serial, qty, added in (("S1", 4, "01"), ("S2", 6, "02"), ("S3", 5, "03")):
            self.containers.append(
                {
                    "serialNo": serial,
                    "partId": PART,
                    "partNo": "WIDGET",
                    "containerStatus": "OK",
                    "locationId": LOC,
                    "location": "FG",
                    "quantity": qty,
                    "addDateTime": f"2026-01-{added}T00:00:00.0000000Z",
                }
            )
        return self

    def on_hand(self) -> float:
        return sum(c["quantity"] for c in self.containers if c["containerStatus"] == "OK")

    def count(self, method: str, suffix: str) -> int:
        return sum(1 for r in self.requests if r.method == method and r.url.path.endswith(suffix))

    # --- handler ---------------------------------------------------------------------------------
    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        crash = self.crash_on
        if crash and request.method == crash[0] and request.url.path.endswith(crash[1]):
            self.crash_on = None
            raise RuntimeError("simulated crash of the connector process")
        path = request.url.path.strip("/")
        body = json.loads(request.content) if request.content else None
        answer = self.route(request.method, path, request.url.params, body)
        lose = self.lose_answer_on
        if lose and request.method == lose[0] and request.url.path.endswith(lose[1]):
            self.lose_answer_on = None
            raise httpx.ReadError("connection dropped after Plex applied the write")
        if isinstance(answer, httpx.Response):
            return answer
        status = 201 if request.method == "POST" and path.endswith("customer-shippers") else 200
        return httpx.Response(status, json=answer)

    def route(self, method: str, path: str, q: httpx.QueryParams, body: Any) -> Any:
        parts = path.split("/")
        if path == "sales/v1/releases":
            ids = q.get_list("id")
            return [r for r in self.releases.values() if not ids or r["id"] in ids]
        if parts[:3] == ["sales", "v1", "releases"] and len(parts) == 4:
            release = self.releases[parts[3]]
            if method == "PUT":
                release.update(body)
            return release
        if path == f"sales/v1/orders/{ORDER}":
            return {"id": ORDER, "customerId": CUSTOMER, "shipToAddressId": ADDRESS}
        if path == "shipping/v1/customer-shippers":
            return [s for s in self.shippers.values() if self._match(s, q)]
        if path == "shipping/v1-beta1/customer-shippers" and method == "POST":
            sid = f"sh{next(self._ids)}"
            self.shippers[sid] = {**body, "id": sid, "status": "Open", "createdDate": self.now}
            self.lines[sid] = []
            return self.shippers[sid]
        if parts[:2] == ["shipping", "v1"] and len(parts) == 4:
            return self.shippers[parts[3]]
        if parts[:2] == ["shipping", "v1"] and parts[-1] == "lines":
            return self.lines[parts[3]]
        if parts[:2] == ["shipping", "v1-beta1"]:
            return self.shipper_action(method, parts, body)
        if path == "inventory/v1/inventory-tracking/containers":
            part = q.get("partId")
            return [c for c in self.containers if part is None or c["partId"] == part]
        if path.startswith("inventory/"):
            return self.inventory(method, parts, q, body)
        if path == "platform/identity-mappings/v1/ids-to-keys":
            keys = {i: 9000 + sorted(self.shippers).index(i) for i in body["ids"]}
            return {"recordIdentifiers": [{"Id": i, "Shipper_Key": k} for i, k in keys.items()]}
        if path.startswith("api/datasources/"):
            self.executions.append({"id": int(parts[2]), **body})
            if int(parts[2]) == 230447:
                shipper = self.shippers[sorted(self.shippers)[body["Shipper_Key"] - 9000]]
                shipper.update(trackingNumber=body["Tracking_No"], shipperNote=body["Shipper_Note"])
            return {"outputs": {}, "rows": [], "rowLimitExceeded": False, "transactionNo": "t1"}
        return httpx.Response(404, json={"code": "RESOURCE_NOT_FOUND", "message": path})

    def _match(self, shipper: dict[str, Any], q: httpx.QueryParams) -> bool:
        for name in ("trackingNumber", "customerAddressId", "status"):
            if name in q and shipper.get(name) != q[name]:
                return False
        if "createdDateBegin" in q:
            return q["createdDateBegin"] <= shipper["createdDate"] <= q["createdDateEnd"]
        return True

    def shipper_action(self, method: str, parts: list[str], body: Any) -> Any:
        sid = parts[3]
        shipper = self.shippers[sid]
        if method == "PUT":
            shipper.update(body)
            return shipper
        action = parts[-1]
        if action == "schedule-releases":
            line = {
                "id": f"ln{next(self._ids)}",
                "shipperId": sid,
                "releaseId": body["releaseId"],
                "partId": PART,
                "quantity": 0,
            }
            self.lines[sid].append(line)
            return [{"releaseId": body["releaseId"], "shipperId": sid, "shipperLineId": line["id"]}]
        if action == "load-fifo":
            line = next(x for x in self.lines[sid] if x["id"] == parts[5])
            release = self.releases[line["releaseId"]]
            want = release["quantity"] - release["quantityShipped"]
            for c in sorted(self.containers, key=lambda c: c["addDateTime"]):
                if c["containerStatus"] == "OK" and line["quantity"] + c["quantity"] <= want:
                    c["containerStatus"] = f"Loaded:{sid}"
                    line["quantity"] += c["quantity"]
            return line
        if action == "load-container":
            line = next(x for x in self.lines[sid] if x["id"] == parts[5])
            container = next(c for c in self.containers if c["serialNo"] == body["serialNo"])
            assert container["containerStatus"] == "OK"
            container["containerStatus"] = f"Loaded:{sid}"
            line["quantity"] += container["quantity"]
            return {"serialNo": container["serialNo"]}
        if action == "ship":
            for c in self.containers:
                if c["containerStatus"] == f"Loaded:{sid}":
                    c["containerStatus"] = "Shipped"
            for line in self.lines[sid]:
                self.releases[line["releaseId"]]["quantityShipped"] += line["quantity"]
            shipper.update(status="Shipped", shipDate=self.now)
            return shipper
        raise AssertionError(parts)

    def inventory(self, method: str, parts: list[str], q: httpx.QueryParams, body: Any) -> Any:
        if parts[-1] == "shipments" and method == "GET":
            code = q.get("externalShipmentCode")
            return [
                s
                for s in self.shipments.values()
                if code is None or s["externalShipmentCode"] == code
            ]
        if parts[-1] == "shipments":
            sid = f"is{next(self._ids)}"
            self.shipments[sid] = {"id": sid, **body, "shipmentStatus": "Open", "containers": []}
            return self.shipments[sid]
        shipment = self.shipments[parts[4]]
        action = parts[-1]
        serials = set(body["serialNos"]) if body else set(shipment["containers"])
        target = {
            "stage": ("OK", "Staged"),
            "ship": ("Staged", "Shipped"),
            "unship": ("Shipped", "OK"),
        }[action]
        for c in self.containers:
            if c["serialNo"] in serials and c["containerStatus"] == target[0]:
                c["containerStatus"] = target[1]
        if action == "stage":
            shipment["containers"] = sorted(serials)
        shipment["shipmentStatus"] = {"stage": "Staged", "ship": "Shipped", "unship": "Unshipped"}[
            action
        ]
        return shipment
