"""Exact partial quantities: which containers a shipment takes, splitting one when it must.

Plex's public REST API loads (``load-container``) and stages (inventory shipments) **whole**
containers, and offers no container split (reference §3b). So a shipped quantity that no set of
whole containers matches — 5 pieces of a 100-piece container — needs either

* a **split** first, through a Data Source configured per connection
  (``plex.container_split``: datasource id, input and output names; no id is published, so
  nothing is split unless the customer configured one): ``quantity`` is split off a container
  into a **new serial**, the remainder keeps its serial; the new serial is then loaded whole; or
* an **operator task** (:class:`NeedsOperatorError`): the inventory move is raised once, naming
  the release, part, container and quantity and what to do in Plex; ``mlconnector replay`` of the
  operation completes it after the operator split the container.

Everything here is decided from one read of the part's containers, **before** anything is
written to Plex, so an impossible shipment never leaves an open shipper or inventory shipment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from mlconnector.errors import OperationFatalError, SkipRecordError
from mlconnector.plex.datasources import DataSourceError, PlexDataSourceClient
from mlconnector.plex.models import Container
from mlconnector.plex.settings import PlexContainerSplit

#: what to do when a partial quantity cannot be moved exactly (no split configured or possible)
WithoutSplit = Literal["tracking_and_task", "task_only"]

#: containers searched for an exact combination when oldest-first greedy picking misses
EXACT_SEARCH_LIMIT = 40


class NeedsOperatorError(OperationFatalError):
    """Part of a write-back needs a person (an inventory move Plex's API cannot make exactly).

    Raised once, at once: the operation goes ``dead`` with one alert and an audit event that
    carries :attr:`task`; replaying it after the operator acted completes the write.
    """


@dataclass(frozen=True)
class Split:
    """Split ``quantity`` off container ``serial_no`` (which holds ``holds``)."""

    serial_no: str
    quantity: float
    holds: float


@dataclass
class Pick:
    """What one part's shipped quantity takes: whole containers, plus at most one split."""

    part_id: str
    quantity: float
    serials: list[str] = field(default_factory=list)
    split: Split | None = None
    #: the serial the split produced (set once the split ran)
    split_serial: str | None = None
    #: for messages: the release(s) it serves, the part number, the containers considered
    label: str = ""
    part: str = ""
    stock: list[Container] = field(default_factory=list)

    def all_serials(self) -> list[str]:
        return [*self.serials, *([self.split_serial] if self.split_serial else [])]


def fifo(containers: Iterable[Container]) -> list[Container]:
    """Containers holding stock, oldest first."""
    return [
        c
        for c in sorted(
            containers, key=lambda c: (c.add_date_time is None, c.add_date_time, c.serial_no)
        )
        if c.quantity > 0
    ]


def whole_containers(containers: list[Container], quantity: float) -> list[str] | None:
    """Serials of whole containers summing exactly to ``quantity``, oldest first, or ``None``.

    Oldest-first greedy picking first; if it misses, the oldest containers are searched for an
    exact combination.
    """
    stock = fifo(containers)
    remaining = quantity
    picked: list[str] = []
    for container in stock:
        if container.quantity <= remaining:
            picked.append(container.serial_no)
            remaining -= container.quantity
        if remaining == 0:
            return picked
    return _exact_subset(stock[:EXACT_SEARCH_LIMIT], quantity)


def _exact_subset(containers: list[Container], quantity: float) -> list[str] | None:
    """A combination of ``containers`` summing to ``quantity``, preferring older ones."""
    dead: set[tuple[int, float]] = set()

    def search(index: int, remaining: float) -> list[str] | None:
        if remaining == 0:
            return []
        if index == len(containers) or remaining < 0 or (index, remaining) in dead:
            return None
        container = containers[index]
        rest = search(index + 1, remaining - container.quantity)
        if rest is not None:
            return [container.serial_no, *rest]
        rest = search(index + 1, remaining)
        if rest is None:
            dead.add((index, remaining))
        return rest

    return search(0, quantity)


def with_split(containers: list[Container], quantity: float) -> Pick | None:
    """Whole containers oldest first while they fit, then a split of the oldest container that
    holds more than what is left; ``None`` when the stock is short."""
    stock = fifo(containers)
    if sum(c.quantity for c in stock) < quantity:
        return None
    remaining = quantity
    whole: list[str] = []
    for container in stock:
        if container.quantity <= remaining:
            whole.append(container.serial_no)
            remaining -= container.quantity
        if remaining == 0:
            break
    pick = Pick(part_id="", quantity=quantity, serials=whole)
    if remaining > 0:
        source = next(c for c in stock if c.serial_no not in whole and c.quantity > remaining)
        pick.split = Split(source.serial_no, remaining, source.quantity)
    return pick


def plan_pick(
    containers: list[Container], part_id: str, quantity: float, *, can_split: bool
) -> Pick | None:
    """Whole containers if they match exactly; else (``can_split``) whole ones plus one split;
    ``None`` when neither is possible."""
    serials = whole_containers(containers, quantity)
    if serials is not None:
        return Pick(part_id, quantity, serials)
    if not can_split:
        return None
    pick = with_split(containers, quantity)
    if pick is not None:
        pick.part_id = part_id
    return pick


def describe_stock(containers: list[Container]) -> str:
    """``shippable on hand: 12 (FG-01: 8, FG-02: 4)`` — by Plex location, for messages."""
    places = by_location(containers)
    if not places:
        return "no shippable stock in any Plex location"
    where = ", ".join(f"{name}: {qty:g}" for name, qty in places.items())
    return f"shippable on hand: {sum(places.values()):g} ({where})"


def by_location(containers: list[Container]) -> dict[str, float]:
    """Shippable quantity per Plex location (code, else id)."""
    places: dict[str, float] = {}
    for c in containers:
        where = c.location or c.location_id or "no location"
        places[where] = places.get(where, 0) + c.quantity
    return dict(sorted(places.items()))


@dataclass(frozen=True)
class Short:
    """A line (or a part's lines) whose part has less shippable stock than it needs."""

    release: str
    part: str
    quantity: float
    #: what the line could still take (stock less what the other lines of the write take)
    available: float
    containers: list[Container]

    def task(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "part": self.part,
            "quantity": self.quantity,
            "available": self.available,
            "available_by_location": by_location(self.containers),
        }


def short_of_stock(
    reference: str, shorts: list[Short], *, operation_hint: str
) -> NeedsOperatorError:
    """The operator task for lines Plex holds too little stock for: raised before anything is
    written, so nothing is left open in Plex; a replay after the stock arrived completes it."""
    lines = "; ".join(
        f"release {s.release} needs {s.quantity:g} of part {s.part}, {s.available:g} available "
        f"({describe_stock(s.containers)})"
        for s in shorts
    )
    todo = "; ".join(
        f"put {s.quantity - s.available:g} more of part {s.part} into shippable containers"
        for s in shorts
    )
    return NeedsOperatorError(
        f"not enough stock in Plex to ship {reference}: {lines}; nothing was written to Plex",
        record=reference,
        hint=(
            f"in Plex, {todo} (receive it, or move it to a location with a shippable status), "
            f"then replay the operation ({operation_hint}): it writes the shipment once"
        ),
        task={"task": "short_stock", "lines": [s.task() for s in shorts]},
    )


@dataclass(frozen=True)
class Blocked:
    """A line no whole containers match, with no split possible: the operator's task."""

    release: str
    part: str
    quantity: float
    containers: list[Container]
    reason: str

    def container(self) -> Container | None:
        """The container an operator would split: the oldest holding more than needed."""
        return next((c for c in fifo(self.containers) if c.quantity > self.quantity), None)

    def task(self) -> dict[str, Any]:
        source = self.container()
        return {
            "release": self.release,
            "part": self.part,
            "quantity": self.quantity,
            "container": source.serial_no if source else None,
            "container_quantity": source.quantity if source else None,
            "location": (source.location or source.location_id) if source else None,
            "reason": self.reason,
        }

    def todo(self) -> str:
        source = self.container()
        where = f" at {source.location or source.location_id}" if source else ""
        what = (
            f"split {self.quantity:g} off container {source.serial_no} ({source.quantity:g} "
            f"of part {self.part}{where})"
            if source
            else f"put {self.quantity:g} of part {self.part} into one container"
        )
        return f"in Plex, {what} so that {self.quantity:g} sits in a container of its own"


def needs_operator(
    reference: str, blocked: list[Blocked], *, tracking: str | None, operation_hint: str
) -> NeedsOperatorError:
    """The operator task for ``blocked`` lines of ``reference`` (``tracking``: where the
    tracking was recorded in Plex, or ``None`` when nothing was written)."""
    lines = "; ".join(
        f"release {b.release} needs {b.quantity:g} of part {b.part}, and no whole containers "
        f"match ({describe_stock(b.containers)}; {b.reason})"
        for b in blocked
    )
    written = (
        f"tracking, carrier, service and ship date are recorded in Plex ({tracking}); "
        "only the inventory move is left"
        if tracking
        else "nothing was written to Plex"
    )
    todo = "; ".join(b.todo() for b in blocked)
    return NeedsOperatorError(
        f"{reference}: the inventory move needs an operator: {lines}; {written}",
        record=reference,
        hint=f"{todo}, then replay the operation ({operation_hint}): it completes the move once",
        task={
            "task": "split_container",
            "tracking_recorded": tracking,
            "lines": [b.task() for b in blocked],
        },
    )


class SplitRefusedError(SkipRecordError):
    """Plex did not split the container (its answer names why)."""


class ContainerSplitter:
    """Splits a container through the configured Data Source (``plex.container_split``)."""

    def __init__(self, datasources: PlexDataSourceClient, settings: PlexContainerSplit) -> None:
        if settings.datasource_id is None:
            raise ValueError("a ContainerSplitter needs plex.container_split.datasource_id")
        self.datasources = datasources
        self.settings = settings
        self.datasource_id: int = settings.datasource_id

    async def split(self, split: Split, *, reference: str) -> str:
        """Split ``split.quantity`` off its container; the new serial.

        Raises :class:`SplitRefusedError` when Plex refused it (the caller falls back to the
        no-split setting). A split that landed but whose answer was lost only leaves an extra
        container of the same part and total quantity: the retry then finds it as an exact
        whole container and loads it, so nothing is split twice for the same pieces.
        """
        inputs = {
            self.settings.serial_input: split.serial_no,
            self.settings.quantity_input: split.quantity,
        }
        try:
            result = await self.datasources.execute(self.datasource_id, inputs)
        except (DataSourceError, SkipRecordError) as exc:
            raise SplitRefusedError(
                f"Plex refused to split {split.quantity:g} off container {split.serial_no} "
                f"(datasource {self.datasource_id}): {exc.message}",
                record=reference,
            ) from exc
        outputs = {name.lstrip("@"): value for name, value in result.outputs.items()}
        name = self.settings.new_serial_output
        serial = outputs.get(name) or next(
            (row.get(name) for row in result.rows if row.get(name)), None
        )
        if not serial:
            raise SplitRefusedError(
                f"Plex datasource {self.datasource_id} split container {split.serial_no} but "
                f"answered no {name!r} (outputs: {sorted(outputs)})",
                record=reference,
                hint="check plex.container_split.new_serial_output against the datasource",
            )
        return str(serial)
