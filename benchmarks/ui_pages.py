"""Operator UI page times with a big store: 100,000 operations and 1,000,000 audit events.

Run: ``uv run python benchmarks/ui_pages.py [--operations 100000] [--audit 1000000]
[--runs 20000] [--backend sqlite|postgresql|both] [--postgres URL] [--repeat 5]``.

The rows are generated inside the database (``WITH RECURSIVE`` on SQLite, ``generate_series``
on PostgreSQL: one ``INSERT … SELECT`` per table, so seeding is bounded by the database, not by
Python), then ``ANALYZE`` (PostgreSQL: ``VACUUM ANALYZE``) runs. Each page is fetched in-process
(``httpx.ASGITransport``: the server's own time, no network) once to warm up, then ``--repeat``
times; the median is printed with the 300 ms target and the rows the page shows. Prints
figures; asserts nothing about time.
"""

# The seeding SQL is assembled from this module's constants only (no outside input):
# ruff: noqa: S608

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
from _pgdb import create_database, drop_database
from sqlalchemy import text

from mlconnector.clock import FakeClock
from mlconnector.config import Config, WebSettings
from mlconnector.passwords import hash_password
from mlconnector.store import Role, Store, Vault, error_cause, generate_key, open_store
from mlconnector.web import create_web_app

TARGET_MS = 300
BASE = datetime(2026, 1, 1, tzinfo=UTC)

# --- the rows, as SQL expressions of n (the same data on both backends) -------------------------
_OP_CONNECTION = "CASE WHEN n % 3 = 0 THEN 'beta' ELSE 'acme' END"
_OP_FLOW = "CASE n % 5 WHEN 0 THEN 'inventory' WHEN 1 THEN 'shipments' ELSE 'orders' END"
_OP_KIND = (
    "CASE n % 5 WHEN 0 THEN 'ss.inventory.adjust' WHEN 1 THEN 'plex.shipment.write_back' "
    "ELSE 'ss.order.upsert' END"
)
#: 5 % failed, 3 % dead, 2 % pending, the rest confirmed
_OP_STATE = (
    "CASE WHEN n % 100 < 5 THEN 'failed' WHEN n % 100 < 8 THEN 'dead' "
    "WHEN n % 100 < 10 THEN 'pending' ELSE 'confirmed' END"
)
#: four causes, each message naming its own record (so grouping must normalize)
_OP_ERROR = (
    "CASE WHEN n % 100 < 8 THEN (CASE n % 4 "
    "WHEN 0 THEN 'ShipStation said 400 for plex-79870-' || n || ': invalid country' "
    "WHEN 1 THEN 'timeout after ' || (n % 60) || ' s talking to ShipStation' "
    "WHEN 2 THEN 'Plex 403 for release ' || n || ': missing role' "
    "ELSE 'inventory SKU-' || (n % 2000) || '@A was pushed as ' || (n % 50) "
    "|| ' after this adjust was queued' END) END"
)
#: what ``Store.fail`` stores with each of them (``error_cause``; checked by :func:`seed`)
_CAUSES = (
    "ShipStation said 400 for #: invalid country",
    "timeout after # s talking to ShipStation",
    "Plex 403 for release #: missing role",
    "inventory # was pushed as # after this adjust was queued",
)
_OP_CAUSE = (
    "CASE WHEN n % 100 < 8 THEN (CASE n % 4 "
    + " ".join(f"WHEN {i} THEN '{c}'" for i, c in enumerate(_CAUSES[:3]))
    + f" ELSE '{_CAUSES[3]}' END) END"
)
_OP_PAYLOAD = (
    '\'{"order_key": "plex-79870-\' || n || \'", "sku": "SKU-\' || (n % 2000) '
    '|| \'", "reference": "ss-shipment-\' || n || \'"}\''
)
_AU_FLOW = (
    "CASE n % 4 WHEN 0 THEN 'orders' WHEN 1 THEN 'inventory' WHEN 2 THEN 'shipments' "
    "ELSE 'order_status' END"
)
_AU_ENTITY = (
    "CASE n % 4 WHEN 0 THEN 'order' WHEN 1 THEN 'inventory' WHEN 2 THEN 'shipment' ELSE 'order' END"
)
_EMPTY = "'{}'"
_AU_DETAILS = '\'{"kind": "ss.order.upsert", "operation_id": \' || (n / 10) || \'}\''
_AU_OUTCOME = "CASE WHEN n % 100 < 3 THEN 'failed' WHEN n % 100 < 5 THEN 'skipped' ELSE 'ok' END"


