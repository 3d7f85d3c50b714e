"""OAuth2 client-credentials token endpoint (path configurable; Plex does not publish one).

Form POST ``grant_type=client_credentials`` with ``client_id``/``client_secret`` in the body or as
HTTP Basic → ``{access_token, token_type: "Bearer", expires_in}``. Errors follow RFC 6749:
400 ``invalid_request``/``unsupported_grant_type``, 401 ``invalid_client``.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlconnector.sandbox.plex.auth import Authority, parse_basic


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


def token_route(authority: Authority, path: str) -> Route:
    async def issue(request: Request) -> Response:
        if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return _oauth_error(400, "invalid_request", "use application/x-www-form-urlencoded")
        text = (await request.body()).decode("utf-8", errors="replace")
        form = {k: v[0] for k, v in parse_qs(text).items()}
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "only client_credentials")
        basic = parse_basic(request.headers.get("authorization"))
        client_id, client_secret = basic or (
            form.get("client_id", ""),
            form.get("client_secret", ""),
        )
        token = authority.issue_token(client_id, client_secret)
        if token is None:
            return _oauth_error(401, "invalid_client", "client authentication failed")
        return JSONResponse(
            {
                "access_token": token.value,
                "token_type": "Bearer",
                "expires_in": int(authority.token_lifetime),
            },
            headers={"Cache-Control": "no-store"},
        )

    return Route(path, issue, methods=["POST"])
