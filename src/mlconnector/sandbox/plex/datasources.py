"""Plex datasources, executed by the JSON Data Source API and the legacy SOAP service alike.

Datasources work on integer keys (``Shipper_Key``, ``Release_Key``…), not REST UUIDs; the
Id Conversion API (``/platform/identity-mappings/v1/...``) maps between them.

Implemented datasources (ids are configuration in the client; only 230447 is a published id):

* **230447** ``Shipper_Tracking_No_Update`` — inputs ``Shipper_Key`` (required), ``Tracking_No``,
  ``Shipper_Note``. Like Plex "Update" datasources it **nulls every input left out**. Outputs
  ``Result_Error``/``Result_Message`` (an unknown shipper is ``Result_Error = true``, not an HTTP
  error). Read row limit: none (no result set).
* **9278** ``Shippers_Get`` — optional ``Shipper_Note`` (substring, case-insensitive),
  ``Shipper_No``, ``Tracking_No``, ``Ship_Date_Begin``/``Ship_Date_End``: a shipper look-up by
  note/reference.
  Read row limit 1000.
* **18120** ``Sales_Release_History_Get`` — required ``Begin_Date``/``End_Date`` (release ship date,
  inclusive), optional ``Customer_Code``: sales order / release history for a backfill. Read row
  limit 1000.

* **990001** ``Container_Split`` (a **sandbox id**: Plex publishes no container-split
  datasource; the connector reads its id and input/output names from ``plex.container_split``) —
  inputs ``Serial_No`` (required), ``Split_Quantity`` (required, decimal): the quantity moves into
  a new container; outputs ``Result_Error``/``Result_Message`` and ``New_Serial_No``. A refused
  split (unknown or empty container, a quantity that leaves no remainder, stock loaded or
  staged) is ``Result_Error = true`` with the reason.

Row limits are per datasource (:attr:`DataSource.row_limit`, changeable per test).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mlconnector.sandbox.plex.errors import PlexApiError
from mlconnector.sandbox.plex.model import ts
from mlconnector.sandbox.plex.state import PlexState, TenantData
from mlconnector.timezones import parse_utc_z

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?Z$")

TRACKING_UPDATE_ID = 230447
SHIPPERS_GET_ID = 9278
RELEASE_HISTORY_ID = 18120
CONTAINER_SPLIT_ID = 990001


class DataSourceError(Exception):
    """A datasource failure with Plex's code (``DATA_SOURCE_NOT_FOUND``…) and an HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Input:
    name: str
    type: str  # int32 | decimal | string | datetime | bool
    required: bool = False


@dataclass
class Result:
    """What a datasource returns: output values and (maybe) one table."""

    outputs: dict[str, Any]
    columns: list[str] | None = None
    rows: list[list[Any]] = field(default_factory=list)


@dataclass
class DataSource:
    id: int
    name: str
    inputs: tuple[Input, ...]
    outputs: tuple[str, ...]
    columns: tuple[str, ...]
    run: Callable[[TenantData, dict[str, Any]], Result]
    row_limit: int | None = 1000


@dataclass
class Execution:
    datasource: DataSource
    result: Result
    rows: list[list[Any]]
    row_limit_exceeded: bool
    transaction_no: str


@dataclass
class WebServiceUser:
    """A web-service account: scoped to one tenant, granted some datasources."""

    username: str
    password: str
    tenant_id: str
    granted: set[int] | None = None  # None = every datasource
    api_access: bool = True


def _convert(spec: Input, value: Any) -> Any:
    """Convert an input to its declared type (JSON or SOAP strings alike)."""
    if value is None:
        return None
    mismatch = DataSourceError(
        400, "DATA_SOURCE_INPUT_TYPE_MISMATCH", f"Input '{spec.name}' must be of type {spec.type}."
    )
    if spec.type == "int32":
        if isinstance(value, bool):
            raise mismatch
        try:
            return int(str(value).strip())
        except ValueError:
            raise mismatch from None
    if spec.type == "decimal":
        if isinstance(value, bool):
            raise mismatch
        try:
            number = float(str(value).strip())
        except ValueError:
            raise mismatch from None
        if number != number or number in (float("inf"), float("-inf")):
            raise mismatch
        return number
    if spec.type == "bool":
        text = str(value).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise mismatch
    if spec.type == "datetime":
        invalid = DataSourceError(
            400,
            "DATA_SOURCE_INPUT_FORMAT_INVALID",
            f"Input '{spec.name}' must be a UTC date-time like 2026-01-15T12:00:00.0000000Z.",
        )
        if not isinstance(value, str) or not _DATE.match(value.strip()):
            raise invalid
        try:
            return parse_utc_z(value.strip())
        except ValueError:
            raise invalid from None
    if isinstance(value, dict | list):
        raise mismatch
    return str(value)


