"""Plex-shaped errors raised inside the simulator and turned into responses at the edge."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

NOT_AUTHENTICATED_MESSAGE = "The request could not be authenticated."


class PlexApiError(Exception):
    """A REST error: ``{code, message, errors[]}`` with an HTTP status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors or []

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "errors": self.errors}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)


def not_authenticated() -> PlexApiError:
    """Plex's one answer for a bad key, an expired token, a foreign PCN and a missing product.

    Real Plex sends exactly ``{"code", "message"}`` here (no ``errors`` list).
    """
    return PlexApiError(401, "REQUEST_NOT_AUTHENTICATED", NOT_AUTHENTICATED_MESSAGE)


def not_found(what: str) -> PlexApiError:
    return PlexApiError(404, "RESOURCE_NOT_FOUND", f"{what} was not found.")


def invalid_argument(name: str, detail: str) -> PlexApiError:
    return PlexApiError(
        400,
        "ARGUMENT_INVALID",
        f"The argument '{name}' is invalid.",
        [{"code": "ARGUMENT_INVALID", "message": f"{name}: {detail}"}],
    )


def validation_failed(detail: str) -> PlexApiError:
    return PlexApiError(
        400,
        "REQUEST_VALIDATION_FAILED",
        "The request failed validation.",
        [{"code": "REQUEST_VALIDATION_FAILED", "message": detail}],
    )


def auth_error_response(exc: PlexApiError) -> JSONResponse:
    """401 bodies carry only code and message, as observed on the real service."""
    if exc.status == 401:
        return JSONResponse({"code": exc.code, "message": exc.message}, status_code=401)
    return exc.response()
