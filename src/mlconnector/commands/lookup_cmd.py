"""``mlconnector lookup``: the ids the mappings need, from both systems, and a section to paste.

Lists ShipStation V1 warehouses and stores, V2 inventory warehouses and locations, and the Plex
buildings and locations (reads only), then prints a ``[connections.NAME.mappings.*]`` section:
the current mappings where they are set, otherwise a suggestion marked ``check`` (the default
ShipStation warehouse for a building; the V2 location named like the Plex location or its
building). Lines with nothing to suggest are commented out.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mlconnector.commands.context import CliContext, get_context, reports_errors
from mlconnector.config import Config, ConnectionConfig
from mlconnector.plex import Location
from mlconnector.shipstation import InventoryLocation, InventoryWarehouse, Store, Warehouse
from mlconnector.store import CredentialKind


@dataclass
class Found:
    """What both systems hold that the mappings refer to."""

    warehouses: list[Warehouse] = field(default_factory=list)
    stores: list[Store] = field(default_factory=list)
    inventory_warehouses: list[InventoryWarehouse] = field(default_factory=list)
    inventory_locations: list[InventoryLocation] = field(default_factory=list)
    plex_locations: list[Location] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def buildings(self) -> dict[str, str]:
        """Plex building code → name, from the locations."""
        return {
            loc.building_code: loc.building_name or ""
            for loc in sorted(self.plex_locations, key=lambda x: x.building_code or "")
            if loc.building_code
        }


async def gather(state: CliContext, config: Config, name: str) -> Found:
    """Read everything :func:`lookup` lists (ShipStation V1/V2, Plex), through the connection's
    own clients and vaulted credentials."""
    from mlconnector.commands.clients import (
        plex_client,
        shipstation_v1_client,
        shipstation_v2_client,
    )
    from mlconnector.commands.credentials import FIELDS
    from mlconnector.commands.state import opened_store
    from mlconnector.sync.runtime import missing_credential

    conn = config.connection(name)
    async with opened_store(config, state.env, state.clock) as store:
        values = {f.kind: await store.get_credential(name, f.kind) for f in FIELDS}
    secrets = {kind: v for kind, v in values.items() if v}
    for kind in (
        CredentialKind.PLEX_API_KEY,
        CredentialKind.SS_V1_KEY,
        CredentialKind.SS_V1_SECRET,
    ):
        if kind not in secrets:
            raise missing_credential(name, kind)
    found = Found()
    async with state.http() as http:
        v1 = shipstation_v1_client(http, name, conn, secrets, clock=state.clock)
        found.warehouses = await v1.list_warehouses()
        found.stores = await v1.list_stores()
        if secrets.get(CredentialKind.SS_V2_KEY):
            v2 = shipstation_v2_client(http, name, conn, secrets, clock=state.clock)
            found.inventory_warehouses = await v2.list_inventory_warehouses()
            found.inventory_locations = await v2.list_inventory_locations()
        else:
            found.notes.append("no V2 key: inventory locations not listed")
        plex = plex_client(http, conn, secrets, clock=state.clock)
        found.plex_locations = await plex.list_locations()
    return found


def _toml(value: str | int) -> str:
    return json.dumps(value)  # a TOML basic string or integer for these plain values


def toml_snippet(name: str, conn: ConnectionConfig, found: Found) -> str:
    """The mappings section to paste (see the module doc)."""
    mappings = conn.mappings
    names = {w.warehouse_id: w.warehouse_name or "" for w in found.warehouses}
    default = next((w for w in found.warehouses if w.is_default), None) or next(
        iter(found.warehouses), None
    )
    lines = [
        f"# paste into mlconnector.toml (it replaces [connections.{name}.mappings] warehouses,",
        "# inventory_locations and stores if they are set there already); 'check' marks a guess",
        f"[connections.{name}.mappings.warehouses]",
    ]
    for code, building in found.buildings().items():
        if code in mappings.warehouses:
            wid = mappings.warehouses[code]
            lines.append(f"{_toml(code)} = {wid}  # {building} → {names.get(wid, 'NOT FOUND')}")
        elif default is not None and default.warehouse_id is not None:
            lines.append(
                f"{_toml(code)} = {default.warehouse_id}  # {building} → "
                f"{default.warehouse_name} (check)"
            )
        else:
            lines.append(f"# {_toml(code)} = ?  # {building}: no ShipStation warehouse")
    lines.append(f"[connections.{name}.mappings.inventory_locations]")
    by_name = {(loc.name or "").lower(): loc for loc in found.inventory_locations}
    for loc in sorted(found.plex_locations, key=lambda x: x.location_code or ""):
        if not loc.location_code:
            continue
        code = loc.location_code
        if code in mappings.inventory_locations:
            lines.append(f"{_toml(code)} = {_toml(mappings.inventory_locations[code])}")
            continue
        match = by_name.get(code.lower()) or by_name.get((loc.building_code or "").lower())
        if match is not None:
            lines.append(
                f"{_toml(code)} = {_toml(match.inventory_location_id)}  # → {match.name} (check)"
            )
        else:
            lines.append(f'# {_toml(code)} = ""  # no ShipStation location named like it')
    lines.append(f"[connections.{name}.mappings.stores]")
    stores = ", ".join(f"{s.store_id} {s.store_name}" for s in found.stores)
    if mappings.stores.default is not None:
        lines.append(f"default = {mappings.stores.default}")
    else:
        lines.append(f"# default = ?  # one of: {stores or 'no store'}")
    return "\n".join(lines) + "\n"


def _table(title: str, columns: tuple[str, ...], rows: list[tuple[object, ...]]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(escape("" if v is None else str(v)) for v in row))
    return table


@reports_errors
def lookup(
    ctx: typer.Context,
    connection: Annotated[
        str | None,
        typer.Option("--connection", help="Connection name (default: the only one configured)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the ids as JSON.")] = False,
) -> None:
    """List ShipStation warehouses, stores and inventory locations and Plex buildings with
    their ids, then print a mappings section to paste into mlconnector.toml (reads only)."""
    from mlconnector.commands.periods import pick_connection

    state = get_context(ctx)
    config = state.load_config()
    name = pick_connection(config, connection)
    found = asyncio.run(gather(state, config, name))
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "connection": name,
                    "warehouses": [w.model_dump(mode="json") for w in found.warehouses],
                    "stores": [s.model_dump(mode="json") for s in found.stores],
                    "inventory_locations": [
                        loc.model_dump(mode="json") for loc in found.inventory_locations
                    ],
                    "plex_buildings": found.buildings(),
                    "plex_locations": [loc.model_dump(mode="json") for loc in found.plex_locations],
                    "toml": toml_snippet(name, config.connection(name), found),
                },
                indent=2,
            )
        )
        return
    out = state.console
    out.print(
        _table(
            "ShipStation warehouses (mappings.warehouses values)",
            ("warehouseId", "name", "default"),
            [(w.warehouse_id, w.warehouse_name, w.is_default) for w in found.warehouses],
        )
    )
    out.print(
        _table(
            "ShipStation stores (mappings.stores values)",
            ("storeId", "name", "marketplace"),
            [(s.store_id, s.store_name, s.marketplace_name) for s in found.stores],
        )
    )
    warehouses = {w.inventory_warehouse_id: w.name for w in found.inventory_warehouses}
    out.print(
        _table(
            "ShipStation V2 inventory locations (mappings.inventory_locations values)",
            ("inventory_location_id", "name", "inventory warehouse"),
            [
                (
                    loc.inventory_location_id,
                    loc.name,
                    warehouses.get(loc.inventory_warehouse_id or ""),
                )
                for loc in found.inventory_locations
            ],
        )
    )
    out.print(
        _table(
            "Plex buildings (mappings.warehouses keys)",
            ("building", "name"),
            list(found.buildings().items()),
        )
    )
    out.print(
        _table(
            "Plex locations (mappings.inventory_locations keys)",
            ("location", "building", "type"),
            [
                (loc.location_code, loc.building_code, loc.location_type)
                for loc in sorted(found.plex_locations, key=lambda x: x.location_code or "")
            ],
        )
    )
    for note in found.notes:
        out.print(f"note: {escape(note)}")
    out.print(toml_snippet(name, config.connection(name), found), markup=False, highlight=False)