class DataSourceService:
    """The datasources, their web-service users, and execution with row limits."""

    def __init__(self, state: PlexState) -> None:
        self.state = state
        self.users: dict[str, WebServiceUser] = {}
        self.datasources: dict[int, DataSource] = {
            ds.id: ds
            for ds in (_tracking_update(), _shippers_get(), _release_history(), _container_split())
        }
        self._transactions = 7_000_000

    def add_user(self, user: WebServiceUser) -> WebServiceUser:
        self.users[user.username] = user
        return user

    def login(self, credentials: tuple[str, str] | None) -> WebServiceUser | None:
        if credentials is None:
            return None
        user = self.users.get(credentials[0])
        return user if user is not None and user.password == credentials[1] else None

    def next_transaction(self) -> str:
        self._transactions += 1
        return str(self._transactions)

    def lookup(self, user: WebServiceUser, ds_id: str | int) -> DataSource:
        """The datasource, if it exists and the user may run it."""
        try:
            datasource = self.datasources.get(int(ds_id))
        except ValueError:
            datasource = None
        if datasource is None:
            raise DataSourceError(404, "DATA_SOURCE_NOT_FOUND", f"Data source {ds_id} not found.")
        if not user.api_access:
            raise DataSourceError(
                403, "DATA_SOURCE_API_ACCESS_DENIED", "The user may not use the Data Source API."
            )
        if user.granted is not None and datasource.id not in user.granted:
            raise DataSourceError(
                403,
                "DATA_SOURCE_ACCESS_DENIED",
                f"Access to data source {datasource.id} is denied for user {user.username}.",
            )
        return datasource

    def execute(
        self, user: WebServiceUser, ds_id: str | int, raw_inputs: dict[str, Any], *, limit: bool
    ) -> Execution:
        """Validate inputs (names are case-sensitive), run, apply the row limit if ``limit``."""
        datasource = self.lookup(user, ds_id)
        specs = {spec.name: spec for spec in datasource.inputs}
        for name in raw_inputs:
            if name not in specs:
                raise DataSourceError(
                    400, "DATA_SOURCE_INPUT_NOT_FOUND", f"Input '{name}' does not exist."
                )
        inputs: dict[str, Any] = {}
        for spec in datasource.inputs:
            if spec.name in raw_inputs:
                inputs[spec.name] = _convert(spec, raw_inputs[spec.name])
                if inputs[spec.name] is None and spec.required:
                    raise DataSourceError(
                        400,
                        "DATA_SOURCE_INPUT_NOT_NULLABLE",
                        f"Input '{spec.name}' is not nullable.",
                    )
            elif spec.required:
                raise DataSourceError(
                    400, "DATA_SOURCE_INPUT_REQUIRED", f"Input '{spec.name}' is required."
                )
        result = datasource.run(self.state.tenants[user.tenant_id], inputs)
        rows, exceeded = result.rows, False
        if limit and datasource.row_limit is not None and len(rows) > datasource.row_limit:
            rows, exceeded = rows[: datasource.row_limit], True
        return Execution(datasource, result, rows, exceeded, self.next_transaction())


# -- the datasources ---------------------------------------------------------------------------


def _tracking_update() -> DataSource:
    def run(data: TenantData, inputs: dict[str, Any]) -> Result:
        shipper = data.shipper_by_key(inputs["Shipper_Key"])
        if shipper is None:
            return Result(
                {
                    "Result_Error": True,
                    "Result_Message": f"Shipper_Key {inputs['Shipper_Key']} not found.",
                }
            )
        # An "Update" datasource writes every input; one left out becomes NULL.
        data.update_shipper(
            shipper,
            {
                "tracking_number": inputs.get("Tracking_No"),
                "shipper_note": inputs.get("Shipper_Note"),
            },
        )
        return Result({"Result_Error": False, "Result_Message": "Shipper updated."})

    return DataSource(
        id=TRACKING_UPDATE_ID,
        name="Shipper_Tracking_No_Update",
        inputs=(
            Input("Shipper_Key", "int32", required=True),
            Input("Tracking_No", "string"),
            Input("Shipper_Note", "string"),
        ),
        outputs=("Result_Error", "Result_Message"),
        columns=(),
        run=run,
        row_limit=None,
    )


