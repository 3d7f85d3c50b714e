"""Glue between Starlette and the REST handlers: authorization, errors, JSON bodies."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlconnector.sandbox.plex.auth import Authority, CallContext
from mlconnector.sandbox.plex.errors import (
    PlexApiError,
    auth_error_response,
    invalid_argument,
    not_found,
)

Handler = Callable[[CallContext, Request], Awaitable[Any]]


def rest_route(
    authority: Authority,
    path: str,
    handler: Handler,
    *,
    product: str,
    permission: str,
    method: str = "GET",
    status: int = 200,
) -> Route:
    """A route that authorizes, runs ``handler`` and turns its result or error into JSON."""

    async def endpoint(request: Request) -> Response:
        try:
            context = authority.authorize(request, product, permission)
            result = await handler(context, request)
            if result == [] and authority.empty_list_not_found:
                raise not_found("No data")
        except PlexApiError as exc:
            return auth_error_response(exc)
        if isinstance(result, Response):
            return result
        return JSONResponse(result, status_code=status)

    return Route(path, endpoint, methods=[method])


async def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or 400 ``REQUEST_MALFORMED``."""
    raw = await request.body()
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise PlexApiError(
            400,
            "REQUEST_MALFORMED",
            "The request body is malformed.",
            [{"code": "REQUEST_MALFORMED", "message": "expected a JSON object"}],
        )
    return body


def path_uuid(request: Request, name: str = "id") -> str:
    """A path parameter that must be a UUID (400 ``ARGUMENT_INVALID`` otherwise)."""
    value = str(request.path_params[name])
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise invalid_argument(name, f"'{value}' is not a valid UUID") from None
