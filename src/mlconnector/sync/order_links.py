"""What the orders flow knows about each ShipStation order it manages: decisions, link
versions and the link updates after a write (split from :mod:`.orders` to keep it readable)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlconnector.errors import FrozenRecordError
from mlconnector.shipstation import FROZEN_STATUSES, Order
from mlconnector.store import Link, Operation
from mlconnector.sync.base import StaleOperationError
from mlconnector.sync.runtime import ConnectionRuntime


@dataclass(frozen=True)
class Decision:
    """One order to send: what, why, and the links it will update."""

    action: str  # create | update | cancel
    order_key: str
    plex_order_id: str
    group_key: str
    content_hash: str
    release_ids: tuple[str, ...]
    order: Order
    #: the link's version this write starts from (see :func:`link_version`)
    base: str = "new"

    @property
    def idempotency_key(self) -> str:
        """Fixed before the first attempt: the same transition always gets the same key, and a
        later return to an earlier content (A → B → A) is a new write, not a duplicate."""
        return f"orders:{self.order_key}:{self.base}:{self.content_hash}"

    def payload(self) -> dict[str, Any]:
        body = self.order.to_v1()
        if self.action != "create":
            # storeId is honoured only at creation; never try to move an existing order
            (body.get("advancedOptions") or {}).pop("storeId", None)
        return {
            "action": self.action,
            "order_key": self.order_key,
            "plex_order_id": self.plex_order_id,
            "group_key": self.group_key,
            "hash": self.content_hash,
            "release_ids": list(self.release_ids),
            "order": body,
        }


def link_version(link: Link | None) -> str:
    """What ShipStation holds for a group, as far as the connector knows: the content hash and
    when it was recorded (``new`` before the first write)."""
    if link is None:
        return "new"
    stamp = link.updated_at.strftime("%Y%m%dT%H%M%S%f") if link.updated_at else "0"
    return f"{link.content_hash or 'none'}@{stamp}"


def is_frozen(link: Link) -> bool:
    return bool(link.frozen_reason) or (link.ss_status or "") in FROZEN_STATUSES


def frozen_status(message: str) -> str:
    """Which frozen status a ShipStation refusal names (for the link)."""
    return "cancelled" if "cancel" in message.lower() else "shipped"


def would(decision: Decision) -> str:
    """The counter of a decision (a dry run counts what it would do)."""
    return {"create": "created", "update": "updated"}.get(decision.action, "cancelled")


def refs_of(decision: Decision) -> dict[str, Any]:
    return {"order_key": decision.order_key, "plex_order_id": decision.plex_order_id}


def same_content(sent: dict[str, Any], remote: Order) -> bool:
    """Whether ShipStation holds what was sent: status and items (key → quantity)."""
    if sent.get("orderStatus") != remote.order_status:
        return False
    ours = {
        (i.get("lineItemKey"), i.get("sku"), i.get("quantity")) for i in sent.get("items") or []
    }
    theirs = {(i.line_item_key, i.sku, i.quantity) for i in remote.items or []}
    return ours == theirs


async def save_link(
    rt: ConnectionRuntime, payload: dict[str, Any], ss_order_id: str | None, status: str | None
) -> Link:
    """Record that ShipStation holds this content for this group."""
    return await rt.store.save_link(link_of(rt, payload, ss_order_id, status))


def link_of(
    rt: ConnectionRuntime, payload: dict[str, Any], ss_order_id: str | None, status: str | None
) -> Link:
    """The link saying ShipStation holds this content for this group (saved by
    :func:`save_link`, or many at once with a batch's confirms)."""
    frozen = None
    if status in FROZEN_STATUSES:
        frozen = f"ShipStation order is {status}" + (
            " (cancelled by the connector: no open release left in Plex)"
            if payload.get("action") == "cancel"
            else ""
        )
    return Link(
        connection=rt.name,
        order_key=payload["order_key"],
        plex_order_id=payload["plex_order_id"],
        group_key=payload["group_key"],
        ss_order_id=ss_order_id,
        content_hash=payload["hash"],
        ss_status=status,
        frozen_reason=frozen,
        release_ids=list(payload.get("release_ids") or []),
    )


async def freeze_link(rt: ConnectionRuntime, payload: dict[str, Any], message: str) -> None:
    """ShipStation refused because the order is shipped/cancelled: never send it again."""
    key = payload["order_key"]
    existing = await rt.store.get_link(rt.name, key)
    status = frozen_status(message)
    if existing is None:
        await rt.store.save_link(
            Link(
                connection=rt.name,
                order_key=key,
                plex_order_id=payload["plex_order_id"],
                group_key=payload["group_key"],
                ss_status=status,
                frozen_reason=message,
                release_ids=list(payload.get("release_ids") or []),
            )
        )
    else:
        await rt.store.set_link_status(rt.name, key, status, frozen_reason=message)


def decision_of(op: Operation) -> Decision:
    """The decision a queued operation carries (for retries and replays)."""
    payload = op.payload
    return Decision(
        payload["action"],
        payload["order_key"],
        payload["plex_order_id"],
        payload["group_key"],
        payload["hash"],
        tuple(payload.get("release_ids") or ()),
        Order.model_validate(payload["order"]),
    )


async def precheck(rt: ConnectionRuntime, op: Operation) -> str | None:
    """Before a queued order is (re)sent: the ShipStation order id when this content is already
    there (confirm without sending), ``None`` to send; raises when it must never be sent
    (frozen order, or a newer version was sent after it was queued)."""
    return check_link(op, await rt.store.get_link(rt.name, op.payload["order_key"]))


def check_link(op: Operation, link: Link | None) -> str | None:
    """:func:`precheck` given the operation's link (read beforehand, many at once)."""
    payload = op.payload
    if link is None:
        return None
    if link.content_hash == payload["hash"] and link.ss_order_id:
        return link.ss_order_id
    if is_frozen(link):
        raise FrozenRecordError(
            f"ShipStation order {payload['order_key']} is frozen: "
            f"{link.frozen_reason or link.ss_status}",
            record=payload["order_key"],
        )
    if link.updated_at is not None and link.updated_at > op.created_at:
        raise StaleOperationError(
            f"a newer version of {payload['order_key']} was sent after this operation "
            "was queued; sending this one would undo it",
            record=payload["order_key"],
        )
    return None