def _operations_sql(dialect: str) -> str:
    seq, at, js = _generator(dialect, "n * 10")
    return (
        f"{seq} INSERT INTO operations (id, connection, flow, kind, idempotency_key, payload, "
        "state, attempts, next_attempt_at, last_error, remote_ref, created_at, updated_at, "
        "error_cause) "
        f"SELECT n, {_OP_CONNECTION}, {_OP_FLOW}, {_OP_KIND}, 'op:' || n, {js(_OP_PAYLOAD)}, "
        f"{_OP_STATE}, 1, NULL, {_OP_ERROR}, NULL, {at}, {at}, {_OP_CAUSE} "
        f"FROM {_source(dialect)}"
    )


def _audit_sql(dialect: str) -> str:
    seq, at, js = _generator(dialect, "n")
    ref = "(n / 10)"
    return (
        f"{seq} INSERT INTO audit_events (id, at, connection, flow, direction, entity, action, "
        "outcome, plex_order_id, order_key, ss_order_id, ss_order_number, shipment_id, "
        "entity_ids, remote_ids, http_status, request_id, idempotency_key, details, sku) "
        f"SELECT n, {at}, {_OP_CONNECTION}, {_AU_FLOW}, 'plex->ss', {_AU_ENTITY}, 'write', "
        f"{_AU_OUTCOME}, "
        f"CASE WHEN n % 4 = 0 THEN 'PO-' || {ref} END, "
        f"CASE WHEN n % 4 = 0 THEN 'plex-79870-' || {ref} END, "
        f"CASE WHEN n % 4 = 0 THEN '' || (500000 + {ref}) END, "
        f"CASE WHEN n % 4 = 0 THEN 'SO-' || {ref} END, "
        f"CASE WHEN n % 4 = 2 THEN 'ss-shipment-' || {ref} END, "
        f"{js(_EMPTY)}, {js(_EMPTY)}, 200, NULL, 'op:' || {ref}, {js(_AU_DETAILS)}, "
        f"CASE WHEN n % 4 = 1 THEN 'SKU-' || (n % 2000) END FROM {_source(dialect)}"
    )


def _runs_sql(dialect: str) -> str:
    seq, at, js = _generator(dialect, "n * 60")
    _, finished, _ = _generator(dialect, "n * 60 + 5")
    counts = js("'{\"created\": ' || (n % 7) || ', \"failed\": ' || (n % 3) || '}'")
    return (
        f"{seq} INSERT INTO runs (id, connection, flow, started_at, finished_at, seconds, "
        "outcome, counts, error, owner) "
        f"SELECT n, {_OP_CONNECTION}, CASE n % 2 WHEN 0 THEN 'orders' ELSE 'inventory' END, "
        f"{at}, {finished}, 1.0 + n % 9, "
        "CASE WHEN n % 20 = 0 THEN 'failed' WHEN n % 7 = 0 THEN 'partial' ELSE 'ok' END, "
        f"{counts}, CASE WHEN n % 20 = 0 THEN 'Plex 401' END, 'worker-1' FROM {_source(dialect)}"
    )


def _generator(dialect: str, seconds: str) -> tuple[str, str, Callable[[str], str]]:
    """(CTE prefix, timestamp expression, JSON cast) for ``dialect``."""
    if dialect == "sqlite":
        # the text format SQLAlchemy stores (microseconds included: keyset ties compare equal)
        at = f"datetime('2026-01-01 00:00:00', '+' || ({seconds}) || ' seconds') || '.000000'"
        seq = "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :n)"
        return seq, at, lambda expr: expr
    at = f"(timestamptz '2026-01-01 00:00:00+00' + ({seconds}) * interval '1 second')"
    return "", at, lambda expr: f"({expr})::json"


def _source(dialect: str) -> str:
    return "seq" if dialect == "sqlite" else "generate_series(1, :n) AS n"


async def seed(store: Store, operations: int, audit: int, runs: int) -> None:
    dialect = store.dialect
    for name in ("acme", "beta"):
        await store.create_connection(name, plex_pcn="79870")
    await store.set_cursor(
        "acme",
        "orders",
        '{"since": "2026-01-12T00:00:00Z", "seen": ['
        + ", ".join(f'["{n}", "2026-01-12T00:00:00Z"]' for n in range(400))
        + "]}",
    )
    for table, statement, n in (
        ("operations", _operations_sql(dialect), operations),
        ("audit_events", _audit_sql(dialect), audit),
        ("runs", _runs_sql(dialect), runs),
    ):
        started = time.perf_counter()
        async with store.engine.begin() as conn:
            await conn.execute(text(statement), {"n": n})
            if dialect == "postgresql":
                await conn.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {n})")
                )
        print(f"  seeded {n:>9,} {table:<12} in {time.perf_counter() - started:6.1f} s")
    # the generated causes are the ones Store.fail would have stored for these errors
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT last_error, error_cause FROM operations "
                "WHERE error_cause IS NOT NULL AND id <= 400"
            )
        )
        for message, cause in rows:
            if error_cause(message) != cause:
                raise SystemExit(f"seeded cause {cause!r} is not error_cause({message!r})")
    # statistics (and, on PostgreSQL, the visibility map autovacuum would build) as a store
    # that has been running has them
    started = time.perf_counter()
    statement = "VACUUM ANALYZE" if dialect == "postgresql" else "ANALYZE"
    async with store.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(statement))
    print(f"  {statement} in {time.perf_counter() - started:.1f} s")


