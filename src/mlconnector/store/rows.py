"""Database rows → the records of ``records.py`` (no SQL here; queries live in ``repository``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row

from mlconnector.store.records import (
    AuditEvent,
    Connection,
    InboxItem,
    Link,
    Operation,
    OperationState,
    Run,
    ShipmentLine,
)


def mask(secret: str) -> str:
    """What may be shown of a secret."""
    # Short secrets show nothing; long ones their last 4 characters, enough to tell keys apart.
    return "••••" + secret[-4:] if len(secret) >= 16 else "••••"


def to_connection(row: Row[Any]) -> Connection:
    """The :class:`Connection` held in a ``connection`` row."""
    return Connection(
        name=row.name,
        plex_tenant=row.plex_tenant,
        plex_pcn=row.plex_pcn,
        shipstation_account=row.shipstation_account,
        settings=dict(row.settings),
        enabled=bool(row.enabled),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def to_link(row: Row[Any]) -> Link:
    """The :class:`Link` held in a ``link`` row."""
    return Link(
        connection=row.connection,
        order_key=row.order_key,
        plex_order_id=row.plex_order_id,
        group_key=row.group_key,
        ss_order_id=row.ss_order_id,
        content_hash=row.content_hash,
        ss_status=row.ss_status,
        frozen_reason=row.frozen_reason,
        release_ids=list(row.release_ids),
        updated_at=row.updated_at,
    )


def to_operation(row: Row[Any]) -> Operation:
    """The :class:`Operation` held in a ``operation`` row."""
    return Operation(
        id=row.id,
        connection=row.connection,
        flow=row.flow,
        kind=row.kind,
        idempotency_key=row.idempotency_key,
        payload=dict(row.payload),
        state=OperationState(row.state),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        remote_ref=row.remote_ref,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def to_audit(row: Row[Any]) -> AuditEvent:
    """The :class:`AuditEvent` held in a ``audit`` row."""
    return AuditEvent(
        id=row.id,
        at=row.at,
        connection=row.connection,
        flow=row.flow,
        direction=row.direction,
        entity=row.entity,
        action=row.action,
        outcome=row.outcome,
        plex_order_id=row.plex_order_id,
        order_key=row.order_key,
        ss_order_id=row.ss_order_id,
        ss_order_number=row.ss_order_number,
        shipment_id=row.shipment_id,
        entity_ids=dict(row.entity_ids),
        remote_ids=dict(row.remote_ids),
        http_status=row.http_status,
        request_id=row.request_id,
        idempotency_key=row.idempotency_key,
        details=dict(row.details),
        sku=row.sku,
    )


def to_inbox(row: Row[Any]) -> InboxItem:
    """The :class:`InboxItem` held in a ``inbox`` row."""
    return InboxItem(
        id=row.id,
        connection=row.connection,
        body=bytes(row.body),
        headers=dict(row.headers),
        dedupe_key=row.dedupe_key,
        received_at=row.received_at,
        processed_at=row.processed_at,
        outcome=row.outcome,
        attempts=row.attempts,
    )


def to_shipment_line(row: Row[Any]) -> ShipmentLine:
    """The :class:`ShipmentLine` held in a ``shipment_line`` row."""
    return ShipmentLine(
        connection=row.connection,
        source_id=row.source_id,
        line_key=row.line_key,
        sku=row.sku,
        quantity=row.quantity,
        created_at=row.created_at,
        written_back_at=row.written_back_at,
        reversed_at=row.reversed_at,
    )


def to_run(row: Row[Any]) -> Run:
    """The :class:`Run` held in a ``runs`` row."""
    return Run(
        id=row.id,
        connection=row.connection,
        flow=row.flow,
        started_at=row.started_at,
        finished_at=row.finished_at,
        seconds=float(row.seconds),
        outcome=row.outcome,
        counts={str(k): int(v) for k, v in dict(row.counts).items()},
        error=row.error,
        owner=row.owner,
    )
