"""The JSON Data Source API: ``POST /api/datasources/{id}/execute`` with Basic auth.

* default format: body ``{"inputs": {...}}`` →
  ``{outputs, tables:[{columns, rows, rowLimitExceeded}], transactionNo}`` (``tables`` is empty
  for output-only datasources);
* ``?format=2``: flat inputs →
  ``{outputs, rows:[{column: value}], rowLimitExceeded, transactionNo}``;
* errors: ``{"errors":[{"code","message"}], "transactionNo"}``; any method but POST is 405
  ``METHOD_NOT_ALLOWED``; the web-service user decides the tenant.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlconnector.sandbox.plex.auth import parse_basic
from mlconnector.sandbox.plex.datasources import DataSourceError, DataSourceService, Execution


def _error(service: DataSourceService, exc: DataSourceError) -> JSONResponse:
    body = {
        "errors": [{"code": exc.code, "message": exc.message}],
        "transactionNo": service.next_transaction(),
    }
    return JSONResponse(body, status_code=exc.status)


def _format_default(run: Execution) -> dict[str, Any]:
    tables = []
    if run.result.columns is not None:
        tables.append(
            {
                "columns": run.result.columns,
                "rows": run.rows,
                "rowLimitExceeded": run.row_limit_exceeded,
            }
        )
    return {"outputs": run.result.outputs, "tables": tables, "transactionNo": run.transaction_no}


def _format_2(run: Execution) -> dict[str, Any]:
    columns = run.result.columns or []
    return {
        "outputs": run.result.outputs,
        "rows": [dict(zip(columns, row, strict=True)) for row in run.rows],
        "rowLimitExceeded": run.row_limit_exceeded,
        "transactionNo": run.transaction_no,
    }


async def _read_inputs(request: Request, flat: bool) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("application/json"):
        raise DataSourceError(
            400, "REQUEST_PROCESSING_ERROR", "Content-Type must be application/json."
        )
    try:
        body = json.loads(await request.body() or b"{}")
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise DataSourceError(
            400, "DATA_SOURCE_INPUT_FORMAT_INVALID", "Body must be a JSON object."
        )
    inputs = body if flat else body.get("inputs", {})
    if not isinstance(inputs, dict):
        raise DataSourceError(400, "DATA_SOURCE_INPUT_FORMAT_INVALID", "inputs must be an object.")
    return inputs


def datasource_routes(service: DataSourceService) -> list[Route]:
    """Routes of the JSON Data Source API."""

    async def execute(request: Request) -> Response:
        if request.method != "POST":
            return _error(
                service,
                DataSourceError(405, "METHOD_NOT_ALLOWED", f"{request.method} is not allowed."),
            )
        user = service.login(parse_basic(request.headers.get("authorization")))
        if user is None:
            return _error(
                service, DataSourceError(401, "USER_ACCESS_DENIED", "Invalid user credentials.")
            )
        flat = request.query_params.get("format") == "2"
        try:
            inputs = await _read_inputs(request, flat)
            run = service.execute(user, request.path_params["id"], inputs, limit=True)
        except DataSourceError as exc:
            return _error(service, exc)
        return JSONResponse(_format_2(run) if flat else _format_default(run))

    async def describe(request: Request) -> Response:
        user = service.login(parse_basic(request.headers.get("authorization")))
        if user is None:
            return _error(
                service, DataSourceError(401, "USER_ACCESS_DENIED", "Invalid user credentials.")
            )
        try:
            ds = service.lookup(user, request.path_params["id"])
        except DataSourceError as exc:
            return _error(service, exc)
        return JSONResponse(
            {
                "id": ds.id,
                "name": ds.name,
                "inputs": [
                    {
                        "name": i.name,
                        "type": i.type,
                        "required": i.required,
                        "nullable": not i.required,
                    }
                    for i in ds.inputs
                ],
                "outputs": [{"name": name} for name in ds.outputs],
                "columns": [{"name": name} for name in ds.columns],
                "readRowLimit": ds.row_limit,
            }
        )

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return [
        Route("/api/datasources/{id}/execute", execute, methods=methods),
        Route("/api/datasources/{id}", describe, methods=["GET"]),
    ]