def pages(operations: int, audit: int) -> list[tuple[str, str]]:
    mid_op, mid_audit = operations // 2, audit // 2
    mid_at = datetime.fromtimestamp(BASE.timestamp() + mid_audit, UTC).isoformat()
    day = datetime.fromtimestamp(BASE.timestamp() + audit // 3, UTC).date().isoformat()
    op_day = datetime.fromtimestamp(BASE.timestamp() + operations * 5, UTC).date().isoformat()
    return [
        ("dashboard", "/"),
        ("operations, first page", "/operations"),
        ("operations, 200 a page", "/operations?per_page=200"),
        ("operations, deep page", f"/operations?before={mid_op}"),
        ("operations, state=dead", "/operations?state=dead"),
        ("operations, acme failed orders", "/operations?connection=acme&flow=orders&state=failed"),
        ("operations, kind=inventory", "/operations?kind=ss.inventory.adjust"),
        ("operations, one day", f"/operations?from={op_day}&to={op_day}"),
        ("operations, text: error words", "/operations?q=invalid+country"),
        ("operations, text: order number", f"/operations?q=SO-{operations // 20}"),
        ("audit, first page", "/audit"),
        ("audit, deep page", f"/audit?before={mid_at}_{mid_audit}"),
        ("audit, outcome=failed", "/audit?outcome=failed"),
        ("audit, acme inventory", "/audit?connection=acme&flow=inventory"),
        ("audit, SKU", "/audit?sku=SKU-77"),
        ("audit, orderKey", f"/audit?order_key=plex-79870-{audit // 40}"),
        ("audit, one day", f"/audit?from={day}&to={day}"),
        (
            "audit, failed inventory one day",
            f"/audit?flow=inventory&outcome=failed&from={day}&to={day}",
        ),
        ("runs, acme orders", "/runs?connection=acme&flow=orders"),
        ("connection page", "/connections/acme"),
    ]


async def measure(store: Store, home: Path, operations: int, audit: int, repeat: int) -> None:
    config = Config(home=home, web=WebSettings(allowed_hosts=("bench",)))
    app = create_web_app(store=store, config=config, clock=FakeClock())
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        await _log_in(client, store)
        for label, path in pages(operations, audit):
            first = await client.get(path)
            if first.status_code != 200:
                raise SystemExit(f"{path} answered {first.status_code}")
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                await client.get(path)
                times.append((time.perf_counter() - started) * 1000)
            median = statistics.median(times)
            verdict = "ok" if median < TARGET_MS else "OVER"
            rows = len(re.findall(r'<tr id="(?:op|event|run)-', first.text))
            print(
                f"  {label:<34} {median:8.1f} ms  (max {max(times):7.1f})  {verdict:<4} "
                f"{rows:>4} rows"
            )


async def _log_in(client: httpx.AsyncClient, store: Store) -> None:
    """Every page is behind the login: sign in once, as an operator would."""
    password = secrets.token_urlsafe(16)
    await store.create_user("bench", Role.OPERATOR, hash_password(password))
    form = await client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    if token is None:
        raise SystemExit("the login page has no CSRF token")
    answer = await client.post(
        "/login",
        data={"csrf_token": token.group(1), "username": "bench", "password": password},
        headers={"origin": "http://bench"},
    )
    if answer.status_code != 303:
        raise SystemExit(f"login refused: {answer.status_code}")


async def run(url: str, home: Path, args: argparse.Namespace, label: str) -> None:
    print(
        f"{label}: {args.operations:,} operations, {args.audit:,} audit events, {args.runs:,} runs"
    )
    vault = Vault([generate_key()], source="a benchmark key")
    store = await open_store(url, clock=FakeClock(), vault=vault)
    try:
        await seed(store, args.operations, args.audit, args.runs)
        await measure(store, home, args.operations, args.audit, args.repeat)
    finally:
        await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--operations", type=int, default=100_000)
    parser.add_argument("--audit", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        if args.backend in ("sqlite", "both"):
            url = f"sqlite+aiosqlite:///{Path(home) / 'bench.db'}"
            await run(url, Path(home), args, "SQLite (WAL)")
        if args.backend in ("postgresql", "both"):
            url = create_database(args.postgres)
            try:
                await run(url, Path(home), args, "PostgreSQL")
            finally:
                drop_database(args.postgres, url)


if __name__ == "__main__":
    asyncio.run(main())