def _container_split() -> DataSource:
    def run(data: TenantData, inputs: dict[str, Any]) -> Result:
        serial = inputs["Serial_No"].strip()
        try:
            if not serial:
                raise PlexApiError(400, "VALIDATION", "Serial_No must not be empty.")
            split = data.split_container(serial, inputs["Split_Quantity"])
        except PlexApiError as exc:
            reason = "; ".join(e.get("message", "") for e in exc.errors) or exc.message
            return Result({"Result_Error": True, "Result_Message": reason, "New_Serial_No": None})
        return Result(
            {
                "Result_Error": False,
                "Result_Message": f"{split.quantity:g} split off {serial}.",
                "New_Serial_No": split.serial_no,
            }
        )

    return DataSource(
        id=CONTAINER_SPLIT_ID,
        name="Container_Split",
        inputs=(
            Input("Serial_No", "string", required=True),
            Input("Split_Quantity", "decimal", required=True),
        ),
        outputs=("Result_Error", "Result_Message", "New_Serial_No"),
        columns=(),
        run=run,
        row_limit=None,
    )


_SHIPPER_COLUMNS = (
    "Shipper_Key",
    "Shipper_No",
    "Shipper_Status",
    "Customer_No",
    "Customer_Code",
    "Ship_Date",
    "Tracking_No",
    "Shipper_Note",
)


def _shippers_get() -> DataSource:
    def run(data: TenantData, inputs: dict[str, Any]) -> Result:
        note = (inputs.get("Shipper_Note") or "").lower()
        begin, end = inputs.get("Ship_Date_Begin"), inputs.get("Ship_Date_End")
        rows = []
        for s in sorted(data.shippers.values(), key=lambda x: x.key):
            if note and note not in (s.shipper_note or "").lower():
                continue
            if inputs.get("Shipper_No") and s.shipper_number != inputs["Shipper_No"]:
                continue
            if inputs.get("Tracking_No") and s.tracking_number != inputs["Tracking_No"]:
                continue
            if not _between(s.ship_date, begin, end):
                continue
            customer = data.customers[s.customer_id]
            rows.append(
                [
                    s.key,
                    s.shipper_number,
                    s.status,
                    customer.key,
                    customer.code,
                    ts(s.ship_date),
                    s.tracking_number,
                    s.shipper_note,
                ]
            )
        return Result({}, list(_SHIPPER_COLUMNS), rows)

    return DataSource(
        id=SHIPPERS_GET_ID,
        name="Shippers_Get",
        inputs=(
            Input("Shipper_Note", "string"),
            Input("Shipper_No", "string"),
            Input("Tracking_No", "string"),
            Input("Ship_Date_Begin", "datetime"),
            Input("Ship_Date_End", "datetime"),
        ),
        outputs=(),
        columns=_SHIPPER_COLUMNS,
        run=run,
    )


def _between(value: datetime | None, begin: datetime | None, end: datetime | None) -> bool:
    if begin is None and end is None:
        return True
    if value is None:
        return False
    return (begin is None or value >= begin) and (end is None or value <= end)


_HISTORY_COLUMNS = (
    "PO_Key",
    "PO_No",
    "Customer_PO_No",
    "PO_Status",
    "Customer_No",
    "Customer_Code",
    "Line_Key",
    "Part_Key",
    "Part_No",
    "Revision",
    "Release_Key",
    "Release_No",
    "Release_Status",
    "Ship_Date",
    "Due_Date",
    "Quantity",
    "Quantity_Shipped",
    "Last_Modified",
)


def _release_history() -> DataSource:
    def run(data: TenantData, inputs: dict[str, Any]) -> Result:
        begin, end = inputs["Begin_Date"], inputs["End_Date"]
        customer_code = inputs.get("Customer_Code")
        rows = []
        releases = sorted(data.releases.values(), key=lambda r: (r.ship_date, r.key))
        for release in releases:
            if not _between(release.ship_date, begin, end):
                continue
            line = data.lines[release.order_line_id]
            order, part = data.orders[line.order_id], data.parts[line.part_id]
            customer = data.customers[order.customer_id]
            if customer_code and customer.code != customer_code:
                continue
            rows.append(
                [
                    order.key,
                    order.order_number,
                    order.po_number,
                    order.status,
                    customer.key,
                    customer.code,
                    line.key,
                    part.key,
                    part.number,
                    part.revision,
                    release.key,
                    release.release_number,
                    release.status,
                    ts(release.ship_date),
                    ts(release.due_date),
                    release.quantity,
                    release.quantity_shipped,
                    ts(release.modified),
                ]
            )
        return Result({}, list(_HISTORY_COLUMNS), rows)

    return DataSource(
        id=RELEASE_HISTORY_ID,
        name="Sales_Release_History_Get",
        inputs=(
            Input("Begin_Date", "datetime", required=True),
            Input("End_Date", "datetime", required=True),
            Input("Customer_Code", "string"),
        ),
        outputs=(),
        columns=_HISTORY_COLUMNS,
        run=run,
    )
